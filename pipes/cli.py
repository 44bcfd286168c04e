"""The ``pipes`` command.

Every user mistake ends in one line on stderr and a non-zero exit, never a
traceback: exit 1 for invalid definitions or a failed pipe, exit 2 for bad
arguments (as argparse does, and as ``aws events test-event-pattern`` does for
an invalid pattern).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from pipes.checkpoints import CheckpointStore, FileCheckpointStore
from pipes.config import FileResult, PipeDefinition, load_paths
from pipes.errors import ConfigError
from pipes.observe import LogOutput, configure_logging

__all__ = ["main"]

DEFAULT_STATE_DIR = "state"
#: Exit status when the reader of standard output went away, as a Unix tool killed by SIGPIPE has it.
EXIT_STDOUT_CLOSED = 128 + signal.SIGPIPE


class UsageError(Exception):
    """A bad argument: one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    #: The arguments as given: --workers starts workers with the same ones.
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        print(f"pipes {args.command}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipes", description="Self-hosted EventBridge Pipes: run and test YAML pipe definitions."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the pipes in files or folders of YAML")
    run.add_argument("paths", nargs="+", metavar="PATH", help="pipe files, or folders searched for *.yaml")
    run.add_argument("--once", action="store_true", help="exit when every source is caught up and settled")
    run.add_argument(
        "--state-dir",
        default=os.environ.get("PIPES_STATE_DIR", DEFAULT_STATE_DIR),
        help="folder for checkpoints and connector state (default: $PIPES_STATE_DIR or ./state)",
    )
    run.add_argument(
        "--state",
        default=os.environ.get("PIPES_STATE"),
        metavar="URL",
        help="checkpoint store: a redis://... URL (default: files under --state-dir)",
    )
    run.add_argument(
        "--drain-timeout",
        default="30s",
        help="on SIGTERM/SIGINT, how long in-flight work may take to finish (default 30s)",
    )
    run.add_argument("--log-format", choices=["console", "json"], default="console")
    run.add_argument("--no-progress", action="store_true", help="no live progress line on a terminal")
    run.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="admin API address, or off (default 127.0.0.1:9900; off with --once unless given)",
    )
    run.add_argument(
        "--admin-insecure",
        action="store_true",
        help="serve the admin API on a non-loopback address without PIPES_ADMIN_TOKEN",
    )
    run.add_argument(
        "--admin-tls-cert", metavar="PEM", help="serve the admin API over HTTPS with this certificate"
    )
    run.add_argument("--admin-tls-key", metavar="PEM", help="the private key of --admin-tls-cert")
    run.add_argument(
        "--admin-allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name clients use for this host in the admin API's Host header (repeatable)",
    )
    run.add_argument("--watch", action="store_true", help="reload when pipe files change (as SIGHUP does)")
    run.add_argument(
        "--ui-write",
        action="store_true",
        help="let the console (/ui on the admin address) save pipe files into the first folder among "
        "PATHs and reload (default: it offers them to download)",
    )
    run.add_argument(
        "--start-timeout",
        default="30s",
        help="with --once, give up when a system stays unreachable this long at start (default 30s)",
    )
    run.add_argument(
        "--reset-checkpoint",
        action="append",
        default=[],
        metavar="PIPE",
        help="forget PIPE's stored checkpoint before running, so it starts over (repeatable)",
    )
    run.add_argument(
        "--coordination",
        metavar="URL",
        default=os.environ.get("PIPES_COORDINATION"),
        help="share pipes that cannot be shared (file, generator, webhook...) with other daemons: "
        "each runs on one of them, under a lease in this system (redis://...)",
    )
    run.add_argument(
        "--lease-time",
        default="15s",
        help="with --coordination: how long a dead daemon's pipes wait before another takes them (default 15s)",
    )
    run.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="run N worker processes (auto: one per core); pipes read through consumer groups "
        "run in all of them, the others in one (default 1)",
    )
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    run.add_argument("--worker-count", type=int, help=argparse.SUPPRESS)
    run.add_argument("--summary-file", help=argparse.SUPPRESS)
    run.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="event loop: uvloop when installed (pipes[fast]) unless asyncio is asked for (default auto)",
    )
    run.set_defaults(func=cmd_run)

    for name, text in (
        ("status", "show the pipes of a running daemon (through its admin API)"),
        ("stop", "stop one pipe of a running daemon (drained and checkpointed)"),
        ("start", "start one pipe of a running daemon"),
        ("reload", "make a running daemon read its pipe files again (as SIGHUP does)"),
    ):
        client = sub.add_parser(name, help=text)
        if name in ("stop", "start"):
            client.add_argument("name", metavar="NAME", help="the pipe's name")
        client.add_argument(
            "--admin", metavar="HOST:PORT", default="127.0.0.1:9900", help="the daemon's admin API"
        )
        client.set_defaults(func=cmd_admin_client)

    _map_parser(sub)

    tap = sub.add_parser("tap", help="print events live as they pass a pipe's stages (from a running daemon)")
    tap.add_argument("name", metavar="NAME", help="the pipe's name")
    tap.add_argument(
        "--stage",
        action="append",
        metavar="STAGE",
        help="source, filter, enrichment, transform, target or dead_letter (repeatable or comma-separated; "
        "default: all)",
    )
    tap.add_argument(
        "--where", metavar="PATTERN", help="an event pattern over the tap line (JSON, file://PATH)"
    )
    tap.add_argument("--limit", type=int, metavar="N", help="stop after N lines")
    tap.add_argument(
        "--rate",
        metavar="N[/s]",
        help="at most N lines per second (default 200; 0 for every line, which costs the pipe more)",
    )
    tap.add_argument("--admin", metavar="HOST:PORT", default="127.0.0.1:9900", help="the daemon's admin API")
    tap.set_defaults(func=cmd_tap)

    top = sub.add_parser("top", help="a live view of every pipe of a running daemon")
    top.add_argument("--admin", metavar="HOST:PORT", default="127.0.0.1:9900", help="the daemon's admin API")
    top.add_argument("--interval", default="1s", help="time between refreshes (default 1s)")
    top.add_argument(
        "--iterations",
        "-n",
        type=int,
        default=1,
        metavar="N",
        help="when stdout is not a terminal: print N tables, one interval apart (default 1)",
    )
    top.set_defaults(func=cmd_top)

    validate = sub.add_parser("validate", help="check pipe and map files; exit 1 if any is invalid")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.set_defaults(func=cmd_validate)

    test = sub.add_parser(
        "test", help="run a pipe's tests: cases, or one --event through filter, enrichment and transform"
    )
    test.add_argument("path", metavar="PATH", help="a pipe file, or a folder: every pipe file's tests")
    test.add_argument(
        "--event",
        help="one source record to show stage by stage (JSON text, @FILE, file://PATH or -); "
        "without it the files' tests: cases run",
    )
    test.add_argument("--pipe", help="only this pipe (with --event: which one, when the file holds several)")
    test.set_defaults(func=cmd_test)

    tep = sub.add_parser("test-event-pattern", help="does an event match a pattern? (as aws events does)")
    tep.add_argument("--event-pattern", required=True, help="JSON text, file://PATH or -")
    tep.add_argument("--event", required=True, help="JSON text, file://PATH or -")
    tep.set_defaults(func=cmd_test_event_pattern)

    rt = sub.add_parser("render-template", help="render an input template against an event")
    rt.add_argument("--template", required=True, help="template text, file://PATH or -")
    rt.add_argument("--event", required=True, help="JSON text, file://PATH or -")
    rt.add_argument("--pipe-name", default="pipe", help="value of <aws.pipes.pipe-name>")
    rt.set_defaults(func=cmd_render_template)

    connectors = sub.add_parser("connectors", help="list installed connectors and their roles")
    connectors.set_defaults(func=cmd_connectors)

    schema = sub.add_parser("schema", help="print the JSON schema of the pipe format")
    schema.set_defaults(func=cmd_schema)

    from pipes.cli_failures import add_commands  # dlq ls|show|redrive, replay

    add_commands(sub)
    return parser


