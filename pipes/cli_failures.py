"""``pipes dlq ls|show|redrive`` and ``pipes replay``: the command line for when things fail.

Each command works through the running daemon when there is one (its admin
API, ``pipes.admin_failures``): the daemon has the pipe's environment, its
checkpoint store, and, for replay, the pipe itself to stop and start. With
``--config PATH`` and no daemon that runs the pipe (none at ``--admin``, or
``--admin off``), the command loads the pipe from its file and works
in-process, with the checkpoint store of ``--state-dir`` / ``--state`` as
``pipes run`` would use it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import aclosing
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from pipes.admin import DEFAULT_ADMIN, TOKEN_ENV
from pipes.admin_client import AdminError, AdminUnreachable, call, stream
from pipes.checkpoints import CheckpointStore
from pipes.cli import DEFAULT_STATE_DIR, EXIT_STDOUT_CLOSED, UsageError, _load, _store
from pipes.config import PipeDefinition
from pipes.connector import ConnectorContext
from pipes.dead_letters import CannotReadBack, Selection
from pipes.errors import PipesError
from pipes.observe import LogOutput, configure_logging
from pipes.redrive import Redrive, RedriveProgress, open_log
from pipes.replay import CannotReplay, ReplayRefused, parse_point, replay

__all__ = ["add_commands"]


class Failed(Exception):
    """The command could not do its work: one line on stderr, exit 1."""


def add_commands(sub: Any) -> None:
    """Add ``dlq`` and ``replay`` to the ``pipes`` command's subparsers."""
    dlq = sub.add_parser("dlq", help="inspect a pipe's dead letters and send them through it again")
    actions = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)

    ls = actions.add_parser("ls", help="count the dead letters waiting: oldest, newest, by stage and error")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="print the summary as one JSON object")

    show = actions.add_parser("show", help="print the dead letters waiting, as JSON lines")
    _common(show)
    _selection_options(show)
    show.add_argument("--redriven", action="store_true", help="also the records a redrive already sent again")

    redrive = actions.add_parser("redrive", help="send dead letters through the pipe again")
    _common(redrive)
    _selection_options(redrive)
    redrive.add_argument(
        "--dry-run", action="store_true", help="report per record what each stage would do; write nothing"
    )
    redrive.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    dlq.set_defaults(func=cmd_dlq)

    rp = sub.add_parser(
        "replay", help="move a pipe back to a time or position (a running daemon restarts it)"
    )
    _common(rp)
    rp.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="POINT",
        help="a time (2026-11-26T08:00:00Z, now-1h), beginning, a position, or PARTITION=POSITION,...",
    )
    rp.add_argument(
        "--to", dest="until", metavar="POINT", help="stop the pipe once it settled up to here (daemon only)"
    )
    rp.add_argument("--force", action="store_true", help="move forward even past events never settled")
    rp.add_argument("--json", action="store_true", help="print the answer as one JSON object")
    rp.set_defaults(func=cmd_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipe", metavar="PIPE", help="the pipe's name")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PATH",
        help="the pipe's file or folder: work in-process when no daemon runs the pipe (repeatable)",
    )
    parser.add_argument(
        "--admin", metavar="HOST:PORT", default=DEFAULT_ADMIN, help="the daemon's admin API, or off"
    )
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("PIPES_STATE_DIR", DEFAULT_STATE_DIR),
        help="in-process: the folder of checkpoints, as pipes run has it",
    )
    parser.add_argument(
        "--state", default=os.environ.get("PIPES_STATE"), metavar="URL", help="in-process: a redis:// store"
    )
    parser.add_argument(
        "--log-format",
        choices=["console", "json"],
        default="console",
        help="json: one JSON object a line on stderr",
    )


def _selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--where", metavar="PATTERN", help="an event pattern over the dead-letter record (JSON)"
    )
    parser.add_argument("--since", metavar="TIME", help="dead-lettered at or after: ISO 8601 or now-1h")
    parser.add_argument("--limit", metavar="N", help="at most N records")


