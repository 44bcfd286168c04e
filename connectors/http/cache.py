"""The enricher's response cache: least recently used, each entry valid for ``ttl``.

Keyed by what makes a request: method, rendered URL with its query, the
rendered headers (a per-tenant header asks a different question) and the body
bytes. It holds answer bodies (bytes), so that each hit decodes its own
copy and no two events ever share one mutable result.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pipes.clock import Clock

__all__ = ["ResponseCache"]


class ResponseCache:
    def __init__(self, ttl_s: float, max_entries: int, clock: Clock) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any) -> Any | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        expires, value = found
        if self.clock.monotonic() >= expires:
            del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: Any, value: Any) -> None:
        self._entries[key] = (self.clock.monotonic() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
