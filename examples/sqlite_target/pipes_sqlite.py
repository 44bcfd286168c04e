"""An example third-party connector: a target that stores payloads in SQLite.

It shows the whole contract a connector author meets: an options model
(validated, documented, unknown keys rejected), no I/O in ``__init__``,
clients opened in ``start`` and closed in ``stop``, one round trip per batch,
and errors mapped onto ``RetryableError`` (may work later) and ``FatalError``
(never will) so that the runner can retry or dead-letter each event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from pipes.connector import Connector, ConnectorContext, ConnectorOptions, Target, encode_each
from pipes.errors import FatalError, RetryableError
from pipes.events import Event, Outcome


class SqliteOptions(ConnectorOptions):
    path: str = Field(description="SQLite database file; created, with its folder, if missing.")
    table: str = Field(default="events", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Table name.")


def _row(event: Event) -> tuple[str, str, str]:
    return (event.partition, str(event.position), event.payload_bytes().decode("utf-8", "replace"))


class SqliteTarget(Target):
    """Inserts each payload as a row ``(partition, position, payload)``; a batch is one transaction."""

    options_model = SqliteOptions
    options: SqliteOptions
    reads_record = False  # it writes payloads only: the runner may free bodies early

    def __init__(self, options: SqliteOptions) -> None:
        super().__init__(options)
        self.db: sqlite3.Connection | None = None

    async def start(self, context: ConnectorContext) -> None:
        try:
            Path(self.options.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.options.path)
            self.db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.options.table} "
                "(partition TEXT, position TEXT, payload TEXT, PRIMARY KEY (partition, position))"
            )
        except (OSError, sqlite3.OperationalError) as exc:
            raise RetryableError(f"sqlite: cannot open {self.options.path}: {exc}") from exc

    async def write(self, events: Sequence[Event]) -> Sequence[Outcome]:
        assert self.db is not None
        # One payload that cannot be encoded fails alone, for good; the rest is written.
        rows, outcomes = encode_each(events, _row)
        written = [row for row in rows if row is not None]
        try:
            with self.db:  # one transaction per batch
                # INSERT OR REPLACE makes a redelivery (at-least-once) idempotent.
                self.db.executemany(f"INSERT OR REPLACE INTO {self.options.table} VALUES (?, ?, ?)", written)
        except sqlite3.OperationalError as exc:  # locked, disk full: may pass later
            return [RetryableError(f"sqlite: {exc}") if o is None else o for o in outcomes]
        except sqlite3.DatabaseError as exc:  # corrupt file, schema mismatch: will not pass
            return [FatalError(f"sqlite: {exc}") if o is None else o for o in outcomes]
        return outcomes

    async def stop(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


#: What the entry point points at: `sqlite = "pipes_sqlite:connector"`.
connector = Connector(
    name="sqlite",
    description="Stores payloads as rows of a SQLite table (example connector).",
    target=SqliteTarget,
)
