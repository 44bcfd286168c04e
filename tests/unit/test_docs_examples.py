"""Every complete pipe shown in the README and docs/ validates, so the docs stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipes.config import load_text

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
# Examples that need something beyond this repository to load.
NEEDS_USER_CODE = ("function: handlers:",)
SCHEMATIC = "{type: kafka, ...}"


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for index, block in enumerate(BLOCK.findall(doc.read_text())):
            if not re.search(r"^(- )?name:|^\s+- name:", block, re.M) or "source:" not in block:
                continue  # a fragment, not a whole pipe
            if SCHEMATIC in block or any(marker in block for marker in NEEDS_USER_CODE):
                continue
            found.append((f"{doc.relative_to(ROOT)}#{index}", block))
    return found


@pytest.mark.parametrize(("where", "text"), examples(), ids=[w for w, _ in examples()])
def test_documented_pipe_validates(where: str, text: str) -> None:
    result = load_text(
        text, where, env={"KAFKA_BOOTSTRAP": "localhost:9092", "REDIS_URL": "redis://localhost"}
    )
    assert result.errors == []


def test_the_docs_have_examples_to_check() -> None:
    assert len(examples()) >= 10
