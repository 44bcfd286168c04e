"""Which pipes a worker of ``pipes run --workers N`` runs.

A pipe whose source shares its events through the system itself (a consumer
group) runs in every worker: the group splits the partitions (or entries)
between them. Any other pipe runs in exactly one worker, chosen from its name
alone (``crc32(name) % N``), so that every worker, and every reload, agrees
without talking to the others.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from pipes.config import PipeDefinition

__all__ = ["runs_in", "shared", "worker_name"]


def shared(definition: PipeDefinition) -> bool:
    source: Any = definition.source.cls
    return bool(getattr(source, "shared_by_group", False))


def runs_in(index: int, count: int) -> Callable[[PipeDefinition], bool]:
    """The pipes worker ``index`` of ``count`` runs."""

    def chosen(definition: PipeDefinition) -> bool:
        return shared(definition) or zlib.crc32(definition.name.encode()) % count == index

    return chosen


def worker_name(index: int) -> str:
    """How a worker is named in logs, metrics and consumer names (``w0``, ``w1``...)."""
    return f"w{index}"
