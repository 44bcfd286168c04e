"""``pipes map`` end to end: the weather example against plain Python, failures, redrive, resume, Dask."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
import pyte
import pytest
from helpers import wait_until_sync
from test_terminal import COLUMNS, ROWS, raw_run_on_a_terminal

from pipes.map.state import StateStore

ROOT = Path(__file__).resolve().parents[2]
PIPES = str(Path(sys.executable).parent / "pipes")
WEATHER = ROOT / "examples" / "weather"
MONTH = "202307"

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(WEATHER))
from generate import generate  # noqa: E402


def pipes_map(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PIPES, "map", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 stations x 2 years of GHCN-like files (24 items, about 26,000 rows)."""
    folder = tmp_path_factory.mktemp("weather")
    generate(str(folder), stations=12, years=range(2022, 2024), seed=7)
    return folder


def expected_monthly_max(folder: Path, month: str = MONTH) -> list[dict[str, Any]]:
    """The monthly-max result computed the plain way, over the same files."""
    highs: dict[str, list[int]] = defaultdict(list)
    for path in sorted(folder.rglob("*.csv.gz")):
        with gzip.open(path, "rt") as handle:
            for line in handle:
                station, date, element, value, _m, q_flag, _s, _t = line.rstrip("\n").split(",")
                if element == "TMAX" and date.startswith(month) and q_flag == "":
                    highs[station].append(int(value))
    every = [v for values in highs.values() for v in values]
    rows = [
        {
            "month": month,
            "avg_high": sum(every) / len(every),
            "max_high": max(every),
            "days": len(every),
            "stations": len(highs),
        }
    ]
    for station in sorted(highs):
        values = highs[station]
        rows.append(
            {
                "month": month,
                "station": station,
                "avg_high": sum(values) / len(values),
                "max_high": max(values),
                "days": len(values),
                "stations": 1,
            }
        )
    return rows


def result_of(folder: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = json.loads((folder / "result.json").read_text())
    return result


def run_json(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / "run.json").read_text())
    return summary


def weather_env(data: Path, results: Path) -> dict[str, str]:
    return {"WEATHER_DATA": str(data), "RESULTS": str(results), "MONTH": MONTH}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_weather_example_equals_plain_python_on_the_local_executor(
    weather: Path, tmp_path: Path, workers: str
) -> None:
    results = tmp_path / "results"
    done = pipes_map(
        str(WEATHER / "monthly-max.yaml"),
        "--workers",
        workers,
        cwd=tmp_path,
        env=weather_env(weather, results),
    )
    assert done.returncode == 0, done.stderr
    assert result_of(results) == expected_monthly_max(weather)
    summary = run_json(results)
    assert summary["status"] == "SUCCEEDED"
    assert summary["items"] == {"total": 24, "succeeded": 24, "failed": 0, "pending": 0}
    assert summary["executor"] == f"local ({workers} worker{'s' if workers == '2' else ''})"
    assert summary["records"]["mapped"] == sum(r["days"] for r in expected_monthly_max(weather)[1:])
    assert (results / "FAILED.jsonl").read_text() == ""
    assert len((results / "SUCCEEDED.jsonl").read_text().splitlines()) == 24
    csv_lines = (results / "result.csv").read_text().splitlines()
    assert csv_lines[0] == "month,station,avg_high,max_high,days,stations"
    assert len(csv_lines) == 1 + 13
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("monthly-max: succeeded; items 24/24 done; records read ")
    assert f"result in {results}" in last


