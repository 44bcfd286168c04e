"""What a pipe writes is what it read, unless a transform says otherwise; one bad payload fails alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from pipes.conformance import check_target_isolates_bad_payloads
from pipes.testing import run_pipe

# Bodies a careless decode-and-encode would change.
TRICKY = [
    b'"hello"',  # a JSON string: not the text hello
    b"123456789012345678901234567890",  # beyond 64 bits: not 1.2345678901234568e+29
    b'{"a":1,"a":2}',  # a repeated key: not {"a":2}
    b'{"$base64":"aGVsbG8="}',  # a real object that looks like our marker: not the bytes hello
    b'{ "spaced" :  [1, 2] }',  # whitespace kept
    b"plain text",
    b"\xff\xfe not utf-8",  # not UTF-8: the bytes as they are
    b'{"$base64":"not base64!!"}',
    b'{"$base64":12}',
]


def lines_file(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


async def run_file_pipe(tmp_path: Path, lines: list[bytes], **extra: Any) -> tuple[list[bytes], Any]:
    source = lines_file(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    definition: dict[str, Any] = {
        "name": "fidelity",
        "source": {"type": "file", "path": str(source)},
        "target": {"type": "file", "path": str(out), "fsync": False},
        "dead_letter": {"type": "file", "path": str(tmp_path / "dlq.jsonl"), "fsync": False},
        "batch": {"size": 50, "window": "0ms"},
        **extra,
    }
    stats = await run_pipe(definition, state_dir=tmp_path / "state")
    written = out.read_bytes().splitlines() if out.exists() else []
    return written, stats


async def test_without_a_transform_the_target_writes_the_bytes_that_were_read(tmp_path: Path) -> None:
    written, stats = await run_file_pipe(tmp_path, TRICKY)
    assert written == TRICKY
    assert (stats.delivered, stats.failed, stats.dead_lettered) == (len(TRICKY), 0, 0)


async def test_a_filter_decodes_to_match_but_what_passes_is_written_as_read(tmp_path: Path) -> None:
    lines = [
        b'{"keep": true,  "n": 1}',
        b'{"keep": false, "n": 2}',
        b'{"keep":true,"n":123456789012345678901234567890}',
    ]
    written, _ = await run_file_pipe(tmp_path, lines, filter=[{"body": {"keep": [True]}}])
    assert written == [lines[0], lines[2]]


async def test_big_integers_keep_every_digit_when_rendered(tmp_path: Path) -> None:
    lines = [b'{"id": 123456789012345678901234567890, "small": 5}', b'{"id": -98765432109876543210987}']
    written, _ = await run_file_pipe(
        tmp_path,
        lines,
        transform={"template": '{"id": <$.body.id>, "as_text": "<$.body.id>", "all": <$.body>}'},
    )
    assert written == [
        b'{"id":123456789012345678901234567890,"as_text":"123456789012345678901234567890",'
        b'"all":{"id":123456789012345678901234567890,"small":5}}',
        b'{"id":-98765432109876543210987,"as_text":"-98765432109876543210987",'
        b'"all":{"id":-98765432109876543210987}}',
    ]


async def test_big_integers_keep_every_digit_through_jmespath(tmp_path: Path) -> None:
    lines = [b'{"id": 123456789012345678901234567890}']
    written, _ = await run_file_pipe(tmp_path, lines, transform={"jmespath": "{id: body.id}"})
    assert written == [b'{"id":123456789012345678901234567890}']


async def test_a_pattern_matches_a_big_integer_exactly(tmp_path: Path) -> None:
    lines = [b'{"id": 123456789012345678901234567890}', b'{"id": 123456789012345678901234567891}']
    pattern = {"body": {"id": [123456789012345678901234567890]}}
    written, _ = await run_file_pipe(tmp_path, lines, filter=[pattern])
    assert written == [lines[0]]


async def test_a_dead_letter_keeps_every_digit_of_the_record(tmp_path: Path) -> None:
    lines = [b'{"id": 123456789012345678901234567890}']
    _, stats = await run_file_pipe(tmp_path, lines, transform={"jmespath": "length(body.id)"})
    assert stats.dead_lettered == 1
    dead = (tmp_path / "dlq.jsonl").read_bytes()
    assert b'"body":{"id":123456789012345678901234567890}' in dead


async def test_a_payload_that_cannot_be_encoded_fails_alone_at_once(tmp_path: Path) -> None:
    # The enrichment hands back a value JSON has no form for, for one event only.
    lines = [b'{"id": 1}', b'{"id": 2, "poison": true}', b'{"id": 3}']
    written, stats = await run_file_pipe(
        tmp_path,
        lines,
        enrichment={"type": "python", "function": f"{__name__}:poison_one"},
    )
    assert [orjson.loads(line)["id"] for line in written] == [1, 3]
    assert (stats.delivered, stats.dead_lettered, stats.retried) == (2, 1, 0)  # never retried
    (dead,) = [orjson.loads(line) for line in (tmp_path / "dlq.jsonl").read_bytes().splitlines()]
    assert dead["stage"] == "target" and dead["attempts"] == 1
    assert dead["error"]["type"] == "FatalError" and "cannot be encoded" in dead["error"]["message"]


def poison_one(records: list[dict[str, Any]]) -> list[Any]:
    return [{**r["body"], "odd": object()} if r["body"].get("poison") else r["body"] for r in records]


@pytest.mark.parametrize("kind", ["file", "stdout"])
async def test_builtin_byte_targets_pass_the_conformance_case(tmp_path: Path, kind: str) -> None:
    from connectors.file import FileTarget, FileTargetOptions
    from connectors.stdout import StdoutOptions, StdoutTarget

    if kind == "file":
        await check_target_isolates_bad_payloads(
            lambda: FileTarget(FileTargetOptions(path=str(tmp_path / "o.jsonl"), fsync=False))
        )
    else:
        await check_target_isolates_bad_payloads(lambda: StdoutTarget(StdoutOptions()))
