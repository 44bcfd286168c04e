"""System identity: pipes that share a topic, a stream or a file meet at one node of the map."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

from pipes.config import BoundConnector, PipeDefinition, load_definition
from pipes.connector import ConnectorOptions, Target
from pipes.console.systems import System, pipe_ends, system_map, systems_of
from pipes.events import Outcome


def pipe(name: str, source: dict[str, Any], target: dict[str, Any], **more: Any) -> PipeDefinition:
    return load_definition({"name": name, "source": source, "target": target, **more})


KAFKA_A = {"type": "kafka", "bootstrap_servers": "b1:9092, B2:9092"}
KAFKA_A_AGAIN = {"type": "kafka", "bootstrap_servers": ["b2:9092", "b1:9092"]}
KAFKA_B = {"type": "kafka", "bootstrap_servers": "other:9092"}


def ids(systems: tuple[System, ...]) -> list[str]:
    return [s.id for s in systems]


def test_a_kafka_topic_written_by_one_pipe_and_read_by_another_is_one_system() -> None:
    writer = pipe("w", {"type": "generator"}, {**KAFKA_A, "topic": "orders"})
    reader = pipe(
        "r", {**KAFKA_A_AGAIN, "topics": ["orders", "returns"], "group_id": "g"}, {"type": "stdout"}
    )
    elsewhere = pipe("x", {**KAFKA_B, "topics": ["orders"], "group_id": "g"}, {"type": "stdout"})
    found = system_map([writer, reader, elsewhere])
    orders = pipe_ends(writer).targets[0]
    assert orders == System("kafka:b1:9092,b2:9092/orders", "kafka_topic", "orders", "kafka b1:9092,b2:9092")
    assert ids(pipe_ends(reader).sources) == [orders.id, "kafka:b1:9092,b2:9092/returns"]
    assert ids(pipe_ends(elsewhere).sources) == ["kafka:other:9092/orders"]  # another cluster
    kinds = sorted((s.kind, s.name) for s in found.systems)
    assert kinds.count(("kafka_topic", "orders")) == 2  # once per cluster, not once per pipe
    assert len({s.id for s in found.systems}) == len(found.systems)


def test_a_kafka_topic_pattern_and_a_templated_topic_are_systems_of_their_own() -> None:
    reader = pipe("r", {**KAFKA_A, "topic_pattern": "orders\\..*", "group_id": "g"}, {"type": "stdout"})
    writer = pipe("w", {"type": "generator"}, {**KAFKA_A, "topic": "orders.<$.body.region>"})
    assert pipe_ends(reader).sources[0].kind == "kafka_topics"
    assert pipe_ends(writer).targets[0].name == "orders.<$.body.region>"


def test_redis_keys_meet_per_server_and_database_never_naming_the_password() -> None:
    stream_out = {"type": "redis_stream", "url": "redis://:secret@Cache:6379/0", "stream": "cart"}
    stream_in = {"type": "redis_stream", "url": "redis://cache", "db": 0, "stream": "cart", "group": "g"}
    other_db = {"type": "redis_stream", "url": "redis://cache:6379/1", "stream": "cart", "group": "g"}
    a = pipe("a", {"type": "generator"}, stream_out)
    b = pipe("b", stream_in, {"type": "redis_list", "url": "redis://cache", "list": "cart"})
    c = pipe("c", other_db, {"type": "redis_pubsub", "url": "redis://cache", "channel": "cart"})
    assert pipe_ends(a).targets == pipe_ends(b).sources
    cart = pipe_ends(a).targets[0]
    assert cart.id == "redis://cache:6379/0#redis_stream:cart" and "secret" not in repr(cart)
    assert pipe_ends(c).sources[0].id == "redis://cache:6379/1#redis_stream:cart"
    # The same key as a list or a channel is another system.
    assert ids(pipe_ends(b).targets) == ["redis://cache:6379/0#redis_list:cart"]
    assert ids(pipe_ends(c).targets) == ["redis://cache:6379/0#redis_channel:cart"]


def test_redis_pubsub_channels_and_patterns_and_lookups() -> None:
    subscriber = pipe(
        "s",
        {"type": "redis_pubsub", "url": "redis://h", "channels": ["a"], "patterns": ["orders.*"]},
        {"type": "stdout"},
        enrichment={"type": "redis_lookup", "url": "redis://h", "key": "customer:<$.body.id>"},
    )
    ends = pipe_ends(subscriber)
    assert [(s.kind, s.name) for s in ends.sources] == [
        ("redis_channel", "a"),
        ("redis_channel_pattern", "orders.*"),
    ]
    assert [(s.kind, s.name) for s in ends.enrichment] == [("redis_keys", "customer:<$.body.id>")]


def test_files_meet_by_absolute_path_memory_by_channel_stdout_and_python_by_what_they_name(
    tmp_path: Any,
) -> None:
    cwd = str(tmp_path)
    writer = pipe("w", {"type": "memory", "channel": "in"}, {"type": "file", "path": "out/x.jsonl"})
    reader = pipe("r", {"type": "file", "path": "./out/../out/x.jsonl"}, {"type": "memory", "channel": "in"})
    assert (
        ids(pipe_ends(writer, cwd).targets)
        == ids(pipe_ends(reader, cwd).sources)
        == [f"file:{tmp_path}/out/x.jsonl"]
    )
    assert pipe_ends(writer, cwd).sources == pipe_ends(reader, cwd).targets  # the memory channel "in"
    one = pipe("one", {"type": "generator"}, {"type": "stdout"})
    two = pipe("two", {"type": "generator"}, {"type": "stdout"})
    assert pipe_ends(one).targets == pipe_ends(two).targets
    calls = [
        pipe(n, {"type": "generator"}, {"type": "python", "function": "json:dumps"}) for n in ("c1", "c2")
    ]
    assert [pipe_ends(c).targets for c in calls] == [
        (System("python:json:dumps", "python_function", "json:dumps", "python"),)
    ] * 2
    # A generator is no shared system: each pipe's is its own node.
    assert pipe_ends(one).sources != pipe_ends(two).sources
    assert pipe_ends(one).sources[0] == System("pipe:one:source", "connector", "generator", "source of one")


def test_dead_letters_are_systems_too() -> None:
    definition = pipe(
        "p",
        {"type": "generator"},
        {"type": "stdout"},
        dead_letter={"type": "file", "path": "/var/dlq/p.jsonl"},
    )
    assert ids(pipe_ends(definition).dead_letter) == ["file:/var/dlq/p.jsonl"]
    listed = system_map([definition]).as_dict()
    assert listed["pipes"] == [
        {
            "name": "p",
            "sources": ["pipe:p:source"],
            "targets": ["stdout:"],
            "enrichment": [],
            "dead_letter": ["file:/var/dlq/p.jsonl"],
        }
    ]
    assert [s["id"] for s in listed["systems"]] == ["pipe:p:source", "stdout:", "file:/var/dlq/p.jsonl"]


class _Queue(Target):
    """A third-party target that says where its events live."""

    options_model: ClassVar[type[ConnectorOptions]] = ConnectorOptions

    @classmethod
    def systems(cls, options: Any) -> list[System]:
        return [System("acme:queue/jobs", "acme_queue", "jobs", "acme broker")]

    async def write(self, events: Any) -> list[Outcome]:
        return [None for _ in events]


class _Broken(_Queue):
    @classmethod
    def systems(cls, options: Any) -> list[System]:
        raise RuntimeError("a bug in a plug-in")


def test_a_connector_may_name_its_systems_through_a_hook_and_a_broken_hook_does_not_break_the_map() -> None:
    bound = BoundConnector("acme:Queue", "target", _Queue, ConnectorOptions())
    assert systems_of(bound, pipe="p", end="target") == [
        System("acme:queue/jobs", "acme_queue", "jobs", "acme broker")
    ]
    broken = BoundConnector("acme:Broken", "target", _Broken, ConnectorOptions())
    assert systems_of(broken, pipe="p", end="target") == [
        System("pipe:p:target", "connector", "acme:Broken", "target of p")
    ]


def test_http_endpoints_and_webhooks_by_their_addresses() -> None:
    http = BoundConnector(
        "http",
        "target",
        _Queue.__base__,
        SimpleNamespace(url="https://API.example.com/orders/<$.body.id>", method="put"),
    )
    assert systems_of(http, pipe="p", end="target") == [
        System(
            "http:PUT https://api.example.com:443/orders/<$.body.id>",
            "http_endpoint",
            "PUT /orders/<$.body.id>",
            "api.example.com:443",
        )
    ]
    hook = BoundConnector(
        "webhook", "source", _Queue.__base__, SimpleNamespace(listen="0.0.0.0:8080", paths=["/a", "/b"])
    )
    assert [s.id for s in systems_of(hook, pipe="p", end="source")] == [
        "webhook:0.0.0.0:8080/a",
        "webhook:0.0.0.0:8080/b",
    ]
    # Options of another shape than the rule expects: a node of the pipe's own, no error.
    odd = BoundConnector("http", "target", _Queue.__base__, SimpleNamespace())
    assert systems_of(odd, pipe="p", end="target")[0].kind == "connector"
