"""The systems events live in, named so that the pipes that share one meet there.

The console's map draws systems as nodes and pipes as edges. A pipe whose
target is a Kafka topic and a pipe whose source is that topic must meet at one
node, so each end of a pipe is reduced to an *identity* computed from its
connector type and validated options:

- Kafka topic: the cluster (its bootstrap servers, sorted) and the topic;
- Redis stream, list or channel: the server (scheme, host, port, database;
  never the password) and the key;
- file: the absolute path; memory channel: its name; stdout: the process's;
- HTTP endpoint: scheme, host, port and path; webhook: the listen address and
  path; python function: ``module:function``.

A connector outside this table may say where its events live with a
``systems(options)`` class method on its source, target or enricher class,
returning ``System`` values; without one, each end of each pipe is a node of
its own (nothing is assumed shared that may not be).

Only definitions are read here (``pipes.config.PipeDefinition``): never a
runner, never a connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pipes.config import BoundConnector, PipeDefinition

__all__ = ["PipeEnds", "System", "SystemMap", "pipe_ends", "system_map", "systems_of"]


@dataclass(frozen=True, slots=True)
class System:
    """One place events live in; two ends with the same ``id`` are the same node.

    ``kind`` says what it is (``kafka_topic``, ``redis_stream``...), ``name``
    what the node shows in large (a topic, a key, a path), ``where`` the
    cluster or server it belongs to (never a password).
    """

    id: str
    kind: str
    name: str
    where: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "where": self.where}


@dataclass(frozen=True, slots=True)
class PipeEnds:
    """The systems a pipe reads from, writes to, looks things up in, and dead-letters to."""

    name: str
    sources: tuple[System, ...]
    targets: tuple[System, ...]
    enrichment: tuple[System, ...] = ()
    dead_letter: tuple[System, ...] = ()

    def every(self) -> Iterable[System]:
        yield from self.sources
        yield from self.targets
        yield from self.enrichment
        yield from self.dead_letter


@dataclass(frozen=True, slots=True)
class SystemMap:
    """Every system once, in the order first met, and each pipe's ends by system id."""

    systems: tuple[System, ...]
    pipes: tuple[PipeEnds, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "systems": [s.as_dict() for s in self.systems],
            "pipes": [
                {
                    "name": p.name,
                    "sources": [s.id for s in p.sources],
                    "targets": [s.id for s in p.targets],
                    "enrichment": [s.id for s in p.enrichment],
                    "dead_letter": [s.id for s in p.dead_letter],
                }
                for p in self.pipes
            ],
        }


def system_map(definitions: Iterable[PipeDefinition], cwd: str | None = None) -> SystemMap:
    """The map of ``definitions``: systems deduplicated by identity, pipes as their ends."""
    seen: dict[str, System] = {}
    pipes = []
    for definition in definitions:
        ends = pipe_ends(definition, cwd)
        for system in ends.every():
            seen.setdefault(system.id, system)
        pipes.append(ends)
    return SystemMap(tuple(seen.values()), tuple(pipes))


def pipe_ends(definition: PipeDefinition, cwd: str | None = None) -> PipeEnds:
    name = definition.name

    def of(bound: BoundConnector | None, end: str) -> tuple[System, ...]:
        if bound is None:
            return ()
        return tuple(systems_of(bound, pipe=name, end=end, cwd=cwd))

    return PipeEnds(
        name,
        sources=of(definition.source, "source"),
        targets=of(definition.target, "target"),
        enrichment=of(definition.enrichment, "enrichment"),
        dead_letter=of(definition.dead_letter, "dead_letter"),
    )


def systems_of(bound: BoundConnector, *, pipe: str, end: str, cwd: str | None = None) -> list[System]:
    """The systems of one connector use; a node of its own when nothing better is known."""
    hook = getattr(bound.cls, "systems", None)
    if callable(hook):
        try:
            found = [s for s in hook(bound.options) if isinstance(s, System)]
        except Exception:  # a plug-in's hook must not break the map
            found = []
        if found:
            return found
    rule = _RULES.get(bound.type)
    if rule is not None:
        try:
            found = rule(bound.options, bound.role, cwd or os.getcwd())
        except (AttributeError, TypeError, ValueError):  # options of another shape than expected
            found = []
        if found:
            return found
    return [System(f"pipe:{pipe}:{end}", "connector", bound.type, f"{end} of {pipe}")]


