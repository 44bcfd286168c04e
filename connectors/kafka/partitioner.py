"""Which partition a keyed record goes to: Kafka's default rule, computed fast.

Kafka clients put a record with a key in partition
``toPositive(murmur2(key)) % partitions`` (Java's ``Utils.murmur2``), so that
every producer, in any language, sends a key to the same partition. aiokafka
implements murmur2 byte by byte in Python and looks the topic's partitions up
for every record; for a target writing tens of thousands of records a second
that is a large share of its CPU. Here the key's 32-bit words are unpacked in
one C call and the partition list is looked up once per topic and write. The
result is the same number (tested against aiokafka's own ``murmur2``).
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Sequence

__all__ = ["murmur2", "partition_for"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0x9747B28C


@functools.lru_cache(maxsize=64)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Java Kafka's ``Utils.murmur2`` of ``data``, as an unsigned 32-bit number."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length >> 2
    if whole:
        for k in _words(whole).unpack_from(data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            k = (k * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest:
        tail = length & ~3
        if rest >= 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=4096)
def _hashed(key: bytes, count: int) -> int:
    # Keys repeat (customers, accounts): remembering the last thousands saves the hash.
    return (murmur2(key) & 0x7FFFFFFF) % count


def partition_for(key: bytes | None, partitions: Sequence[int], available: Sequence[int]) -> int:
    """The partition of a record: by key hash when it has a key, else any available one."""
    if key is None:
        return random.choice(available or partitions)
    return partitions[_hashed(key, len(partitions))]
