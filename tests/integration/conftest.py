"""Real brokers for the integration suite, started once per session.

Each broker's fixtures live in their own module beside this file; this file
only makes pytest see them.
"""

from kafka_broker import *  # noqa: F403
from redis_server import *  # noqa: F403
