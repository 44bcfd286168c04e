"""Every complete pipe shown in the README and docs/ validates, so the docs stay true to the code."""

from __future__ import annotations

import pytest
from helpers import documented_pipes

from pipes.config import load_text

# Examples that need something beyond this repository to load.
NEEDS_USER_CODE = ("function: handlers:",)


def examples() -> list[tuple[str, str]]:
    return [
        (where, block)
        for where, block in documented_pipes()
        if not any(marker in block for marker in NEEDS_USER_CODE)
    ]


@pytest.mark.parametrize(("where", "text"), examples(), ids=[w for w, _ in examples()])
def test_documented_pipe_validates(where: str, text: str) -> None:
    result = load_text(
        text, where, env={"KAFKA_BOOTSTRAP": "localhost:9092", "REDIS_URL": "redis://localhost"}
    )
    assert result.errors == []


def test_the_docs_have_examples_to_check() -> None:
    assert len(examples()) >= 10