# ---------------------------------------------------------------------- where the work is done


class Place:
    """Where a command works: a daemon's address, or a definition and a checkpoint store in-process."""

    def __init__(self, address: str | None = None, definition: PipeDefinition | None = None) -> None:
        self.address = address
        self.definition = definition

    @property
    def token(self) -> str | None:
        return os.environ.get(TOKEN_ENV) or None

    def path(self, pipe: str, tail: str = "") -> str:
        return f"/pipes/{quote(pipe, safe='')}{tail}"


async def _place(args: argparse.Namespace, command: str) -> Place:
    """The daemon, when one runs the pipe; else the pipe from ``--config``; else ``Failed``."""
    address = None if str(args.admin).strip().lower() == "off" else args.admin
    if address is not None:
        try:
            await call(address, "GET", Place().path(args.pipe), os.environ.get(TOKEN_ENV), timeout_s=5.0)
            return Place(address=address)
        except AdminUnreachable:
            if not args.config:
                raise Failed(
                    f"no daemon at {address} (is `pipes run` running with --admin?); "
                    "to work without one, give the pipe's files with --config PATH"
                ) from None
        except AdminError as exc:
            if "HTTP 404" not in str(exc) or not args.config:
                raise Failed(str(exc)) from None
        except ValueError as exc:
            raise UsageError(f"--admin {exc}") from None
    elif not args.config:
        raise UsageError("--admin off: give the pipe's files with --config PATH")
    definitions, errors = _load(args.config)
    if errors:
        raise Failed("\n".join(errors))
    for definition in definitions:
        if definition.name == args.pipe:
            return Place(definition=definition)
    names = ", ".join(d.name for d in definitions) or "none"
    raise UsageError(f"no pipe named {args.pipe!r} in {', '.join(args.config)} (pipes: {names})")