# ---------------------------------------------------------------------- built-in connectors


def _kafka(options: Any, role: str, cwd: str) -> list[System]:
    servers = options.bootstrap_servers
    parts = servers.split(",") if isinstance(servers, str) else list(servers)
    cluster = ",".join(sorted({s.strip().lower() for s in parts if s.strip()}))
    where = f"kafka {cluster}"
    if role == "target":
        return [System(f"kafka:{cluster}/{options.topic}", "kafka_topic", options.topic, where)]
    if options.topics:
        return [System(f"kafka:{cluster}/{topic}", "kafka_topic", topic, where) for topic in options.topics]
    pattern = options.topic_pattern
    return [System(f"kafka:{cluster}/~{pattern}", "kafka_topics", pattern, where)]


def _redis_server(options: Any) -> str:
    """scheme://host:port/db of a Redis connector's options, without user or password."""
    parts = urlsplit(options.url)
    if parts.scheme == "unix":
        db = options.db if options.db is not None else 0
        return f"unix://{parts.path}?db={db}"
    db = options.db
    if db is None:
        path = parts.path.strip("/")
        db = int(path) if path.isdigit() else 0
    host = (parts.hostname or "localhost").lower()
    return f"{parts.scheme}://{host}:{parts.port or 6379}/{db}"


def _redis(kind: str, key: Callable[[Any], Sequence[str]]) -> Callable[[Any, str, str], list[System]]:
    def rule(options: Any, role: str, cwd: str) -> list[System]:
        server = _redis_server(options)
        return [System(f"{server}#{kind}:{k}", kind, k, f"redis {server}") for k in key(options)]

    return rule


def _pubsub(options: Any, role: str, cwd: str) -> list[System]:
    server = _redis_server(options)
    where = f"redis {server}"
    if role == "target":
        return [System(f"{server}#redis_channel:{options.channel}", "redis_channel", options.channel, where)]
    found = [System(f"{server}#redis_channel:{c}", "redis_channel", c, where) for c in options.channels]
    found += [
        System(f"{server}#redis_channel_pattern:{p}", "redis_channel_pattern", p, where)
        for p in options.patterns
    ]
    return found


def _file(options: Any, role: str, cwd: str) -> list[System]:
    path = os.path.normpath(os.path.join(cwd, os.path.expanduser(options.path)))
    return [System(f"file:{path}", "file", options.path, "file on the daemon's host")]


def _memory(options: Any, role: str, cwd: str) -> list[System]:
    return [System(f"memory:{options.channel}", "memory_channel", options.channel, "in this process")]


def _stdout(options: Any, role: str, cwd: str) -> list[System]:
    return [System("stdout:", "stdout", "stdout", "of the daemon")]


def _python(options: Any, role: str, cwd: str) -> list[System]:
    return [System(f"python:{options.function}", "python_function", options.function, "python")]


def _http(options: Any, role: str, cwd: str) -> list[System]:
    parts = urlsplit(options.url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    endpoint = f"{parts.scheme}://{host}:{port}{parts.path or '/'}"
    method = str(getattr(options, "method", "POST")).upper()
    return [
        System(
            f"http:{method} {endpoint}", "http_endpoint", f"{method} {parts.path or '/'}", f"{host}:{port}"
        )
    ]


def _webhook(options: Any, role: str, cwd: str) -> list[System]:
    listen = str(options.listen)
    return [
        System(f"webhook:{listen}{path}", "webhook", path, f"webhook on {listen}") for path in options.paths
    ]


_RULES: dict[str, Callable[[Any, str, str], list[System]]] = {
    "kafka": _kafka,
    "redis_stream": _redis("redis_stream", lambda o: [o.stream]),
    "redis_list": _redis("redis_list", lambda o: [o.list]),
    "redis_pubsub": _pubsub,
    "redis_lookup": _redis("redis_keys", lambda o: [o.key]),
    "file": _file,
    "memory": _memory,
    "stdout": _stdout,
    "python": _python,
    "http": _http,
    "webhook": _webhook,
}
