"""The ``webhook`` source: HTTP requests in, one event each, answered when the event has settled.

**Acknowledgement is delivery.** A request is answered only once the runner
has committed its event (``commit``): 200 when it was delivered or filtered
out, 202 when it went to the dead letter (``dead_lettered``); 503 with
``Retry-After`` when it did not settle within ``ack_timeout`` or the pipe is
stopping; 429 with ``Retry-After`` when the pipe already holds
``max_in_flight`` unanswered requests. Nothing is stored locally
(``tracks_position = True``: no checkpoint store; positions are a counter per
partition, valid for this run): a sender that retries on anything but 2xx gets
at-least-once delivery end to end, also across a crash of the process.

Partitions are the paths, or with ``partition_key`` a fixed number of
buckets per path (``partitions``) chosen by a hash of the rendered key, so
that requests with the same key keep their order and the number of lanes
stays bounded.

The server is shared: every webhook pipe of the process on the same
``listen`` address uses one aiohttp server (``connectors.http.listener``).
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any, ClassVar, Final, Literal, Self

import aiohttp
from aiohttp import web
from pydantic import Field, field_validator, model_validator

from connectors.http.listener import LISTENERS, Listener, TlsFiles, parse_listen
from connectors.http.webhook_auth import CREDENTIAL_HEADERS, Verifier, WebhookAuthOptions, verifier_for
from pipes.clock import Clock, SystemClock, iso_utc
from pipes.connector import ConnectorOptions, Source, SourceContext
from pipes.errors import FatalError
from pipes.events import Event, Position
from pipes.templates import InputTemplate
from pipes.units import Duration

__all__ = ["WebhookOptions", "WebhookSource"]

type WebhookMethod = Literal["POST", "PUT", "PATCH", "DELETE"]

OK: Final = 200
DEAD_LETTERED: Final = 202
UNAVAILABLE: Final = 503
#: Unauthorised requests are logged at most this often (with the count since the last line).
_REFUSAL_LOG_EVERY_S = 10.0
_BODIES: Final = {
    OK: b'{"status":"delivered"}',
    DEAD_LETTERED: b'{"status":"dead_lettered"}',
    UNAVAILABLE: b'{"error":"not settled in time; retry later"}',
}


class WebhookOptions(ConnectorOptions):
    """Options of the ``webhook`` source."""

    listen: str = Field(
        default="0.0.0.0:8080",
        description="host:port to serve on; webhook pipes with the same address share one server.",
    )
    paths: list[str] = Field(
        min_length=1,
        description="URL paths this pipe receives, e.g. [/hooks/orders]; each path is one partition.",
    )
    methods: list[WebhookMethod] = Field(
        default_factory=lambda: list[WebhookMethod](["POST"]),
        min_length=1,
        description="Methods accepted; others get 405.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=0, description="Largest body accepted; larger gets 413."
    )
    tls_cert_file: str | None = Field(default=None, description="PEM certificate (chain) to serve HTTPS.")
    tls_key_file: str | None = Field(default=None, description="PEM private key of `tls_cert_file`.")
    auth: WebhookAuthOptions | None = Field(
        default=None, description="bearer tokens or HMAC signatures (Standard Webhooks, GitHub, generic)."
    )
    ack_timeout: Duration = Field(
        default=10.0,
        gt=0,
        description="Longest wait for the event to settle before the sender gets 503 and retries.",
    )
    retry_after: Duration = Field(
        default=5.0, ge=0, description="Retry-After sent with 503 and 429 (whole seconds, rounded up)."
    )
    partition_key: str | None = Field(
        default=None,
        description="A template over the record (e.g. `<$.body.customer_id>`): requests with the same key "
        "keep their order, others spread over `partitions` lanes per path.",
    )
    partitions: int = Field(
        default=16, ge=1, le=1024, description="With partition_key: lanes per path the keys are hashed onto."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        parse_listen(listen)
        return listen

    @field_validator("paths")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"a path starts with /, not {path!r}")
        if len(set(paths)) != len(paths):
            raise ValueError("a path is listed twice")
        return paths

    @field_validator("partition_key")
    @classmethod
    def _key_compiles(cls, key: str | None) -> str | None:
        if key is not None:
            InputTemplate(key)
        return key

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        return self


class _Meta:
    """What a record needs besides the body, kept until (and unless) a stage asks for the record."""

    __slots__ = ("headers", "method", "path", "query", "received_at", "remote")

    def __init__(self, request: web.BaseRequest, received_at: float) -> None:
        self.method = request.method
        self.path = request.path
        self.query = request.query
        self.headers = request.headers
        self.remote = request.remote
        self.received_at = received_at


class WebhookLayout:
    """The record: method, path, query, headers (lower case, no credentials), body, received_at, remote."""

    body_field = "body"

    def __init__(self, hidden: frozenset[str]) -> None:
        self.hidden = CREDENTIAL_HEADERS | hidden

    def record(self, event: Event, body: Any) -> dict[str, Any]:
        meta: _Meta = event.meta
        query: dict[str, Any] = {}
        for name, value in meta.query.items():
            if name in query:
                seen = query[name]
                query[name] = [*seen, value] if isinstance(seen, list) else [seen, value]
            else:
                query[name] = value
        headers: dict[str, str] = {}
        hidden = self.hidden
        for name, value in meta.headers.items():
            lower = name.lower()
            if lower in hidden:
                continue
            headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
        return {
            "method": meta.method,
            "path": meta.path,
            "query": query,
            "headers": headers,
            "body": body,
            "received_at": iso_utc(meta.received_at),
            "remote": meta.remote,
        }


class WebhookSource(Source):
    """Turns requests into events and answers each once its event settled (see the module docstring)."""

    options_model: ClassVar[type[WebhookOptions]] = WebhookOptions
    options: WebhookOptions
    tracks_position: ClassVar[bool] = True
    # Every sender waits for its event's outcome: a batch is cut at once, not after a window.
    batch_window_s: ClassVar[float | None] = 0.0

    def __init__(self, options: WebhookOptions) -> None:
        super().__init__(options)
        self._verifier: Verifier | None = verifier_for(options.auth)
        self._layout = WebhookLayout(self._verifier.hidden if self._verifier is not None else frozenset())
        self._key = InputTemplate(options.partition_key) if options.partition_key is not None else None
        self._methods = frozenset(options.methods)
        self._allow = ", ".join(options.methods)
        self._retry_after = str(math.ceil(options.retry_after))
        self._clock: Clock = SystemClock()
        self._log: Any = None
        self._pipe = ""
        self._max_in_flight = 1000
        self._listener: Listener | None = None
        # Unread requests per partition, and read ones waiting for their commit.
        self._queues: dict[str, deque[tuple[Event, asyncio.Future[int]]]] = {}
        self._unacked: dict[str, deque[tuple[int, asyncio.Future[int]]]] = {}
        self._next: dict[str, int] = {}
        self._dead: set[tuple[str, Position]] = set()
        self._paused: set[str] = set()
        #: (deadline, answer) per request, in arrival order: the ack_timeout sweep.
        self._timers: deque[tuple[float, asyncio.Future[int]]] = deque()
        self._timer_added = asyncio.Event()
        self._arrived = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._waiting = 0
        self._closing = False
        self._refused_logged_at: float | None = None
        self._refused_since_log = 0
        #: Counters of this run (tests and logs read them).
        self.accepted = 0
        self.timed_out = 0
        self.too_busy = 0
        self.refused: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle

    async def start(self, context: SourceContext) -> None:
        if context.once:
            raise FatalError("webhook: a webhook source never reaches an end, so it cannot run with --once")
        self._clock = context.clock
        self._log = context.log
        self._pipe = context.pipe
        self._max_in_flight = context.max_in_flight
        options = self.options
        tls = (
            TlsFiles(options.tls_cert_file, options.tls_key_file)
            if options.tls_cert_file and options.tls_key_file
            else None
        )
        self._listener = await LISTENERS.attach(options.listen, tls, options.paths, context.pipe, self.handle)
        self._sweeper = asyncio.create_task(self._sweep(), name=f"{context.pipe}:webhook-ack-timeout")
        listener = self._listener
        self._log.info(
            "webhook_listening",
            address=f"{listener.scheme}://{listener.host}:{listener.bound_port}",
            paths=options.paths,
        )
        if self._verifier is None and listener.host not in ("127.0.0.1", "::1", "localhost"):
            self._log.warning("webhook_without_auth", listen=options.listen, paths=options.paths)

    @property
    def closing(self) -> bool:
        """The pipe is stopping: new requests get 503."""
        return self._closing

    @property
    def port(self) -> int:
        """The port served (the one bound, when ``listen`` asked for port 0)."""
        assert self._listener is not None, "port before start"
        return self._listener.bound_port

    async def stop(self) -> None:
        self._closing = True
        for queue in self._queues.values():
            for _, answer in queue:
                _answer(answer, UNAVAILABLE)
            queue.clear()
        for unacked in self._unacked.values():
            for _, answer in unacked:
                _answer(answer, UNAVAILABLE)
            unacked.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        listener, self._listener = self._listener, None
        if listener is not None:
            await LISTENERS.detach(listener, self.options.paths)

    # ------------------------------------------------------------------ requests

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request (called by the listener for this pipe's paths)."""
        if request.method not in self._methods:
            return web.Response(status=405, headers={"Allow": self._allow})
        if self._closing:
            return self._unavailable()
        verifier = self._verifier
        if verifier is not None and not verifier.needs_body:
            reason = verifier.verify(request.headers, b"", self._clock.wall())
            if reason is not None:
                return self._refuse(request, reason)
        if self._waiting >= self._max_in_flight:
            self.too_busy += 1
            return web.Response(
                status=429,
                body=b'{"error":"too many requests in flight; retry later"}',
                content_type="application/json",
                headers={"Retry-After": self._retry_after},
            )
        self._waiting += 1
        try:
            return await self._receive(request, verifier)
        finally:
            self._waiting -= 1

    async def _receive(self, request: web.BaseRequest, verifier: Verifier | None) -> web.StreamResponse:
        limit = self.options.max_body_bytes
        try:
            body = await _read_body(request, limit)
        except (asyncio.IncompleteReadError, aiohttp.ClientError, ConnectionError):
            return web.Response(
                status=400, body=b'{"error":"incomplete body"}', content_type="application/json"
            )
        if body is None:
            return web.Response(
                status=413, body=b'{"error":"body too large"}', content_type="application/json"
            )
        clock = self._clock
        if verifier is not None and verifier.needs_body:
            reason = verifier.verify(request.headers, body, clock.wall())
            if reason is not None:
                return self._refuse(request, reason)
        if self._closing:
            return self._unavailable()
        event = Event(
            None, request.path, 0, "body", raw=body, meta=_Meta(request, clock.wall()), layout=self._layout
        )
        if self._key is not None:
            try:
                key = self._key.render(event.record)
            except Exception:
                return web.Response(
                    status=400,
                    body=b'{"error":"partition_key cannot be rendered"}',
                    content_type="application/json",
                )
            bucket = zlib.crc32(key.encode("utf-8")) % self.options.partitions
            event.partition = f"{request.path}#{bucket}"
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(event.partition)
        if queue is None:
            queue = self._queues[event.partition] = deque()
        queue.append((event, answer))
        timers = self._timers
        timers.append((clock.monotonic() + self.options.ack_timeout, answer))
        if len(timers) == 1:
            self._timer_added.set()
        self._arrived.set()
        self.accepted += 1
        status = await answer
        return web.Response(
            status=status,
            body=_BODIES[status],
            content_type="application/json",
            headers={"Retry-After": self._retry_after} if status == UNAVAILABLE else None,
        )

    def _unavailable(self) -> web.Response:
        return web.Response(
            status=UNAVAILABLE,
            body=b'{"error":"the pipe is stopping; retry later"}',
            content_type="application/json",
            headers={"Retry-After": self._retry_after},
        )

    def _refuse(self, request: web.BaseRequest, reason: str) -> web.Response:
        """401, counted; logged without the credentials, at most every few seconds."""
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._refused_since_log += 1
        now = self._clock.monotonic()
        if self._refused_logged_at is None or now - self._refused_logged_at >= _REFUSAL_LOG_EVERY_S:
            self._log.warning(
                "webhook_unauthorized",
                path=request.path,
                remote=request.remote,
                reason=reason,
                refused=self._refused_since_log,
                refused_total=sum(self.refused.values()),
            )
            self._refused_logged_at = now
            self._refused_since_log = 0
        return web.Response(status=401, body=b'{"error":"unauthorized"}', content_type="application/json")

    # ------------------------------------------------------------------ the runner's side

    async def read(self, max_events: int, timeout_s: float) -> list[Event]:
        if not self._ready():
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
            except TimeoutError:
                return []
            except asyncio.CancelledError:
                # The runner cancels a read only when the pipe stops: what was not read
                # will never be, so its senders hear so now, as will every new one.
                self._drain_unread()
                raise
        out: list[Event] = []
        for partition, queue in self._queues.items():
            if not queue or partition in self._paused:
                continue
            unacked = self._unacked.get(partition)
            if unacked is None:
                unacked = self._unacked[partition] = deque()
            position = self._next.get(partition, 0)
            while queue and len(out) < max_events:
                event, answer = queue.popleft()
                if answer.done():
                    continue  # answered 503 while waiting to be read: the sender retries it
                event.position = position
                unacked.append((position, answer))
                out.append(event)
                position += 1
            self._next[partition] = position
            if len(out) >= max_events:
                break
        return out

    def _ready(self) -> bool:
        paused = self._paused
        return any(queue and partition not in paused for partition, queue in self._queues.items())

    def _drain_unread(self) -> None:
        self._closing = True
        for queue in self._queues.values():
            for _, answer in queue:
                _answer(answer, UNAVAILABLE)
            queue.clear()

    async def commit(self, positions: Mapping[str, Position]) -> None:
        dead = self._dead
        for partition, position in positions.items():
            unacked = self._unacked.get(partition)
            if not unacked:
                continue
            while unacked and unacked[0][0] <= position:  # type: ignore[operator]
                at, answer = unacked.popleft()
                if dead and (partition, at) in dead:
                    dead.discard((partition, at))
                    _answer(answer, DEAD_LETTERED)
                else:
                    _answer(answer, OK)
        timers = self._timers
        while timers and timers[0][1].done():
            timers.popleft()

    def dead_lettered(self, partition: str, position: Position) -> None:
        self._dead.add((partition, position))

    def pause(self, partitions: Collection[str]) -> None:
        self._paused.update(partitions)

    def resume(self, partitions: Collection[str]) -> None:
        self._paused.difference_update(partitions)
        self._arrived.set()

    def lag(self) -> Mapping[str, int] | None:
        return {partition: len(queue) for partition, queue in self._queues.items()}

    # ------------------------------------------------------------------ ack_timeout

    async def _sweep(self) -> None:
        """Answer 503 to every request still unanswered ``ack_timeout`` after it arrived."""
        timers = self._timers
        clock = self._clock
        while True:
            while timers and timers[0][1].done():
                timers.popleft()
            if not timers:
                self._timer_added.clear()
                await self._timer_added.wait()
                continue
            wait = timers[0][0] - clock.monotonic()
            if wait > 0:
                await clock.sleep(wait)
                continue
            now = clock.monotonic()
            expired = 0
            while timers and timers[0][0] <= now:
                _, answer = timers.popleft()
                if not answer.done():
                    answer.set_result(UNAVAILABLE)
                    self.timed_out += 1
                    expired += 1
            if expired:
                self._forget_answered()

    def _forget_answered(self) -> None:
        """Drop unread requests that were already answered (503): their senders send them again.

        Without this a pipe that stays full (a target that is down) would keep
        every timed-out body its retrying senders post, growing without bound.
        """
        for partition, queue in self._queues.items():
            if any(answer.done() for _, answer in queue):
                self._queues[partition] = deque(item for item in queue if not item[1].done())


def _answer(answer: asyncio.Future[int], status: int) -> None:
    if not answer.done():
        answer.set_result(status)


async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than ``limit``."""
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        return await request.content.readexactly(length) if length else b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
