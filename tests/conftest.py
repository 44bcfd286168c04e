"""Fixtures shared by every test folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from connectors.memory import HUB


@pytest.fixture
def unique() -> str:
    """A short unique name for channels, topics, streams and groups."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def channels(unique: str) -> Iterator[dict[str, str]]:
    """Names of fresh memory channels (in, out, dlq), dropped after the test."""
    names = {role: f"{role}-{unique}" for role in ("in", "out", "dlq", "enrich")}
    yield names
    for name in names.values():
        HUB.drop(name)
