"""Redis connectors: streams (consumer groups), reliable lists, pub/sub, lookups.

Everything that imports redis-py lives in this package; ``pipes`` itself never
does. Reference: docs/connectors/redis.md.
"""

from __future__ import annotations

from connectors.redis.checkpoint_store import RedisCheckpointStore
from connectors.redis.list_dead_letter_reader import RedisListDeadLetterReader
from connectors.redis.list_source import RedisListSource
from connectors.redis.list_target import RedisListTarget
from connectors.redis.lookup_enricher import RedisLookupEnricher
from connectors.redis.pubsub_source import RedisPubSubSource
from connectors.redis.pubsub_target import RedisPubSubTarget
from connectors.redis.stream_dead_letter_reader import RedisStreamDeadLetterReader
from connectors.redis.stream_source import RedisStreamSource
from connectors.redis.stream_target import RedisStreamTarget
from pipes.connector import Connector

__all__ = [
    "RedisCheckpointStore",
    "RedisListDeadLetterReader",
    "RedisListSource",
    "RedisListTarget",
    "RedisLookupEnricher",
    "RedisPubSubSource",
    "RedisPubSubTarget",
    "RedisStreamDeadLetterReader",
    "RedisStreamSource",
    "RedisStreamTarget",
    "list_connector",
    "lookup_connector",
    "pubsub_connector",
    "stream_connector",
]

stream_connector = Connector(
    name="redis_stream",
    description="Redis stream: read through a consumer group (at least once), XADD to write.",
    source=RedisStreamSource,
    target=RedisStreamTarget,
    dead_letter_reader=RedisStreamDeadLetterReader,
)
list_connector = Connector(
    name="redis_list",
    description="Redis list as a reliable queue (LMOVE into a processing list), LPUSH/RPUSH to write.",
    source=RedisListSource,
    target=RedisListTarget,
    dead_letter_reader=RedisListDeadLetterReader,
)
pubsub_connector = Connector(
    name="redis_pubsub",
    description="Redis Pub/Sub: SUBSCRIBE/PSUBSCRIBE and PUBLISH (at most once).",
    source=RedisPubSubSource,
    target=RedisPubSubTarget,
)
lookup_connector = Connector(
    name="redis_lookup",
    description="Look up a key per event (GET, HGETALL or JSON) to enrich it.",
    enricher=RedisLookupEnricher,
)
