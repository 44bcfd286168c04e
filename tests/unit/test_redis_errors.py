"""How redis-py errors become pipes errors: the type decides retry or dead letter."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError,
    ResponseError,
    TimeoutError,
)

from connectors.redis.client import is_nogroup, map_error
from connectors.redis.stream_source import _next_id
from pipes.errors import FatalError, RetryableError


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionError("Connection refused"), RetryableError),
        (TimeoutError("Timeout reading"), RetryableError),
        (BusyLoadingError("LOADING Redis is loading the dataset in memory"), RetryableError),
        (ResponseError("OOM command not allowed when used memory > 'maxmemory'"), RetryableError),
        (ResponseError("READONLY You can't write against a read only replica."), RetryableError),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), FatalError),
        (ResponseError("ERR syntax error"), FatalError),
        (AuthenticationError("invalid username-password pair"), FatalError),
        (OSError("network unreachable"), RetryableError),
    ],
)
def test_map_error(error: Exception, kind: type[Exception]) -> None:
    mapped = map_error(error, "XADD to stream 's'")
    assert type(mapped) is kind
    assert str(mapped).startswith("redis XADD to stream 's': ")


def test_nogroup_is_recognised() -> None:
    assert is_nogroup(ResponseError("NOGROUP No such key 's' or consumer group 'g'"))
    assert not is_nogroup(ResponseError("ERR no such key"))
    assert not is_nogroup(ConnectionError("NOGROUP"))


def test_next_id_is_the_smallest_id_after() -> None:
    assert _next_id("1714521600050-0") == "1714521600050-1"
    assert _next_id("5-41") == "5-42"
