"""``pipes top``: a live view of every pipe of a running daemon, over its admin API.

On a terminal the table (drawn with Rich, on the terminal's alternate screen,
as ``top`` does) is refreshed every second from ``GET /pipes``: per pipe its
state, events in, filtered and delivered per second (from the counters'
growth between two polls), failed attempts, dead-lettered events, source lag
and events in flight. Keys select a pipe, sort the table, and stop or start
the selected pipe (``POST /pipes/NAME/stop|start``); ``q`` or Ctrl-C leaves
and gives the terminal back as it was.

When standard output is not a terminal (a pipe, a file, CI), it prints the
same table as plain aligned text instead: once, one interval after the first
poll (rates need two), or ``--iterations`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipes.admin import DEFAULT_ADMIN, TOKEN_ENV
from pipes.admin_client import AdminError, AdminUnreachable, call, run_client

__all__ = ["COLUMNS", "KEYS_HELP", "PipeRow", "Rates", "TopView", "plain_table", "top"]


@dataclass(frozen=True)
class Column:
    title: str
    key: str
    numeric: bool = True
    #: The title on the live view, where a long one takes two lines (so 80 columns hold the table).
    header: str = ""


COLUMNS = (
    Column("NAME", "name", numeric=False),
    Column("STATE", "state", numeric=False),
    Column("IN/S", "in_s"),
    Column("FILTERED/S", "filtered_s"),
    Column("DELIVERED/S", "delivered_s"),
    Column("FAILED", "failed"),
    Column("DEAD-LETTERED", "dead_lettered", header="DEAD-\nLETTERED"),
    Column("LAG", "lag"),
    Column("IN FLIGHT", "in_flight", header="IN\nFLIGHT"),
)

KEYS_HELP = "q quit  ↑/↓ select  </> sort column  r reverse  x stop  s start"

_STATE_STYLES = {"RUNNING": "green", "DEGRADED": "yellow", "FAILED": "bold red", "STOPPED": "dim"}


@dataclass(frozen=True)
class PipeRow:
    """One pipe as ``pipes top`` shows it; rates are None until two polls were made."""

    name: str
    state: str
    in_s: float | None
    filtered_s: float | None
    delivered_s: float | None
    failed: int
    dead_lettered: int
    lag: int | None
    in_flight: int

    def cells(self) -> list[str]:
        return [
            self.name,
            self.state,
            _rate(self.in_s),
            _rate(self.filtered_s),
            _rate(self.delivered_s),
            f"{self.failed:,}",
            f"{self.dead_lettered:,}",
            "-" if self.lag is None else f"{self.lag:,}",
            f"{self.in_flight:,}",
        ]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


class Rates:
    """Turns successive ``GET /pipes`` answers into rows, with rates over the time between them."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, dict[str, int]]] = {}

    def rows(self, pipes: list[dict[str, Any]], now: float) -> list[PipeRow]:
        rows = []
        seen: dict[str, tuple[float, dict[str, int]]] = {}
        for pipe in pipes:
            counters = pipe.get("counters", {})
            before = self._last.get(pipe["name"])
            rates: dict[str, float | None] = {}
            for key in ("received", "filtered", "delivered"):
                if before is None or now <= before[0]:
                    rates[key] = None
                else:
                    grown = counters.get(key, 0) - before[1].get(key, 0)
                    rates[key] = max(0.0, grown / (now - before[0]))  # a restart resets counters
            seen[pipe["name"]] = (now, counters)
            rows.append(
                PipeRow(
                    name=str(pipe["name"]),
                    state=str(pipe.get("state", "?")),
                    in_s=rates["received"],
                    filtered_s=rates["filtered"],
                    delivered_s=rates["delivered"],
                    failed=int(counters.get("failed", 0)),
                    dead_lettered=int(counters.get("dead_lettered", 0)),
                    lag=pipe.get("lag"),
                    in_flight=int(pipe.get("in_flight", 0)),
                )
            )
        self._last = seen
        return rows


