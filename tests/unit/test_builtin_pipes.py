"""The built-in generator and file connectors under the real runner: resume, no duplicates."""

from __future__ import annotations

from pathlib import Path

import orjson

from connectors.generator import cart_event
from pipes.testing import run_pipe

FILTER = [{"body": {"detail-type": ["OrderPlaced"], "detail": {"total": [{"numeric": [">", 100]}]}}}]


def lines(path: Path) -> list[object]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_generator_to_file_resumes_without_duplicates(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    definition = {
        "name": "gen",
        "source": {"type": "generator", "count": 2000, "seed": 5},
        "filter": FILTER,
        "target": {"type": "file", "path": str(out)},
    }
    first = await run_pipe(definition, state_dir=tmp_path / "state")
    assert first.received == 2000
    expected = [e for e in (cart_event(i, 5) for i in range(2000)) if
                e["detail-type"] == "OrderPlaced" and e["detail"]["total"] > 100]  # fmt: skip
    assert first.delivered == len(expected)
    assert first.filtered == 2000 - len(expected)
    assert lines(out) == expected

    again = await run_pipe(definition, state_dir=tmp_path / "state")
    assert again.received == 0
    assert lines(out) == expected

    source = {**definition["source"], "count": 2500}  # type: ignore[dict-item]
    more = await run_pipe({**definition, "source": source}, state_dir=tmp_path / "state")
    assert more.received == 500
    assert lines(out) == [
        e for e in (cart_event(i, 5) for i in range(2500))
        if e["detail-type"] == "OrderPlaced" and e["detail"]["total"] > 100
    ]  # fmt: skip


async def test_file_to_file_reads_only_new_lines_on_each_run(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    source.write_bytes(b'{"n":1}\n{"n":2}\nnot json\n')
    definition = {
        "name": "copy",
        "source": {"type": "file", "path": str(source)},
        "target": {"type": "file", "path": str(out)},
    }
    first = await run_pipe(definition, state_dir=tmp_path / "state")
    assert first.delivered == 3
    assert out.read_bytes() == b'{"n":1}\n{"n":2}\nnot json\n'
    with source.open("ab") as handle:
        handle.write(b'{"n":3}')  # no newline: complete only because --once ends here
    second = await run_pipe(definition, state_dir=tmp_path / "state")
    assert second.delivered == 1
    assert out.read_bytes() == b'{"n":1}\n{"n":2}\nnot json\n{"n":3}\n'
    third = await run_pipe(definition, state_dir=tmp_path / "state")
    assert third.received == 0