# ---------------------------------------------------------------------- arguments


_stdin_used = False


def read_argument(value: str, *, what: str) -> str:
    """Text from ``value``: itself, ``file://PATH``, ``@PATH``, or ``-`` for stdin (once)."""
    global _stdin_used
    if value == "-":
        if _stdin_used:
            raise UsageError(f"{what}: only one argument can be read from stdin")
        _stdin_used = True
        return sys.stdin.read()
    for prefix in ("file://", "@"):
        if value.startswith(prefix):
            path = value[len(prefix) :]
            try:
                return Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    return value


def read_json_argument(value: str, *, what: str) -> Any:
    text = read_argument(value, what=what)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None


# ---------------------------------------------------------------------- commands


def _load(paths: Sequence[str]) -> tuple[list[PipeDefinition], list[str]]:
    results: list[FileResult] = load_paths(paths)
    errors = [line for r in results for line in r.errors]
    missing = [p for p in paths if not Path(p).exists()]
    errors = [f"{p}: no such file or folder" for p in missing] + [
        e for e in errors if not any(e.startswith(f"{m}:") for m in missing)
    ]
    definitions = [d for r in results for d in r.pipes]
    seen: dict[str, str] = {}
    for d in definitions:
        if d.name in seen and seen[d.name] != d.file:
            errors.append(f"{d.file}:1:1: name: pipe {d.name!r} is also defined in {seen[d.name]}")
        seen.setdefault(d.name, d.file)
    if not results and not missing:
        errors.append(f"{', '.join(paths)}: no pipe files (*.yaml, *.yml) found")
    return definitions, errors


