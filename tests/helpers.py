"""Helpers shared by every test folder (importable as ``helpers``)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
#: Written as an outline, not as a pipe that could load.
_SCHEMATIC = "{type: kafka, ...}"


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail the test after ``timeout`` seconds (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.002)


def wait_until_sync(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """The same for synchronous tests (subprocesses, files)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def documented_pipes() -> list[tuple[str, str]]:
    """Every whole pipe shown in the README and docs/ as (``page#block``, YAML text).

    Fragments (a key or two) are left out; outlines with ``...`` too.
    """
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for index, block in enumerate(_YAML_BLOCK.findall(doc.read_text())):
            if not re.search(r"^(- )?name:|^\s+- name:", block, re.M) or "source:" not in block:
                continue  # a fragment, not a whole pipe
            if _SCHEMATIC in block:
                continue
            found.append((f"{doc.relative_to(ROOT)}#{index}", block))
    return found
