"""HTTP connectors: the ``http`` target (an API destination) and enricher, and the ``webhook`` source.

Everything that speaks HTTP lives in this package, on aiohttp. Reference:
docs/connectors/http.md.
"""

from __future__ import annotations

from connectors.http.enricher import HttpEnricher, HttpEnricherOptions
from connectors.http.target import HttpTarget, HttpTargetOptions
from connectors.http.webhook import WebhookOptions, WebhookSource
from pipes.connector import Connector

__all__ = [
    "HttpEnricher",
    "HttpEnricherOptions",
    "HttpTarget",
    "HttpTargetOptions",
    "WebhookOptions",
    "WebhookSource",
    "connector",
    "webhook_connector",
]

connector = Connector(
    name="http",
    description="HTTP endpoints: post each event (or a batch) to an API with templated URL, headers and "
    "query, auth, rate limit and Retry-After; or call one per event to enrich it.",
    target=HttpTarget,
    enricher=HttpEnricher,
)
webhook_connector = Connector(
    name="webhook",
    description="Receive HTTP requests as events; each is answered once its event settled (at least once "
    "with a sender that retries).",
    source=WebhookSource,
)