def cmd_validate(args: argparse.Namespace) -> int:
    from pipes.map.command import split_map_files, validate_map_files

    map_files, pipe_paths = split_map_files(args.paths)
    definitions, errors = _load(pipe_paths) if pipe_paths or not map_files else ([], [])
    maps_ok, map_errors = validate_map_files(map_files)
    errors += map_errors
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        return 1
    for d in definitions:
        print(f"{d.file}: {d.name}: ok")
    for line in maps_ok:
        print(line)
    return 0


def _map_parser(sub: Any) -> None:
    def lazy(name: str) -> Any:
        # pipes.map is imported only when `pipes map` runs, not for every command.
        def parse(text: str) -> Any:
            from pipes.map import command

            return getattr(command, name)(text)

        return parse

    parse_workers, parse_executor = lazy("parse_workers"), lazy("parse_executor")
    run = sub.add_parser("map", help="run a map file: map over many files, then reduce (docs/map.md)")
    run.add_argument("path", metavar="MAP_FILE")
    run.add_argument(
        "--workers", type=parse_workers, default="auto", help="worker processes (default: auto, one per core)"
    )
    run.add_argument(
        "--executor",
        type=parse_executor,
        default="local",
        help="local (default), dask (a local Dask cluster) or dask://HOST:PORT",
    )
    run.add_argument(
        "--restart", action="store_true", help="start a new run instead of resuming an interrupted one"
    )
    run.add_argument(
        "--redrive", action="store_true", help="run the failed items of the last run again and merge them in"
    )
    run.add_argument(
        "--state-dir",
        default=os.environ.get("PIPES_STATE_DIR", DEFAULT_STATE_DIR),
        help="folder for the run's checkpoints (default: $PIPES_STATE_DIR or ./state)",
    )
    run.add_argument("--log-format", choices=["console", "json"], default="console")
    run.add_argument("--no-progress", action="store_true", help="no live progress bar on a terminal")
    run.set_defaults(func=cmd_map)


