"""An example tidings plugin: the ``sqlite`` sink type.

Every event becomes one row (id, action, repository, timestamp and the whole event
as JSON) in a table of a SQLite database. A batch is one transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

import tidings

__all__ = ["SqliteSink", "tidings_register_sinks"]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SqliteSink:
    """Store events in ``table`` of the SQLite ``database``."""

    def __init__(self, database: str, *, table: str = "events") -> None:
        self.database = database
        self.table = table
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_options(
        cls, context: tidings.SinkContext, *, database: str, table: str = "events"
    ) -> SqliteSink:
        """The sink factory: tidings passes the endpoint's options as keywords."""
        if not isinstance(database, str) or not database:
            raise tidings.ConfigError(f"{context.where('database')} must be a file path")
        if not isinstance(table, str) or not _TABLE_NAME.match(table):
            raise tidings.ConfigError(
                f"{context.where('table')} must be a plain table name, got {table!r}"
            )
        return cls(database, table=table)

    def __repr__(self) -> str:
        return f"SqliteSink({self.database!r}, table={self.table!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.database, check_same_thread=False, isolation_level=None)
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (id TEXT PRIMARY KEY, action TEXT, "
                "repository TEXT, timestamp TEXT, event TEXT NOT NULL)"
            )
            self._db = db
        return self._db

    def write(self, events: Sequence[tidings.Event]) -> None:
        """Insert the batch in one transaction; an event seen before is replaced."""
        rows = [
            (
                event.id,
                event.action,
                (event.target or {}).get("repository"),
                event.timestamp_text,
                json.dumps(event.to_dict()),
            )
            for event in events
        ]
        with self._lock:
            try:
                db = self._connection()
                with db:
                    db.execute("BEGIN")
                    db.executemany(
                        f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?, ?, ?)", rows
                    )
            except sqlite3.Error as exc:
                # Retryable: a locked or full database may recover.
                raise tidings.DeliveryError(f"sqlite {self.database}: {exc}") from exc

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


@tidings.hookimpl
def tidings_register_sinks(register: Any) -> None:
    """Provide the ``sqlite`` sink type."""
    register("sqlite", SqliteSink.from_options)
