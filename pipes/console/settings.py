"""What ``pipes run`` tells the console: where pipe files live, whether it may write them, TLS."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["ConsoleSettings"]


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's settings for one daemon.

    ``config_dir`` is the first folder among the paths ``pipes run`` reads (where
    a new pipe's file belongs); ``write`` is ``--ui-write``: only then does Save
    write files there and reload (else the console offers the YAML to download).
    ``secure_cookie`` marks the session cookie Secure (the API is served over TLS).
    """

    config_dir: Path | None = None
    write: bool = False
    secure_cookie: bool = False

    def over_tls(self, tls: bool) -> ConsoleSettings:
        return replace(self, secure_cookie=tls)
