"""Generates GHCN-daily-like weather files: one gzip CSV per station and year, deterministic from a seed.

The layout follows NOAA's GHCN-daily CSV files (no header row)::

    ID,DATE,ELEMENT,DATA_VALUE,M_FLAG,Q_FLAG,S_FLAG,OBS_TIME
    USW00012345,20230715,TMAX,283,,,W,

with temperatures in tenths of a degree Celsius and precipitation in tenths
of a millimetre. About 2% of the days are missing and about 0.5% of the
values carry a quality flag (Q_FLAG), as in the real data. Each file is
generated from ``(seed, station, year)`` alone, so a bigger set contains the
smaller one and files can be made in parallel.

    python examples/weather/generate.py out/weather --stations 12 --years 2022-2023
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import math
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

COUNTRIES = ("US", "CA", "GM", "AS", "BR", "IN", "JA", "SF", "FR", "UK", "MX", "CH")
ELEMENTS = ("TMAX", "TMIN", "PRCP", "SNOW", "SNWD", "TAVG", "AWND", "WSF2")
DEFAULT_ELEMENTS = ("TMAX", "TMIN", "PRCP")


def station_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(f"{seed}-stations")
    return [
        f"{COUNTRIES[i % len(COUNTRIES)]}{rng.choice('WC1')}{rng.randrange(1000):03d}{i:05d}"
        for i in range(count)
    ]


def station_year(station: str, year: int, seed: int, elements: tuple[str, ...]) -> bytes:
    """The CSV text of one station's year."""
    rng = random.Random(f"{seed}-{station}-{year}")
    latitude = rng.uniform(-60, 70)
    mean = 300 - abs(latitude) * 4  # tenths of a degree: warm near the equator
    swing = abs(latitude) * 3 * (1 if latitude >= 0 else -1)  # seasons flip in the south
    source = rng.choice("W7HK")
    obs_time = rng.choice(("", "0700", "1700"))
    lines = []
    day = datetime.date(year, 1, 1)
    one = datetime.timedelta(days=1)
    while day.year == year:
        date = day.strftime("%Y%m%d")
        season = math.cos(2 * math.pi * (day.timetuple().tm_yday - 200) / 365)
        high = round(mean + swing * season + rng.gauss(0, 40))
        low = high - rng.randint(40, 140)
        for element in elements:
            if rng.random() < 0.02:
                continue  # not reported that day
            value = _value(element, high, low, rng)
            q_flag = "X" if rng.random() < 0.005 else ""
            time = obs_time if element in ("PRCP", "SNOW", "SNWD") else ""
            lines.append(f"{station},{date},{element},{value},,{q_flag},{source},{time}\n")
        day += one
    return "".join(lines).encode("ascii")


def _value(element: str, high: int, low: int, rng: random.Random) -> int:
    if element == "TMAX":
        return high
    if element == "TMIN":
        return low
    if element == "TAVG":
        return (high + low) // 2
    if element in ("PRCP", "SNOW"):
        return 0 if rng.random() < 0.7 else round(rng.expovariate(1 / 60))
    if element == "SNWD":
        return 0 if high > 0 else rng.randint(0, 400)
    return rng.randint(0, 150)  # AWND, WSF2: wind in tenths of m/s


def write_file(job: tuple[str, str, int, int, tuple[str, ...]]) -> int:
    folder, station, year, seed, elements = job
    path = Path(folder) / str(year) / f"{station}.csv.gz"
    data = station_year(station, year, seed, elements)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
    tmp.replace(path)
    return len(data)


def generate(
    folder: str,
    stations: int,
    years: range,
    seed: int = 42,
    elements: tuple[str, ...] = DEFAULT_ELEMENTS,
    jobs: int = 1,
) -> int:
    """Writes ``folder/YEAR/STATION.csv.gz`` for every station and year; returns the uncompressed bytes."""
    for year in years:
        (Path(folder) / str(year)).mkdir(parents=True, exist_ok=True)
    work = [(folder, s, y, seed, elements) for s in station_ids(stations, seed) for y in years]
    if jobs <= 1:
        return sum(map(write_file, work))
    with ProcessPoolExecutor(jobs) as pool:
        return sum(pool.map(write_file, work, chunksize=16))


def parse_years(text: str) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write YEAR/STATION.csv.gz")
    parser.add_argument("--stations", type=int, default=12, help="number of stations (the size flag)")
    parser.add_argument("--years", default="2022-2023", help="a year or a range, e.g. 2020-2023")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--elements",
        default=",".join(DEFAULT_ELEMENTS),
        help=f"comma-separated, from {','.join(ELEMENTS)} (more elements, bigger files)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes writing files")
    args = parser.parse_args()
    elements = tuple(e.strip().upper() for e in args.elements.split(",") if e.strip())
    unknown = sorted(set(elements) - set(ELEMENTS))
    if unknown:
        parser.error(f"--elements: unknown {', '.join(unknown)}")
    years = parse_years(args.years)
    size = generate(args.folder, args.stations, years, args.seed, elements, args.jobs)
    files = args.stations * len(years)
    print(f"wrote {files:,} files, {size / 1e6:,.1f} MB uncompressed, to {args.folder}")


if __name__ == "__main__":
    main()
