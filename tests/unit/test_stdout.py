"""The stdout target."""

from __future__ import annotations

import io
import sys

import pytest

from connectors.stdout import StdoutOptions, StdoutTarget, connector
from pipes.codec import Base64Body
from pipes.connector import ConnectorContext
from pipes.events import Event, Outcome


def payload_events(*payloads: object) -> list[Event]:
    return [
        Event(record={}, partition="p", position=i, payload=payload) for i, payload in enumerate(payloads)
    ]


async def write(options: StdoutOptions, *payloads: object) -> list[Outcome]:
    target = StdoutTarget(options)
    await target.start(ConnectorContext(pipe="t"))
    outcomes = list(await target.write(payload_events(*payloads)))
    await target.stop()
    return outcomes


async def test_json_lines(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    not_utf8 = Base64Body.of(b"\x00\xff")  # what decoding makes of a body that is not UTF-8
    looks_alike = {"$base64": "AP8="}  # a JSON object that merely looks like it: written as JSON
    outcomes = await write(StdoutOptions(), {"a": 1, "b": "é"}, "plain", [1, 2], not_utf8, looks_alike)
    assert outcomes == [None, None, None, None, None]
    out = capfdbinary.readouterr().out
    assert out == '{"a":1,"b":"é"}\nplain\n[1,2]\n'.encode() + b'\x00\xff\n{"$base64":"AP8="}\n'


async def test_pretty(capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = await write(StdoutOptions(format="pretty"), {"a": {"b": 1}}, "text")
    assert outcomes == [None, None]
    assert capsys.readouterr().out == '{\n  "a": {\n    "b": 1\n  }\n}\ntext\n'


async def test_text_printed_before_comes_first(capsys: pytest.CaptureFixture[str]) -> None:
    print("before", end="\n")
    await write(StdoutOptions(), {"n": 1})
    assert capsys.readouterr().out == 'before\n{"n":1}\n'


async def test_empty_batch(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    assert await write(StdoutOptions()) == []
    assert capfdbinary.readouterr().out == b""


def test_options_and_descriptor() -> None:
    with pytest.raises(ValueError):
        StdoutOptions.model_validate({"format": "yaml"})
    for name, field in StdoutOptions.model_fields.items():
        assert field.description, name
    assert connector.name == "stdout"
    assert connector.roles == ["target"]


async def test_text_only_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    assert await write(StdoutOptions(), {"a": 1}, "é") == [None, None]
    assert stream.getvalue() == '{"a":1}\né\n'