def cmd_map(args: argparse.Namespace) -> int:
    from pipes.map.command import run_map

    if args.restart and args.redrive:
        raise UsageError("--restart and --redrive do not go together")
    return run_map(
        args.path,
        workers=args.workers,
        executor=args.executor,
        restart=args.restart,
        redrive=args.redrive,
        state_dir=args.state_dir,
        log_format=args.log_format,
        progress=not args.no_progress,
    )


def _store(args: argparse.Namespace) -> CheckpointStore:
    """Files under --state-dir, or the store of --state's URL scheme (an entry point, see pipes.plugins)."""
    if args.state:
        from pipes.plugins import CHECKPOINT_STORES, UnknownBackend, open_backend

        try:
            store: Any = open_backend(CHECKPOINT_STORES, args.state)
        except UnknownBackend as exc:
            raise UsageError(f"--state {exc} (or leave it out for files under --state-dir)") from None
        except Exception as exc:  # a backend that refuses its URL
            raise UsageError(f"--state {args.state}: {exc}") from None
        return store  # type: ignore[no-any-return]
    return FileCheckpointStore(Path(args.state_dir) / "checkpoints")


def _leases(args: argparse.Namespace) -> Any:
    """The lease keeper of --coordination (None without it)."""
    if not args.coordination:
        return None
    from pipes.lease_keeper import LeaseKeeper
    from pipes.plugins import COORDINATION, UnknownBackend, open_backend
    from pipes.units import parse_duration

    if args.once:
        raise UsageError("--coordination is for long-running daemons; leave it out with --once")
    try:
        ttl_s = parse_duration(args.lease_time)
    except ValueError as exc:
        raise UsageError(f"--lease-time: {exc}") from None
    if ttl_s < 1:
        raise UsageError("--lease-time: at least 1s (renewals come every third of it)")
    try:
        leases: Any = open_backend(COORDINATION, args.coordination)
    except UnknownBackend as exc:
        raise UsageError(f"--coordination {exc}") from None
    except Exception as exc:
        raise UsageError(f"--coordination {args.coordination}: {exc}") from None
    import structlog

    return LeaseKeeper(leases, ttl_s, structlog.get_logger().bind(component="coordination"))


def cmd_run(args: argparse.Namespace) -> int:
    """``pipes run``: everything it writes to stderr goes through one ``TerminalLines``.

    So log lines never land inside the progress block, and with ``--log-format
    json`` every line is one JSON object, usage errors included.
    """
    from pipes.terminal import TerminalLines

    terminal = TerminalLines(sys.stderr)
    log = configure_logging(args.log_format, terminal)
    stderr, sys.stderr = sys.stderr, terminal
    try:
        return _run_command(args, log, terminal)
    except UsageError as exc:
        if not log.json:
            raise
        log.say("usage_error", "", level="error", error=f"pipes run: {exc}")
        return 2
    finally:
        sys.stderr = stderr
        terminal.close()
        log.close()