def test_on_a_terminal_a_progress_bar_then_the_summary(weather: Path, tmp_path: Path) -> None:
    text = (WEATHER / "monthly-max.yaml").read_text()
    text = text.replace("${WEATHER_DATA:-out/weather}", str(weather)).replace(
        "name: monthly-max", "name: bar"
    )
    (tmp_path / "bar.yaml").write_text(text.replace("${RESULTS:-out/monthly-max}", "results"))
    code, output = raw_run_on_a_terminal(["map", "bar.yaml", "--workers", "1"], tmp_path)
    terminal = pyte.Screen(COLUMNS, ROWS)
    pyte.ByteStream(terminal).feed(output)
    screen = [line.rstrip() for line in terminal.display if line.strip()]
    assert code == 0, "\n".join(screen)
    assert b"\x1b[1mbar" in output, "a progress bar was drawn"
    [bar] = [line for line in screen if line.startswith("bar ")]  # redrawn in place, left once at the end
    assert "100%" in bar and "24/24 items" in bar and "records/s" in bar
    assert screen[-1].startswith("bar: succeeded; items 24/24 done; records read ")
    assert result_of(tmp_path / "results") == expected_monthly_max(weather)


def test_max_concurrency_caps_the_local_worker_processes(weather: Path, tmp_path: Path) -> None:
    map_file = tmp_path / "one-at-a-time.yaml"
    map_file.write_text((WEATHER / "monthly-max.yaml").read_text() + "max_concurrency: 1\n")
    results = tmp_path / "results"
    done = pipes_map(str(map_file), "--workers", "2", cwd=tmp_path, env=weather_env(weather, results))
    assert done.returncode == 0, done.stderr
    assert run_json(results)["executor"] == "local (1 worker)"
    assert result_of(results) == expected_monthly_max(weather)


def test_python_map_and_reduce_functions_equal_the_builtin_aggregation(weather: Path, tmp_path: Path) -> None:
    builtin, python = tmp_path / "builtin", tmp_path / "python"
    first = pipes_map(str(WEATHER / "monthly-max.yaml"), cwd=tmp_path, env=weather_env(weather, builtin))
    second = pipes_map(
        str(WEATHER / "monthly-max-python.yaml"), cwd=tmp_path, env=weather_env(weather, python)
    )
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    without_distinct = [{k: v for k, v in row.items() if k != "stations"} for row in result_of(builtin)]
    assert result_of(python) == without_distinct


