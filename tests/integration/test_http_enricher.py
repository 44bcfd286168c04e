"""The ``http`` enricher against a real aiohttp server on loopback."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from http_kit import Recorder, Seen
from runner_kit import run_to_end, runner_for

from connectors.http import HttpEnricher, HttpEnricherOptions
from connectors.http.errors import HttpFatalError, HttpRetryableError
from pipes.clock import ManualClock
from pipes.connector import ConnectorContext
from pipes.events import Event
from pipes.testing import channel

pytestmark = pytest.mark.integration

CUSTOMERS = {"c1": {"name": "Ada", "tier": "gold"}, "c2": {"name": "Bob", "tier": "silver"}}


def lookup(seen: Seen) -> web.StreamResponse:
    found = CUSTOMERS.get(seen.path.rsplit("/", 1)[1])
    if found is None:
        return web.json_response({"error": "no such customer"}, status=404)
    return web.json_response(found)


async def open_enricher(clock: ManualClock | None = None, **options: Any) -> HttpEnricher:
    enricher = HttpEnricher(HttpEnricherOptions.model_validate(options))
    await enricher.start(ConnectorContext(pipe="t", clock=clock or ManualClock()))
    return enricher


def events(*bodies: Any) -> list[Event]:
    return [Event({"body": b}, "p", i) for i, b in enumerate(bodies)]


async def test_each_event_is_enriched_into_a_key_and_equal_requests_go_once(channels: dict[str, str]) -> None:
    orders = [{"order": i, "customer": "c1" if i % 2 else "c2"} for i in range(6)]
    channel(channels["in"]).put(*orders)
    async with Recorder() as server:
        server.respond = lookup
        pipe = {
            "name": "t",
            "source": {"type": "memory", "channel": channels["in"]},
            "enrichment": {
                "type": "http",
                "url": server.url + "/customers/<$.body.customer>",
                "into": "customer",
            },
            "transform": {"template": '{"order": <$.body.order>, "name": <$.customer.name>}'},
            "target": {"type": "memory", "channel": channels["out"]},
            "batch": {"size": 10, "window": "0ms"},
        }
        clock = ManualClock()
        await run_to_end(runner_for(pipe, clock), clock)
    assert sorted(server.paths()) == ["/customers/c1", "/customers/c2"]  # one request per customer
    assert all(s.method == "GET" and s.body == b"" for s in server.seen)
    written = [__import__("orjson").loads(p) for p in channel(channels["out"]).written]
    assert written == [{"order": o["order"], "name": CUSTOMERS[o["customer"]]["name"]} for o in orders]


@pytest.mark.parametrize(
    ("not_found", "expected"),
    [
        ("keep", [[{"name": "Ada", "tier": "gold"}], [None]]),
        ("drop", [[{"name": "Ada", "tier": "gold"}], []]),
    ],
)
async def test_not_found_keep_and_drop(not_found: str, expected: list[Any]) -> None:
    async with Recorder() as server:
        server.respond = lookup
        enricher = await open_enricher(url=server.url + "/customers/<$.body>", not_found=not_found)
        try:
            assert await enricher.enrich(events("c1", "zz")) == expected
        finally:
            await enricher.stop()


async def test_not_found_fail_and_other_statuses_are_errors() -> None:
    async with Recorder() as server:

        def respond(seen: Seen) -> web.StreamResponse:
            if seen.path.endswith("/busy"):
                return web.Response(status=503, headers={"Retry-After": "4"})
            return lookup(seen)

        server.respond = respond
        enricher = await open_enricher(url=server.url + "/customers/<$.body>")
        try:
            missing, busy = await enricher.enrich(events("zz", "busy"))
        finally:
            await enricher.stop()
    assert isinstance(missing, HttpFatalError) and missing.status == 404
    assert isinstance(busy, HttpRetryableError) and busy.retry_after_s == 4.0


async def test_answers_are_cached_for_their_ttl() -> None:
    clock = ManualClock()
    async with Recorder() as server:
        server.respond = lookup
        enricher = await open_enricher(
            clock, url=server.url + "/customers/<$.body>", cache={"ttl": "1m", "max_entries": 10}
        )
        try:
            first = await enricher.enrich(events("c1", "c2"))
            again = await enricher.enrich(events("c1", "c2", "c1"))
            assert len(server.seen) == 2, "answered from the cache"
            assert again == [first[0], first[1], first[0]]
            assert again[0][0] is not again[2][0], "each event gets its own copy"
            await clock.advance(61)
            await enricher.enrich(events("c1"))
            assert len(server.seen) == 3, "expired: asked again"
        finally:
            await enricher.stop()


@pytest.mark.parametrize("cache", [None, {"ttl": "1m"}])
async def test_requests_that_differ_only_in_a_header_are_not_taken_for_one(cache: Any) -> None:
    # The same URL asked for two tenants: each event must get its own tenant's answer.
    async with Recorder() as server:
        server.respond = lambda seen: web.json_response({"tenant": seen.headers["X-Tenant"]})
        options: dict[str, Any] = {
            "url": server.url + "/settings",
            "headers": {"X-Tenant": "<$.body.tenant>"},
        }
        if cache is not None:
            options["cache"] = cache
        enricher = await open_enricher(**options)
        try:
            bodies = [{"tenant": t} for t in ("a", "b", "a")]
            first = await enricher.enrich(events(*bodies))
            again = await enricher.enrich(events(*reversed(bodies)))
        finally:
            await enricher.stop()
    assert first == [[{"tenant": "a"}], [{"tenant": "b"}], [{"tenant": "a"}]]
    assert again == [[{"tenant": "a"}], [{"tenant": "b"}], [{"tenant": "a"}]]
    assert len(server.seen) == (2 if cache else 4)


async def test_post_with_a_template_body() -> None:
    async with Recorder() as server:
        server.respond = lambda seen: web.json_response({"score": len(seen.json()["items"])})
        enricher = await open_enricher(
            url=server.url + "/score", method="POST", template='{"items": <$.body.items>, "by": "pipes"}'
        )
        try:
            result = await enricher.enrich(events({"items": [1, 2, 3]}))
        finally:
            await enricher.stop()
    assert result == [[{"score": 3}]]
    assert server.seen[0].json() == {"items": [1, 2, 3], "by": "pipes"}
    assert server.seen[0].headers["Content-Type"] == "application/json"


async def test_body_batch_maps_the_answer_array_back_by_position() -> None:
    async with Recorder() as server:

        def respond(seen: Seen) -> web.StreamResponse:
            items = seen.json()
            if seen.path == "/short":
                return web.json_response(items[:-1])
            return web.json_response([{"double": item["n"] * 2} for item in items])

        server.respond = respond
        enricher = await open_enricher(url=server.url + "/batch", method="POST", body="batch")
        short = await open_enricher(url=server.url + "/short", method="POST", body="batch")
        try:
            results = await enricher.enrich(events(*({"n": n} for n in range(5))))
            broken = await short.enrich(events({"n": 1}, {"n": 2}))
        finally:
            await enricher.stop()
            await short.stop()
    assert results == [[{"double": n * 2}] for n in range(5)]
    assert [s.path for s in server.seen].count("/batch") == 1
    assert all(isinstance(r, HttpFatalError) for r in broken)
    assert str(broken[0]) == f"POST {server.url}/short: sent 2 events, the answer has 1 items"


def test_options_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="body: batch sends an array, which GET cannot carry"):
        HttpEnricherOptions.model_validate({"url": "https://a", "body": "batch"})
    with pytest.raises(ValueError, match="template is the request body, which GET does not send"):
        HttpEnricherOptions.model_validate({"url": "https://a", "template": "{}"})
    with pytest.raises(ValueError, match="cache works per event"):
        HttpEnricherOptions.model_validate(
            {"url": "https://a", "method": "POST", "body": "batch", "cache": {"ttl": "1m"}}
        )
    for name, field in HttpEnricherOptions.model_fields.items():
        assert field.description, name