def _run_command(args: argparse.Namespace, log: LogOutput, terminal: Any) -> int:
    from pipes.admin import DEFAULT_ADMIN, TOKEN_ENV, parse_admin
    from pipes.admin_guard import exposure_problem, tls_context
    from pipes.units import parse_duration

    try:
        drain_timeout_s = parse_duration(args.drain_timeout)
    except ValueError as exc:
        raise UsageError(f"--drain-timeout: {exc}") from None
    try:
        args.start_timeout_s = parse_duration(args.start_timeout)
    except ValueError as exc:
        raise UsageError(f"--start-timeout: {exc}") from None
    loop_factory = event_loop_factory(args.loop)
    from pipes.workers.command import parse_workers

    try:
        workers = parse_workers(args.workers)
    except ValueError as exc:
        raise UsageError(f"--workers {exc}") from None
    # --once runs are tests and demos: no port to fight over unless asked for.
    admin_text = args.admin if args.admin is not None else ("off" if args.once else DEFAULT_ADMIN)
    try:
        admin = parse_admin(admin_text)
    except ValueError as exc:
        raise UsageError(f"--admin {exc}") from None
    args.admin_tls = None
    if admin is not None:
        problem = exposure_problem(admin[0], os.environ.get(TOKEN_ENV), args.admin_insecure)
        if problem:
            raise UsageError(f"--admin {admin_text}: {problem}")
        if bool(args.admin_tls_cert) != bool(args.admin_tls_key):
            raise UsageError("--admin-tls-cert and --admin-tls-key go together")
        if args.admin_tls_cert:
            try:
                args.admin_tls = tls_context(args.admin_tls_cert, args.admin_tls_key)
            except ValueError as exc:
                raise UsageError(f"--admin-tls-cert: {exc}") from None
    args.config_dir = next((Path(p) for p in args.paths if Path(p).is_dir()), None)
    if args.ui_write and admin is None:
        raise UsageError("--ui-write: the console is served by the admin API, which is off (give --admin)")
    if args.ui_write and args.config_dir is None:
        raise UsageError("--ui-write: no folder among the PATHs (the console writes new pipe files into one)")
    definitions, errors = _load(args.paths)
    if errors:
        for line in errors:
            log.say("config_invalid", line, level="error", error=line)
        return 1
    if not definitions:
        problem = "no pipes defined in " + ", ".join(args.paths)
        log.say("no_pipes", f"pipes run: {problem}", level="error", error=problem)
        return 1
    unknown = sorted(set(args.reset_checkpoint) - {d.name for d in definitions})
    if unknown:
        raise UsageError(f"--reset-checkpoint: no pipe named {', '.join(unknown)} in {', '.join(args.paths)}")
    if workers > 1 and args.worker_index is None:
        from pipes.workers.command import supervise

        if args.reset_checkpoint:
            # Done once here, before any worker starts (the workers get the flag too, harmlessly late:
            # strip it so a restarted worker never forgets a checkpoint again).
            store = _store(args)
            asyncio.run(_reset_all(args.reset_checkpoint, definitions, store, log))
            args.argv = _without(args.argv, "--reset-checkpoint")
        return asyncio.run(
            supervise(args, args.argv[1:], workers, admin, log=log, terminal=terminal),
            loop_factory=loop_factory,
        )
    store = _store(args)
    args.leases = _leases(args)
    if args.leases is not None and not args.state:
        problem = (
            "--coordination without --state redis://...: a pipe that moves to another daemon "
            "resumes from that daemon's own checkpoint files, not from where this one stopped"
        )
        log.say(
            "coordination_unshared_state", f"pipes run: warning: {problem}", level="warning", problem=problem
        )
    tune_gc()
    return asyncio.run(
        _run(definitions, store, args, drain_timeout_s, admin, log=log, terminal=terminal),
        loop_factory=loop_factory,
    )