class TopView:
    """What the live view shows and how keys change it: sort column, order, selected pipe, a message."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sort = 0
        self.reverse = False
        self.selected: str | None = None
        self.message = ""

    def ordered(self, rows: list[PipeRow]) -> list[PipeRow]:
        """Sorted by the chosen column (ties by name); a rate not known yet sorts last either way."""
        column = COLUMNS[self.sort]
        by_name = sorted(rows, key=lambda row: row.name)
        if not column.numeric:
            return sorted(by_name, key=lambda row: str(getattr(row, column.key)), reverse=self.reverse)
        known = [row for row in by_name if getattr(row, column.key) is not None]
        unknown = [row for row in by_name if getattr(row, column.key) is None]
        return sorted(known, key=lambda row: getattr(row, column.key), reverse=self.reverse) + unknown

    def press(self, key: str, rows: list[PipeRow]) -> tuple[str, str] | None:
        """Apply a key; an action for the caller (quit, or stop/start a pipe), or None."""
        ordered = self.ordered(rows)
        names = [row.name for row in ordered]
        index = names.index(self.selected) if self.selected in names else -1
        if key in ("q", "Q", "hangup"):
            return ("quit", "")
        if key in ("up", "k") and names:
            self.selected = names[max(0, index - 1)]
        elif key in ("down", "j") and names:
            self.selected = names[min(len(names) - 1, index + 1)]
        elif key in ("<", "left", ">", "right"):
            step = -1 if key in ("<", "left") else 1
            self.sort = (self.sort + step) % len(COLUMNS)
            self.reverse = COLUMNS[self.sort].numeric  # numbers largest first, names from A
        elif key == "r":
            self.reverse = not self.reverse
        elif key in ("x", "s"):
            if self.selected is None:
                self.message = "select a pipe first (↑/↓)"
                return None
            return ("stop" if key == "x" else "start", self.selected)
        return None

    def render(self, rows: list[PipeRow]) -> RenderableType:
        ordered = self.ordered(rows)
        if self.selected not in {row.name for row in ordered}:
            self.selected = ordered[0].name if ordered else None
        table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
        longest = max((len(row.name) for row in ordered), default=4)
        for index, column in enumerate(COLUMNS):
            title = column.header or column.title
            if index == self.sort:
                title += " ▼" if self.reverse else " ▲"
            table.add_column(
                title,
                justify="right" if column.numeric else "left",
                no_wrap=True,
                # Numbers may be squeezed on a narrow terminal; names and states never are.
                min_width={0: longest, 1: 8}.get(index),
            )
        for row in ordered:
            cells = row.cells()
            styled: list[RenderableType] = [
                Text(cell, style=_STATE_STYLES.get(cell, "") if i == 1 else "")
                for i, cell in enumerate(cells)
            ]
            table.add_row(*styled, style="reverse" if row.name == self.selected else None)
        header = Text(
            f"pipes top  {self.address}  {len(ordered)} pipe{'s' if len(ordered) != 1 else ''}  "
            f"{time.strftime('%H:%M:%S')}",
            style="bold",
        )
        footer = Text(KEYS_HELP, style="dim")
        parts: list[RenderableType] = [header, table, footer]
        if self.message:
            parts.append(Text(self.message))
        return Group(*parts)


def plain_table(rows: list[PipeRow]) -> list[str]:
    """The table as aligned plain text (what a script or a log gets)."""
    lines = [[column.title for column in COLUMNS], *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(width) if column.numeric else cell.ljust(width)
            for cell, width, column in zip(line, widths, COLUMNS, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _parse_keys(data: bytes) -> Iterator[str]:
    """Key names from what the terminal sent: arrows as up/down/left/right, others as their character."""
    arrows = {b"A": "up", b"B": "down", b"C": "right", b"D": "left"}
    i = 0
    while i < len(data):
        if data[i : i + 2] in (b"\x1b[", b"\x1bO") and i + 2 < len(data):
            name = arrows.get(data[i + 2 : i + 3])
            if name is not None:
                yield name
            i += 3
            continue
        yield data[i : i + 1].decode(errors="replace")
        i += 1


@contextlib.contextmanager
def _keys(stream: TextIO, queue: asyncio.Queue[str]) -> Iterator[bool]:
    """Keys pressed on ``stream`` go to ``queue`` (cbreak mode: no echo, Ctrl-C still a signal)."""
    try:
        fd = stream.fileno()
        interactive = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        interactive = False
    if not interactive:
        yield False
        return
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal is gone (closed, hung up): nobody is watching any more
            loop.remove_reader(fd)
            queue.put_nowait("hangup")
            return
        for key in _parse_keys(data):
            queue.put_nowait(key)

    tty.setcbreak(fd)
    loop.add_reader(fd, readable)
    try:
        yield True
    finally:
        loop.remove_reader(fd)
        with contextlib.suppress(termios.error, OSError):  # a terminal gone needs no restoring
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _poll(address: str, token: str | None, rates: Rates) -> list[PipeRow]:
    data = await call(address, "GET", "/pipes", token)
    return rates.rows(list(data.get("pipes", [])), time.monotonic())


async def _live(address: str, token: str | None, interval_s: float, console: Console) -> int:
    rates = Rates()
    view = TopView(address)
    rows = await _poll(address, token, rates)  # unreachable at start: one line and exit 1 (see top)
    keys: asyncio.Queue[str] = asyncio.Queue()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    hung_up = False
    try:
        with (
            _keys(sys.stdin, keys),
            Live(console=console, screen=True, auto_refresh=False, redirect_stderr=False) as live,
        ):
            next_poll = time.monotonic() + interval_s
            while not stop.is_set():
                live.update(view.render(rows), refresh=True)
                key = await _next_key(keys, stop, next_poll - time.monotonic())
                hung_up = hung_up or key == "hangup"
                if key is not None:
                    action = view.press(key, rows)
                    if action is not None and action[0] == "quit":
                        break
                    if action is not None:
                        view.message = await _control(address, token, *action)
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + interval_s
                    try:
                        rows = await _poll(address, token, rates)
                        if view.message.startswith("no answer"):
                            view.message = ""
                    except (AdminUnreachable, AdminError) as exc:
                        view.message = f"no answer from {address}: {exc}; trying again"
    except OSError:
        if not hung_up:
            raise
        # The terminal went away: what could not be written (the screen's restore) needs no one.
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return 0


async def _next_key(keys: asyncio.Queue[str], stop: asyncio.Event, wait_s: float) -> str | None:
    if wait_s <= 0:
        return None if keys.empty() else keys.get_nowait()
    get = asyncio.ensure_future(keys.get())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({get, stopped}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (get, stopped):
            task.cancel()
        await asyncio.gather(get, stopped, return_exceptions=True)
    return get.result() if get in done else None


async def _control(address: str, token: str | None, verb: str, name: str) -> str:
    try:
        data = await call(address, "POST", f"/pipes/{quote(name, safe='')}/{verb}", token)
    except (AdminUnreachable, AdminError) as exc:
        return f"{verb} {name}: {exc}"
    return f"{verb} {name}: desired {data['desired_state']} (now {data['state']})"


async def _plain(address: str, token: str | None, interval_s: float, iterations: int, out: TextIO) -> int:
    rates = Rates()
    await _poll(address, token, rates)
    for n in range(iterations):
        await asyncio.sleep(interval_s)
        rows = await _poll(address, token, rates)
        if n:
            print(file=out)
        for line in plain_table(sorted(rows, key=lambda row: row.name)):
            print(line, file=out)
        out.flush()
    return 0


def top(
    address: str | None = None,
    interval_s: float = 1.0,
    iterations: int = 1,
    out: TextIO | None = None,
) -> int:
    """``pipes top``: the live view on a terminal, else ``iterations`` plain tables."""
    address = address or DEFAULT_ADMIN
    stream = out or sys.stdout
    token = os.environ.get(TOKEN_ENV)
    if stream.isatty():
        console = Console(file=stream, highlight=False)
        return run_client("top", address, _live(address, token, interval_s, console))
    return run_client("top", address, _plain(address, token, interval_s, iterations, stream))