def _run(
    command: str, args: argparse.Namespace, work: Callable[[LogOutput], Coroutine[Any, Any, int]]
) -> int:
    """Run the command with logs on stderr (``--log-format``); its failures as one line and exit 1."""
    log = configure_logging(args.log_format, _Stderr())
    try:
        try:
            return int(asyncio.run(work(log)))
        except UsageError as exc:
            if not log.json:
                raise
            log.say("usage_error", "", level="error", error=f"pipes {command}: {exc}")
            return 2
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_STDOUT_CLOSED
        except (Failed, CannotReadBack, CannotReplay, AdminError) as exc:
            message = str(exc)
        except AdminUnreachable as exc:
            message = f"the daemon went away ({exc})"
        except PipesError as exc:
            message = " ".join(str(exc).split())
        log.say("command_failed", f"pipes {command}: {message}", level="error", error=message)
        return 1
    finally:
        log.close()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _selection(args: argparse.Namespace) -> Selection:
    try:
        return Selection.parse(args.where, args.since, args.limit, now_s=time.time())
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _out(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


# ---------------------------------------------------------------------- dlq


def cmd_dlq(args: argparse.Namespace) -> int:
    action = args.dlq_command
    command = f"dlq {action}"
    if action in ("show", "redrive"):
        _selection(args)  # a bad --where is a usage error before anything else
    if action == "ls":
        return _run(command, args, lambda log: _ls(args))
    if action == "show":
        return _run(command, args, lambda log: _show(args))
    return _run(command, args, lambda log: _redrive(args, log))


def _local_store(args: argparse.Namespace) -> CheckpointStore:
    return _store(args)


async def _ls(args: argparse.Namespace) -> int:
    place = await _place(args, "dlq ls")
    if place.address is not None:
        summary = await call(place.address, "GET", place.path(args.pipe, "/dead-letters"), place.token, 60.0)
    else:
        assert place.definition is not None
        store = _local_store(args)
        try:
            log = await open_log(place.definition, store, ConnectorContext(pipe=args.pipe))
            try:
                summary = {"name": args.pipe, **(await log.summary()).as_dict()}
            finally:
                await log.reader.stop()
        finally:
            await store.close()
    if args.json:
        _out(summary)
        return 0
    for line in summary_lines(summary):
        print(line)
    return 0


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """``pipes dlq ls`` as text."""
    count = summary.get("count", 0)
    lines = [
        f"{summary.get('name')}: {count:,} dead letter{'s' if count != 1 else ''} waiting "
        f"({summary.get('type')}; {summary.get('redriven', 0):,} redriven before, "
        f"{summary.get('unreadable', 0):,} unreadable)"
    ]
    if count:
        lines.append(f"  oldest {summary.get('oldest')}, newest {summary.get('newest')}")
        for key, title in (("by_stage", "by stage"), ("by_error", "by error")):
            counts = summary.get(key) or {}
            lines.append(f"  {title}: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
    return lines


async def _show(args: argparse.Namespace) -> int:
    place = await _place(args, "dlq show")
    if place.address is not None:
        query = {key: value for key in ("where", "since", "limit") if (value := getattr(args, key))}
        if args.redriven:
            query["redriven"] = "true"
        path = place.path(args.pipe, "/dead-letters/records") + (f"?{urlencode(query)}" if query else "")
        async with aclosing(stream(place.address, "GET", path, place.token)) as lines:
            async for line in lines:
                if isinstance(line, dict) and line.keys() == {"error"}:
                    raise Failed(str(line["error"]))
                _out(line)
        return 0
    assert place.definition is not None
    store = _local_store(args)
    try:
        log = await open_log(place.definition, store, ConnectorContext(pipe=args.pipe))
        try:
            async with aclosing(log.scan(_selection(args), redriven=args.redriven)) as batches:
                async for batch in batches:
                    for pending in batch:
                        letter = pending.letter
                        if letter.record is not None:
                            _out(letter.record)
                        else:
                            text = letter.raw.decode("utf-8", "replace")
                            _out({"unreadable": text, "position": letter.position})
        finally:
            await log.reader.stop()
    finally:
        await store.close()
    return 0


# ---------------------------------------------------------------------- redrive


class _Stderr:
    """stderr as it is at each write (a progress bar redirects it while it is drawn)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class ProgressBar:
    """A Rich progress bar of a redrive on stderr (a terminal only), and its summary line."""

    def __init__(self, pipe: str, show: bool) -> None:
        self.pipe = pipe
        self._bar: Any = None
        self._task: Any = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("redrive [bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.pipe, total=None, counts="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: dict[str, Any]) -> None:
        if self._bar is None:
            return
        counts = (
            f"delivered {progress['delivered']:,}  filtered {progress['filtered']:,}  "
            f"failed again {progress['failed_again']:,}"
        )
        self._bar.update(
            self._task, total=progress["selected"] or None, completed=progress["done"], counts=counts
        )


def redrive_line(summary: dict[str, Any]) -> str:
    """The summary at the end of ``pipes dlq redrive``."""
    verb = "would deliver" if summary.get("dry_run") else "delivered"
    line = (
        f"{summary['pipe']}: {verb} {summary['delivered']:,}, filtered {summary['filtered']:,}, "
        f"dropped {summary['dropped']:,}, failed again {summary['failed_again']:,} "
        f"of {summary['selected']:,} selected in {summary['seconds']:.1f}s"
    )
    if summary.get("unreadable"):
        line += f"; {summary['unreadable']:,} unreadable left alone"
    if summary.get("stopped"):
        line += f"; stopped after {summary['done']:,} (run it again to go on)"
    return line


async def _redrive(args: argparse.Namespace, log: LogOutput) -> int:
    place = await _place(args, "dlq redrive")
    show = not args.no_progress and not log.json and sys.stderr.isatty()
    summary: dict[str, Any] | None = None
    with ProgressBar(args.pipe, show) as bar:
        if place.address is not None:
            summary = await _redrive_through(place, args, bar)
        else:
            summary = await _redrive_here(place, args, bar)
    if summary is None:
        raise Failed("the daemon's answer ended without a summary")
    log.say("redrive_summary", redrive_line(summary), **summary)
    return 1 if summary["failed_again"] or summary["stopped"] else 0


async def _redrive_through(place: Place, args: argparse.Namespace, bar: ProgressBar) -> dict[str, Any] | None:
    assert place.address is not None
    body = {"where": args.where, "since": args.since, "limit": args.limit, "dry_run": args.dry_run}
    summary = None
    lines = stream(place.address, "POST", place.path(args.pipe, "/redrive"), place.token, body)
    async with aclosing(lines) as answers:
        async for line in answers:
            if "progress" in line:
                bar.update(line["progress"])
            elif "dry_run" in line:
                _out(line["dry_run"])
            elif "summary" in line:
                summary = line["summary"]
            elif "error" in line:
                raise Failed(str(line["error"]))
    return summary


async def _redrive_here(place: Place, args: argparse.Namespace, bar: ProgressBar) -> dict[str, Any]:
    assert place.definition is not None
    store = _local_store(args)
    job = Redrive(
        place.definition,
        store=store,
        selection=_selection(args),
        dry_run=args.dry_run,
        on_progress=lambda progress: bar.update(progress.as_dict()),
        on_dry_run=_out,
    )
    loop = asyncio.get_running_loop()
    stops = 0

    def on_signal(signum: int) -> None:
        nonlocal stops
        stops += 1
        if stops > 1:
            os._exit(128 + signum)  # the ledger is saved per batch: at most that batch goes again
        print(
            f"pipes dlq redrive: {signal.Signals(signum).name}, finishing the batch in hand", file=sys.stderr
        )
        job.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        progress: RedriveProgress = await job.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await store.close()
    return progress.as_dict()


# ---------------------------------------------------------------------- replay


def cmd_replay(args: argparse.Namespace) -> int:
    now_s = time.time()
    try:
        start = parse_point(args.start, now_s)
        until = parse_point(args.until, now_s) if args.until else None
    except ValueError as exc:
        raise UsageError(f"--from/--to: {exc}") from None
    return _run("replay", args, lambda log: _replay(args, start, until))


async def _replay(args: argparse.Namespace, start: Any, until: Any) -> int:
    place = await _place(args, "replay")
    if place.address is not None:
        body = {"from": args.start, "to": args.until, "force": args.force}
        answer = await call(
            place.address, "POST", place.path(args.pipe, "/replay"), place.token, 300.0, body=body
        )
    else:
        assert place.definition is not None
        if until is not None:
            raise UsageError("--to needs a running daemon: it stops the pipe once it got there")
        store = _local_store(args)
        try:
            moves = await replay(place.definition, store, start, force=args.force, state_dir=args.state_dir)
        except ReplayRefused as exc:
            raise Failed(str(exc)) from None
        finally:
            await store.close()
        answer = {"name": args.pipe, "partitions": [m.as_dict() for m in moves], "state": None}
    if args.json:
        _out(answer)
        return 0
    for line in replay_lines(answer, args.start):
        print(line)
    return 0


def replay_lines(answer: dict[str, Any], start: str) -> list[str]:
    """``pipes replay`` as text: a line per partition, then what the pipe does now."""
    rows = [("PARTITION", "OLD", "NEW", "EVENTS")]
    for move in answer.get("partitions", []):
        events = move.get("events")
        rows.append(
            (
                str(move["partition"]),
                "-" if move.get("old") is None else str(move["old"]),
                "-" if move.get("new") is None else str(move["new"]),
                "?" if events is None else f"{events:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{answer['name']}: replayed from {start}"]
    for row in rows:
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    state = answer.get("state")
    if state is None:
        lines.append("moved in the checkpoint store; the pipe goes on from there at its next start")
    else:
        lines.append(f"pipe {state} (desired {answer.get('desired_state')})")
        if answer.get("stops_at_to"):
            lines.append("it stops again once every partition settled up to --to")
    return lines