async def _reset_all(
    names: list[str], definitions: list[PipeDefinition], store: CheckpointStore, log: LogOutput
) -> None:
    try:
        for name in names:
            await _reset_checkpoint(name, definitions, store, log)
    finally:
        await store.close()


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` without ``option VALUE`` / ``option=VALUE`` pairs."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out


def event_loop_factory(choice: str) -> Any:
    """The event loop ``pipes run`` uses: uvloop when installed (``auto``), else asyncio's own.

    uvloop saves about a microsecond of loop overhead per event; ``--loop
    asyncio`` opts out (to rule it out when chasing a problem).
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise UsageError("--loop uvloop: uvloop is not installed (pip install 'pipes[fast]')") from None
        return None
    return uvloop.new_event_loop


def tune_gc() -> None:
    """Fewer, larger garbage collections for a long-lived streaming process.

    A pipe allocates many short-lived containers (decoded bodies, batches); with
    CPython's default thresholds the young generation is scanned every 700
    allocations. Pipes that keep decoded records around (the generator's, an
    enrichment's) spend several percent of their CPU on it; pipes whose events
    stay bytes until a stage decodes them, much less. Everything loaded so far
    (config, modules) lives for the whole run, so it is frozen out of scans.
    ``PIPES_GC_THRESHOLD=700,10,10`` restores the defaults.
    """
    import gc

    text = os.environ.get("PIPES_GC_THRESHOLD", "50000,20,100")
    try:
        first, second, third = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"PIPES_GC_THRESHOLD={text!r}: use three integers, e.g. 50000,20,100") from None
    gc.collect()
    gc.freeze()
    gc.set_threshold(first, second, third)


async def _run(
    definitions: list[PipeDefinition],
    store: CheckpointStore,
    args: argparse.Namespace,
    drain_timeout_s: float,
    admin: tuple[str, int] | None = None,
    *,
    log: LogOutput,
    terminal: Any,
) -> int:
    import structlog

    from pipes.admin import TOKEN_ENV, AdminServer, ConsoleSettings
    from pipes.daemon import Daemon
    from pipes.progress import Progress, summary_lines, summary_records
    from pipes.terminal import StdoutGuard
    from pipes.workers.assign import runs_in, worker_name

    for name in args.reset_checkpoint:
        await _reset_checkpoint(name, definitions, store, log)
    daemon = Daemon(
        definitions,
        store=store,
        paths=args.paths,
        state_dir=args.state_dir,
        once=args.once,
        drain_timeout_s=drain_timeout_s,
        runner_options={
            "start_timeout_s": args.start_timeout_s if args.once else None,
            "worker": worker_name(args.worker_index) if args.worker_index is not None else "",
        },
        leases=args.leases,
        only=runs_in(args.worker_index, args.worker_count) if args.worker_index is not None else None,
    )
    server: AdminServer | None = None
    if admin is not None:
        server = AdminServer(
            daemon,
            admin[0],
            admin[1],
            token=os.environ.get(TOKEN_ENV) or None,
            ssl_context=args.admin_tls,
            allowed_hosts=args.admin_allow_host,
            console=ConsoleSettings(config_dir=args.config_dir, write=args.ui_write),
        )
        try:
            await server.start()
        except OSError as exc:
            problem = (
                f"cannot serve the admin API on {admin[0]}:{admin[1]}: {exc.strerror or exc} "
                "(choose another with --admin HOST:PORT, or --admin off)"
            )
            server = None
            if args.admin is not None:
                # Asked for explicitly: a service without its API must not start quietly.
                log.say("admin_failed", f"pipes run: {problem}", level="error", error=problem)
                await store.close()
                return 1
            # The default address is taken (another daemon, a test): run on without the API.
            structlog.get_logger().error("admin_unavailable", error=problem)
        else:
            if args.worker_index is None:  # a worker's API is the supervisor's business
                log.say(
                    "admin_started",
                    f"pipes: admin API on {server.url} (console: {server.url}/ui)",
                    url=server.url,
                    console=f"{server.url}/ui",
                )
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:
            # Second signal: leave now. Checkpoints are written atomically, so
            # nothing is corrupt; the uncommitted tail is delivered again next run.
            name = signal.Signals(signum).name
            log.say("signal_received", f"pipes: {name} again, exiting at once", signal=name, action="exit")
            os._exit(128 + signum)
        name = signal.Signals(signum).name
        log.say(
            "signal_received", f"pipes: {name}, draining (again to exit at once)", signal=name, action="drain"
        )
        daemon.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, daemon.schedule_reload)

    # The reader of stdout gone (`pipes run ... | head`) ends the run at once, as it
    # ends a Unix tool: nothing more can be written, so retrying would only make noise.
    def stdout_closed() -> None:
        loop.call_soon_threadsafe(daemon.abandon)

    stdout = StdoutGuard(sys.stdout, terminal, on_closed=stdout_closed)
    sys.stdout = stdout
    runner_task = asyncio.create_task(daemon.run())
    watch_task = asyncio.create_task(daemon.watch()) if args.watch else None
    await asyncio.sleep(0)
    progress = Progress(lambda: [h.totals() for h in daemon.pipes.values() if h.runner is not None], terminal)
    # JSON logs are for a collector: a progress line would be the one line that is not JSON.
    show_progress = not args.no_progress and not log.json
    progress_task = asyncio.create_task(progress.run()) if show_progress else None
    try:
        await runner_task
    finally:
        sys.stdout = stdout.original
        for task in (progress_task, watch_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        loop.remove_signal_handler(signal.SIGHUP)
        if server is not None:
            await server.stop()
        await store.close()
    # Per pipe: totals over every run it had here (a stop/start, a --watch restart), and
    # the rate over the time it actually ran, not over the whole process's life.
    rows = []
    for h in daemon.pipes.values():
        if h.runner is None and h.error is None:
            continue  # never asked to run (STOPPED in its file)
        ran_s = h.running_s()
        error = h.error or (h.last_error if h.state == "FAILED" or ran_s == 0 else None)
        rows.append((h.totals(), ran_s, error))
    if args.summary_file:
        # A worker of --workers: the supervisor prints one summary for all of them.
        await asyncio.to_thread(Path(args.summary_file).write_bytes, orjson.dumps(summary_records(rows)))
    else:
        for line, record in zip(summary_lines(rows), summary_records(rows), strict=True):
            log.say("pipe_summary", line, **record)
    if stdout.closed_by_reader:
        stdout.silence()
        return EXIT_STDOUT_CLOSED
    return 1 if daemon.failed else 0


async def _reset_checkpoint(
    name: str, definitions: list[PipeDefinition], store: CheckpointStore, log: LogOutput
) -> None:
    definition = next(d for d in definitions if d.name == name)
    if definition.source.cls.tracks_position:  # type: ignore[union-attr]
        text = (
            f"pipes run: --reset-checkpoint {name}: its {definition.source.type} source keeps its "
            "positions itself (consumer group); nothing to reset here"
        )
        log.say("checkpoint_not_reset", text, level="warning", pipe=name)
        return
    removed = await store.reset(name)
    text = f"pipes: {name}: checkpoint {'removed' if removed else 'was not there'}; it starts over"
    log.say("checkpoint_reset", text, pipe=name, removed=removed)


def cmd_admin_client(args: argparse.Namespace) -> int:
    from pipes.admin_client import control, reload, status

    if args.command == "status":
        return status(args.admin)
    if args.command == "reload":
        return reload(args.admin)
    return control(args.command, args.name, args.admin)


def cmd_tap(args: argparse.Namespace) -> int:
    from pipes.admin_client import tap

    stages = [part.strip() for value in args.stage or [] for part in value.split(",") if part.strip()]
    where = read_argument(args.where, what="--where") if args.where is not None else None
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit: give at least 1")
    rate: float | None = None
    if args.rate is not None:
        try:
            rate = float(args.rate.removesuffix("/s"))
        except ValueError:
            raise UsageError(f"--rate {args.rate!r}: give lines per second, e.g. 50 or 50/s") from None
        if rate < 0:
            raise UsageError(f"--rate {args.rate!r}: give lines per second, or 0 for no limit")
    try:
        return tap(args.name, args.admin, stages=stages, where=where, limit=args.limit, rate=rate)
    except BrokenPipeError:
        # The reader of stdout went away (`pipes tap ... | head`): stop as a Unix tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_STDOUT_CLOSED


def cmd_top(args: argparse.Namespace) -> int:
    from pipes.top import top
    from pipes.units import parse_duration

    try:
        interval_s = parse_duration(args.interval)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None
    if interval_s <= 0:
        raise UsageError("--interval: give more than 0")
    if args.iterations < 1:
        raise UsageError("--iterations: give at least 1")
    return top(args.admin, interval_s, args.iterations)


def cmd_test(args: argparse.Namespace) -> int:
    from pipes.dryrun import dry_run, failed

    if args.event is None:
        return _run_pipe_tests(args)
    definitions, errors = _load([args.path])
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        return 1
    if args.pipe:
        chosen = [d for d in definitions if d.name == args.pipe]
        if not chosen:
            raise UsageError(
                f"--pipe {args.pipe!r}: not in {args.path} (has: {', '.join(d.name for d in definitions)})"
            )
    elif len(definitions) > 1:
        raise UsageError(f"{args.path} holds {len(definitions)} pipes; choose one with --pipe NAME")
    else:
        chosen = definitions
    record = read_json_argument(args.event, what="--event")
    if not isinstance(record, dict):
        raise UsageError("--event must be a JSON object (the source record)")
    steps = asyncio.run(dry_run(chosen[0], record))
    for step in steps:
        sys.stdout.write(orjson.dumps(step).decode() + "\n")
    # 1 when a stage failed the event; 0 when it went through or was filtered out.
    return 1 if failed(steps) else 0


def _run_pipe_tests(args: argparse.Namespace) -> int:
    """``pipes test PATH``: every ``tests:`` case of the pipes found; exit 1 on any failure."""
    from pipes.pipe_tests import run_pipe_tests

    definitions, errors = _load([args.path])
    if errors:
        for line in errors:
            print(line, file=sys.stderr)
        return 1
    if args.pipe:
        definitions = [d for d in definitions if d.name == args.pipe]
        if not definitions:
            raise UsageError(f"--pipe {args.pipe!r}: no pipe of that name in {args.path}")
    tested = [d for d in definitions if d.config.tests]
    untested = [d.name for d in definitions if not d.config.tests]
    if not tested:
        raise UsageError(
            f"no tests: in {args.path}; add cases to a pipe (see docs/testing-pipes.md), "
            "or give --event RECORD to see one event stage by stage"
        )

    async def run_all() -> tuple[int, int]:
        passed = failed = 0
        for definition in tested:
            for result in await run_pipe_tests(definition):
                print(f"{'PASS' if result.passed else 'FAIL'} {result.title}")
                for line in result.detail:
                    print(f"    {line}")
                sys.stdout.flush()
                passed += result.passed
                failed += not result.passed
        return passed, failed

    passed, failed = asyncio.run(run_all())
    cases = passed + failed
    summary = (
        f"{passed} passed, {failed} failed ({cases} case{'s' if cases != 1 else ''} "
        f"in {len(tested)} pipe{'s' if len(tested) != 1 else ''})"
    )
    if untested:
        summary += f"; pipes without tests: {', '.join(untested)}"
    print(summary)
    return 1 if failed else 0


def cmd_test_event_pattern(args: argparse.Namespace) -> int:
    from pipes.patterns import EventFilter

    pattern_text = read_argument(args.event_pattern, what="--event-pattern")
    event = read_json_argument(args.event, what="--event")
    try:
        compiled = EventFilter.compile([pattern_text])
    except ValueError as exc:
        print(f"pipes test-event-pattern: invalid pattern: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    result = compiled.matches(event)
    print(orjson.dumps({"Result": result}).decode())
    return 0


def cmd_render_template(args: argparse.Namespace) -> int:
    from pipes.templates import InputTemplate, reserved_variables

    text = read_argument(args.template, what="--template")
    event = read_json_argument(args.event, what="--event")
    try:
        template = InputTemplate(text)
    except ValueError as exc:
        print(f"pipes render-template: invalid template: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    from pipes.clock import iso_utc

    variables: dict[str, Any] = dict(reserved_variables(args.pipe_name, "cli", "cli", None))
    variables["aws.pipes.event.ingestion-time"] = iso_utc(time.time())
    sys.stdout.write(template.render(event, variables) + "\n")
    return 0


def cmd_connectors(args: argparse.Namespace) -> int:
    from pipes.registry import Registry

    rows = Registry().listing()
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        if row.connector is None:
            print(f"{row.name:<{width}}  (failed to load: {row.error})")
        else:
            roles = ", ".join(row.connector.roles)
            print(f"{row.name:<{width}}  {roles:<24}  {row.connector.description}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pipes.schema import pipe_file_schema

    print(orjson.dumps(pipe_file_schema(), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
