"""Kafka source and target (aiokafka). See docs/connectors/kafka.md."""

from __future__ import annotations

from connectors.kafka.dead_letter_reader import KafkaDeadLetterReader
from connectors.kafka.source import KafkaSource, KafkaSourceOptions
from connectors.kafka.target import KafkaTarget, KafkaTargetOptions
from pipes.connector import Connector

__all__ = [
    "KafkaDeadLetterReader",
    "KafkaSource",
    "KafkaSourceOptions",
    "KafkaTarget",
    "KafkaTargetOptions",
    "connector",
]

connector = Connector(
    name="kafka",
    description="Apache Kafka (or any Kafka-protocol broker): consume a consumer group's "
    "partitions, committing settled offsets; produce records with templated topic, key and headers.",
    source=KafkaSource,
    target=KafkaTarget,
    dead_letter_reader=KafkaDeadLetterReader,
)
