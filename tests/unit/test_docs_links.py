"""Every page the README and docs point at exists, so a reader never follows a dead link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
#: A page named in code spans, e.g. "see `docs/cli.md`".
NAMED = re.compile(r"`([\w./-]+\.md)`")


def references() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for target in LINK.findall(text) + NAMED.findall(text):
            if "://" not in target and not target.startswith("mailto:"):
                found.append((str(page.relative_to(ROOT)), target))
    return found


@pytest.mark.parametrize(("page", "target"), references())
def test_a_referenced_page_exists(page: str, target: str) -> None:
    beside = (ROOT / page).parent / target
    assert beside.exists() or (ROOT / target).exists(), f"{page} points at {target}, which does not exist"


def test_the_docs_have_references_to_check() -> None:
    assert len(references()) >= 20