def test_dask_executor_on_a_local_cluster_started_by_the_test(weather: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        results = tmp_path / "results"
        done = pipes_map(
            str(WEATHER / "monthly-max.yaml"),
            "--executor",
            f"dask://{address}",
            cwd=tmp_path,
            env=weather_env(weather, results),
        )
    assert done.returncode == 0, done.stderr
    assert result_of(results) == expected_monthly_max(weather)
    assert run_json(results)["executor"] == f"dask (tcp://{address}, 2 worker threads)"


def test_dask_executor_starting_its_own_cluster(weather: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    done = pipes_map(
        str(WEATHER / "monthly-max.yaml"),
        "--executor",
        "dask",
        "--workers",
        "2",
        cwd=tmp_path,
        env=weather_env(weather, results),
    )
    assert done.returncode == 0, done.stderr
    assert result_of(results) == expected_monthly_max(weather)
    assert run_json(results)["executor"] == "dask (local cluster, 2 worker threads)"
    assert "distributed." not in done.stderr  # Dask's INFO lines about its scheduler and nannies
    assert done.stderr.strip().splitlines()[-1].startswith("monthly-max: succeeded;")


# ------------------------------------------------------------------------------------ failures


def corrupt_copies(weather: Path, folder: Path) -> dict[str, bytes]:
    """A copy of the data set plus three broken files; returns the good content of each broken one."""
    shutil.copytree(weather, folder)
    good = sorted((folder / "2023").glob("*.csv.gz"))[:3]
    originals = {p.name: p.read_bytes() for p in good}
    truncated, wrong_columns, not_utf8 = good
    truncated.write_bytes(originals[truncated.name][:-200])
    rows = gzip.decompress(originals[wrong_columns.name]).splitlines(keepends=True)
    rows[100] = b"XX000000001,20230411,TMAX\n"
    wrong_columns.write_bytes(gzip.compress(b"".join(rows)))
    rows = gzip.decompress(originals[not_utf8.name]).splitlines(keepends=True)
    rows[50] = rows[50].replace(b",,", b",\xff\xfe,", 1)
    not_utf8.write_bytes(gzip.compress(b"".join(rows)))
    return {str(p): originals[p.name] for p in good}


def tolerant_map_file(tmp_path: Path, percentage: int) -> Path:
    text = (WEATHER / "monthly-max.yaml").read_text()
    path = tmp_path / f"tolerant-{percentage}.yaml"
    path.write_text(
        text.replace("name: monthly-max", f"name: tolerant-{percentage}")
        + f"tolerated_failure_percentage: {percentage}\nretry: {{max_attempts: 2, backoff_initial: 10ms}}\n"
    )
    return path


def test_corrupt_items_fail_alone_are_listed_and_redrive_completes_the_result(
    weather: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    broken = corrupt_copies(weather, data)
    results = tmp_path / "results"
    env = weather_env(data, results)
    map_file = tolerant_map_file(tmp_path, 20)  # 3 of 24 items is 12.5%

    done = pipes_map(str(map_file), "--workers", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    failed = [json.loads(line) for line in (results / "FAILED.jsonl").read_text().splitlines()]
    errors = {Path(f["item"]).name: f["error"] for f in failed}
    names = sorted(Path(p).name for p in broken)
    assert sorted(errors) == names
    truncated, wrong_columns, not_utf8 = names
    assert errors[truncated].startswith("truncated gzip data")
    assert errors[wrong_columns] == "line 101: 3 fields, expected 8"
    assert errors[not_utf8].startswith("line 51: not valid utf-8")
    assert all(f["attempts"] == 1 for f in failed)  # bad data is not retried
    summary = run_json(results)
    assert summary["status"] == "SUCCEEDED"
    assert summary["items"] == {"total": 24, "succeeded": 21, "failed": 3, "pending": 0}
    partial = result_of(results)
    assert partial != expected_monthly_max(weather)

    for path, content in broken.items():
        Path(path).write_bytes(content)
    again = pipes_map(str(map_file), "--redrive", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert result_of(results) == expected_monthly_max(weather)
    summary = run_json(results)
    assert summary["items"] == {"total": 24, "succeeded": 24, "failed": 0, "pending": 0}
    assert summary["redrives"] == 1
    assert summary["records"]["read_this_session"] < summary["records"]["read"] / 4  # only 3 items ran
    assert (results / "FAILED.jsonl").read_text() == ""


FINISH_FAILS = """
def add(values):
    return sum(values)


def finish(value):
    raise ValueError(f"cannot finish {value}")
"""


@pytest.mark.parametrize("max_items", [1, 3])  # the text meets the numbers in the job, or in a worker
def test_values_that_cannot_join_the_others_fail_their_item_not_the_run(
    tmp_path: Path, max_items: int
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, value in [("a", "5"), ("b", '"high"'), ("c", "7")]:
        (data / f"{name}.jsonl").write_text(f'{{"v": {value}}}\n')
    map_file = tmp_path / "highest.yaml"
    map_file.write_text(
        "items: data/*.jsonl\nitem_reader: {format: jsonl}\n"
        f"item_batcher: {{max_items: {max_items}}}\ntolerated_failure_count: 1\n"
        "reduce: {aggregations: {high: {max: body.v}, n: count}}\nresult_writer: {path: out}\n"
    )
    done = pipes_map(str(map_file), "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    [failed] = [json.loads(line) for line in (tmp_path / "out" / "FAILED.jsonl").read_text().splitlines()]
    assert failed["item"] == "data/b.jsonl"
    assert "max: cannot compare 'high' with 5" in failed["error"]
    assert result_of(tmp_path / "out") == [{"high": 7, "n": 2}]  # a and c, each counted once


def test_a_finalize_function_that_raises_fails_the_run_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "finish_fails.py").write_text(FINISH_FAILS)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("x\ny\n")
    map_file = tmp_path / "unfinished.yaml"
    map_file.write_text(
        "items: data/*.txt\nitem_reader: {format: text}\ntransform: {jmespath: '`1`'}\n"
        "reduce: {function: finish_fails:add, finalize: finish_fails:finish}\nresult_writer: {path: out}\n"
    )
    done = pipes_map(str(map_file), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("unfinished: failed; items 1/1 done;")
    assert last.endswith("the result cannot be finished: ValueError: cannot finish 2")
    assert run_json(tmp_path / "out")["status"] == "FAILED"
    assert not (tmp_path / "out" / "result.json").exists()


def test_no_place_for_the_state_or_the_result_is_one_line_before_any_work(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("x\n")
    (tmp_path / "a-file").write_text("")
    map_file = tmp_path / "lines.yaml"
    base = "items: data/*.txt\nitem_reader: {format: text}\nreduce: {aggregations: {n: count}}\n"
    map_file.write_text(base + "result_writer: {path: a-file/out}\n")
    no_result = pipes_map(str(map_file), cwd=tmp_path)
    assert no_result.returncode == 1
    assert no_result.stderr == "pipes map: result_writer.path: cannot create a-file/out: Not a directory\n"
    assert not (tmp_path / "state" / "map" / "lines" / "state.pickle").exists()  # no run began
    map_file.write_text(base)
    no_state = pipes_map(str(map_file), "--state-dir", "a-file/state", cwd=tmp_path)
    assert no_state.returncode == 1
    assert (
        no_state.stderr == "pipes map: cannot use the state folder a-file/state/map/lines: Not a directory\n"
    )


def test_failures_past_the_tolerated_percentage_fail_the_run(weather: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    corrupt_copies(weather, data)
    results = tmp_path / "results"
    done = pipes_map(str(tolerant_map_file(tmp_path, 5)), cwd=tmp_path, env=weather_env(data, results))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "tolerant-5: failed;" in last
    assert "items failed (tolerated: 5%)" in last
    assert not (results / "result.json").exists()
    assert run_json(results)["status"] == "FAILED"
    assert (results / "FAILED.jsonl").read_text().count("\n") >= 2


def test_a_missing_redrive_and_a_changed_map_file_are_one_line_errors(weather: Path, tmp_path: Path) -> None:
    env = weather_env(weather, tmp_path / "results")
    nothing = pipes_map(str(WEATHER / "monthly-max.yaml"), "--redrive", cwd=tmp_path, env=env)
    assert nothing.returncode == 1
    assert nothing.stderr.strip() == (
        f"pipes map: monthly-max: nothing to redrive: no earlier run in {Path('state/map/monthly-max')}"
    )
    assert pipes_map(str(WEATHER / "monthly-max.yaml"), cwd=tmp_path, env=env).returncode == 0
    clean = pipes_map(str(WEATHER / "monthly-max.yaml"), "--redrive", cwd=tmp_path, env=env)
    assert clean.returncode == 1
    assert clean.stderr.strip().endswith("nothing to redrive: the last run succeeded with no failed items")

    store = StateStore(tmp_path / "state" / "map" / "monthly-max")
    state = store.load()
    assert state is not None
    state.status, state.fingerprint = "RUNNING", "an older version of the map file"
    store.save(state)
    changed = pipes_map(str(WEATHER / "monthly-max.yaml"), cwd=tmp_path, env=env)
    assert changed.returncode == 1
    assert changed.stderr.strip() == (
        "pipes map: monthly-max: the map file (or a ${VAR} it uses) changed since the run in state/map/monthly-max "
        "began; "
        "run with --restart to start over"
    )
    restarted = pipes_map(str(WEATHER / "monthly-max.yaml"), "--restart", cwd=tmp_path, env=env)
    assert restarted.returncode == 0, restarted.stderr


# ------------------------------------------------------------------------------------ resume


GATE = '''
import os
import time


def gate(records):
    """Passes records through; the item named in MAP_GATE_ITEM waits until MAP_GATE_OPEN exists."""
    blocked = os.environ.get("MAP_GATE_ITEM", "")
    if blocked and records and records[0]["file"].endswith(blocked):
        while not os.path.exists(os.environ["MAP_GATE_OPEN"]):
            time.sleep(0.01)
    return records
'''


def start_gated_run(
    weather: Path, tmp_path: Path, stderr: int = subprocess.DEVNULL
) -> tuple[subprocess.Popen[bytes], StateStore, list[str]]:
    """``pipes map`` with one worker that stops at the middle item until ``tmp_path/open`` exists."""
    (tmp_path / "gate_function.py").write_text(GATE)
    map_file = tmp_path / "gated.yaml"
    map_file.write_text(
        (WEATHER / "monthly-max.yaml").read_text().replace("name: monthly-max", "name: gated")
        + "map: {function: 'gate_function:gate'}\nitem_batcher: {max_items: 1}\ncheckpoint_interval: 10ms\n"
    )
    items = sorted(str(p.relative_to(weather)) for p in weather.rglob("*.csv.gz"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), **weather_env(weather, tmp_path / "results")}
    env |= {"MAP_GATE_ITEM": items[len(items) // 2], "MAP_GATE_OPEN": str(tmp_path / "open")}
    proc = subprocess.Popen(
        [PIPES, "map", str(map_file), "--workers", "1", "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    return proc, StateStore(tmp_path / "state" / "map" / "gated"), items


def resume_gated_run(weather: Path, tmp_path: Path, items: list[str]) -> None:
    """Opens the gate, runs again, and checks the result equals the uninterrupted one."""
    results = tmp_path / "results"
    (tmp_path / "open").touch()
    resumed = pipes_map(
        str(tmp_path / "gated.yaml"), "--workers", "2", cwd=tmp_path, env=weather_env(weather, results)
    )
    assert resumed.returncode == 0, resumed.stderr
    assert result_of(results) == expected_monthly_max(weather)  # nothing lost, nothing counted twice
    summary = run_json(results)
    assert summary["items"]["succeeded"] == len(items)
    assert 0 < summary["records"]["read_this_session"] < summary["records"]["read"]


def test_kill_9_half_way_then_resume_gives_the_uninterrupted_result(weather: Path, tmp_path: Path) -> None:
    proc, store, items = start_gated_run(weather, tmp_path)
    try:
        workers: list[psutil.Process] = []

        def half_done() -> bool:
            workers[:] = psutil.Process(proc.pid).children(recursive=True)
            state = store.load() if (store.folder / "state.pickle").exists() else None
            return state is not None and len(state.done) == len(items) // 2

        wait_until_sync(half_done, timeout=60, what="half of the items checkpointed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert workers, "the pool's worker processes were not seen"
    # No orphans: the workers notice that pipes map is gone and exit by themselves.
    wait_until_sync(lambda: not any(w.is_running() and w.status() != "zombie" for w in workers), timeout=20)
    interrupted = store.load()
    assert interrupted is not None and interrupted.status == "RUNNING"
    assert len(interrupted.done) == len(items) // 2
    resume_gated_run(weather, tmp_path, items)

    results = tmp_path / "results"
    again = pipes_map(str(tmp_path / "gated.yaml"), cwd=tmp_path, env=weather_env(weather, results))
    assert again.returncode == 0, again.stderr
    summary = run_json(results)
    assert summary["records"]["read_this_session"] == summary["records"]["read"]  # an ended run: a new one


def test_ctrl_c_checkpoints_exits_130_and_the_next_run_resumes(weather: Path, tmp_path: Path) -> None:
    proc, store, items = start_gated_run(weather, tmp_path, stderr=subprocess.PIPE)
    try:

        def half_done() -> bool:
            state = store.load() if (store.folder / "state.pickle").exists() else None
            return state is not None and len(state.done) == len(items) // 2

        wait_until_sync(half_done, timeout=60, what="half of the items checkpointed")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"gated: interrupted; items {len(items) // 2}/{len(items)} done")
    assert last.endswith("interrupted; run pipes map again to resume")
    resume_gated_run(weather, tmp_path, items)


# ------------------------------------------------------------------------------------ the rest


def test_validate_locates_map_file_errors_and_accepts_the_examples(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "items: data/*.csv\n"
        "item_reader:\n"
        "  format: csv\n"
        "  delimeter: ';'\n"
        "filter:\n"
        "  - body: {value: [{numeric: ['>>', 1]}]}\n"
        "reduce:\n"
        "  aggregations:\n"
        "    n: {count: 'body.[', sum: x}\n"
    )
    done = subprocess.run(
        [PIPES, "validate", str(bad)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[0] == (
        f"{bad}:4:3: item_reader.delimeter: unknown key (check the spelling; see the docs for the accepted keys)"
    )
    assert lines[1].startswith(f"{bad}:9:5: reduce.aggregations.n: give exactly one of count, sum")
    assert len(lines) == 2  # the filter is compiled only once the file's schema is right

    ok = subprocess.run(
        [PIPES, "validate", str(WEATHER / "monthly-max.yaml"), str(ROOT / "configs" / "demo.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"{WEATHER / 'monthly-max.yaml'}: monthly-max: ok (map)" in ok.stdout
    assert "demo-orders: ok" in ok.stdout


def test_result_target_receives_the_result_records_and_json_logs(weather: Path, tmp_path: Path) -> None:
    map_file = tmp_path / "to-target.yaml"
    out = tmp_path / "delivered.jsonl"
    map_file.write_text(
        (WEATHER / "monthly-max.yaml").read_text().replace("name: monthly-max", "name: to-target")
        + f"result_target: {{type: file, path: '{out}'}}\n"
    )
    results = tmp_path / "results"
    done = pipes_map(str(map_file), "--log-format", "json", cwd=tmp_path, env=weather_env(weather, results))
    assert done.returncode == 0, done.stderr
    delivered = [json.loads(line) for line in out.read_text().splitlines()]
    assert delivered == expected_monthly_max(weather)
    logs = [json.loads(line) for line in done.stderr.splitlines()]  # every line is one JSON object
    finished = logs[-1]  # the summary, as an event
    assert finished["event"] == "map_finished"
    assert finished["status"] == "SUCCEEDED"
    assert finished["items"]["succeeded"] == 24


def test_json_logs_say_errors_as_json_too(weather: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("items: data/*.csv\nitem_reader: {format: csvv}\nreduce: {aggregations: {n: count}}\n")
    invalid = pipes_map(str(bad), "--log-format", "json", cwd=tmp_path)
    assert invalid.returncode == 1
    [entry] = [json.loads(line) for line in invalid.stderr.splitlines()]
    assert entry["event"] == "config_invalid"
    assert entry["error"].startswith(f"{bad}:2:15: item_reader.format: ")
    nothing = tmp_path / "nothing.yaml"
    nothing.write_text("items: data/*.csv\nitem_reader: {format: csv}\nreduce: {aggregations: {n: count}}\n")
    unmatched = pipes_map(str(nothing), "--log-format", "json", cwd=tmp_path)
    assert unmatched.returncode == 1
    [entry] = [json.loads(line) for line in unmatched.stderr.splitlines()]
    assert entry["event"] == "map_error"
    assert entry["error"] == "items: data/*.csv matches no file"


DIE_ONCE = '''
import os


def die_once(records):
    """Kills its worker process the first time it sees the item named in MAP_DIE_ITEM."""
    marker = os.environ["MAP_DIE_MARKER"]
    if records and records[0]["file"].endswith(os.environ["MAP_DIE_ITEM"]) and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return records
'''


def test_a_worker_that_dies_loses_only_its_task_which_is_retried(weather: Path, tmp_path: Path) -> None:
    (tmp_path / "die_function.py").write_text(DIE_ONCE)
    map_file = tmp_path / "dying.yaml"
    map_file.write_text(
        (WEATHER / "monthly-max.yaml").read_text().replace("name: monthly-max", "name: dying")
        + "map: {function: 'die_function:die_once'}\nretry: {backoff_initial: 10ms}\n"
    )
    items = sorted(str(p.relative_to(weather)) for p in weather.rglob("*.csv.gz"))
    results = tmp_path / "results"
    env = weather_env(weather, results) | {
        "MAP_DIE_ITEM": [i for i in items if i.startswith("2023")][2],
        "MAP_DIE_MARKER": str(tmp_path / "died"),
    }
    done = pipes_map(str(map_file), "--workers", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "died").exists()
    assert "map_item_failed" in done.stderr  # the lost task's items were retried
    assert result_of(results) == expected_monthly_max(weather)
