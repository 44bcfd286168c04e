"""The built-in connectors that need no server pass the conformance suite."""

from __future__ import annotations

from pathlib import Path

import orjson

from connectors.file import FileSource, FileSourceOptions, FileTarget, FileTargetOptions
from connectors.memory import MemoryOptions, MemorySource, MemorySourceOptions, MemoryTarget
from pipes.codec import encode_payload
from pipes.conformance import check_source, check_target
from pipes.testing import channel


async def test_memory_source(channels: dict[str, str]) -> None:
    produced = {"n": 0}

    async def produce(n: int) -> None:
        for _ in range(n):
            channel(channels["in"]).put(produced["n"], partition=f"p{produced['n'] % 3}")
            produced["n"] += 1

    await check_source(lambda: MemorySource(MemorySourceOptions(channel=channels["in"])), produce)


async def test_memory_source_with_native_commits(channels: dict[str, str]) -> None:
    produced = {"n": 0}

    async def produce(n: int) -> None:
        for _ in range(n):
            channel(channels["in"]).put(produced["n"])
            produced["n"] += 1

    await check_source(
        lambda: MemorySource(MemorySourceOptions(channel=channels["in"], native_commit=True)), produce
    )


async def test_memory_target(channels: dict[str, str]) -> None:
    async def delivered() -> list[bytes]:
        return [encode_payload(p) for p in channel(channels["out"]).written]

    await check_target(
        lambda: MemoryTarget(MemoryOptions(channel=channels["out"])), delivered=delivered, encodes=False
    )


async def test_file_source(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.touch()
    produced = {"n": 0}

    async def produce(n: int) -> None:
        with path.open("ab") as handle:
            for _ in range(n):
                handle.write(orjson.dumps({"n": produced["n"]}) + b"\n")
                produced["n"] += 1

    await check_source(lambda: FileSource(FileSourceOptions(path=str(path))), produce)


async def test_file_target(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"

    async def delivered() -> list[bytes]:
        return path.read_bytes().splitlines()

    await check_target(lambda: FileTarget(FileTargetOptions(path=str(path))), delivered=delivered)
