"""docs/connectors/http.md and schedule.md name every option of their connectors, nested ones included.

A new option without a line in the reference would be a feature nobody can
find; this keeps the pages and the option models in step.
"""

from __future__ import annotations

import re

import pytest
from helpers import ROOT
from pydantic import BaseModel

from connectors.http import HttpEnricherOptions, HttpTargetOptions, WebhookOptions
from connectors.http.enricher import CacheOptions
from connectors.http.options import ClientAuthOptions, RateLimitOptions, TlsOptions
from connectors.http.webhook_auth import WebhookAuthOptions
from connectors.schedule import ScheduleOptions

PAGES: dict[str, list[type[BaseModel]]] = {
    "http.md": [
        HttpTargetOptions,
        HttpEnricherOptions,
        ClientAuthOptions,
        TlsOptions,
        RateLimitOptions,
        CacheOptions,
        WebhookOptions,
        WebhookAuthOptions,
    ],
    "schedule.md": [ScheduleOptions],
}


def code_words(page: str) -> set[str]:
    """Every word written inside a `code span` (or a fenced block) of ``page``."""
    text = (ROOT / "docs" / "connectors" / page).read_text()
    spans = re.findall(r"```.*?```|`[^`\n]+`", text, flags=re.DOTALL)
    return {word for span in spans for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span)}


@pytest.mark.parametrize(
    ("page", "model"),
    [(page, model) for page, models in PAGES.items() for model in models],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_every_option_is_in_the_reference(page: str, model: type[BaseModel]) -> None:
    written = code_words(page)
    missing = [name for name in model.model_fields if name not in written]
    assert missing == [], f"docs/connectors/{page} does not name {model.__name__} options {missing}"
