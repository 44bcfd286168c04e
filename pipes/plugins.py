"""Checkpoint stores and coordination backends, found by the scheme of their URL.

``--state redis://...`` and ``--coordination redis://...`` name a backend the
way ``type:`` names a connector: through an entry-point group, so that the core
imports no client library and a third-party package can add its own
(``[project.entry-points."pipes.checkpoint_stores"] etcd = "pkg.mod:Store"``).
An entry point points at a class (or factory) called with the URL.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from urllib.parse import urlsplit

__all__ = ["CHECKPOINT_STORES", "COORDINATION", "UnknownBackend", "open_backend"]

CHECKPOINT_STORES = "pipes.checkpoint_stores"
COORDINATION = "pipes.coordination"


class UnknownBackend(LookupError):
    """No installed backend for that URL's scheme; ``str()`` lists the schemes there are."""


def open_backend(group: str, url: str) -> object:
    """The backend of ``group`` for ``url``, built with it (no I/O yet)."""
    scheme = urlsplit(url).scheme
    found = {ep.name: ep for ep in entry_points(group=group)}
    ep = found.get(scheme)
    if not scheme or ep is None:
        known = ", ".join(f"{name}://" for name in sorted(found)) or "none installed"
        raise UnknownBackend(f"{url!r}: no backend for this URL (use one of: {known})")
    factory = ep.load()
    return factory(url)
