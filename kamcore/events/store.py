"""The SQLite store of the event side: registered accounts, the append-only event log and ledger, rejected events.

WAL journal, parameterised SQL only. A writer holds `BEGIN IMMEDIATE`, so threads and processes that share the
file apply events one transaction at a time; the event id is the log's primary key, so an id is stored once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compiler import Line, LineKey
from .intake import Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id  TEXT PRIMARY KEY,
    row         TEXT NOT NULL,               -- the account's fields (JSON), as the batch rule book reads them
    version     INTEGER NOT NULL DEFAULT 0,  -- moves on every write to the account's events or ledger
    next_due_us INTEGER                      -- when its earliest timer is due
);
CREATE INDEX IF NOT EXISTS accounts_due ON accounts(next_due_us);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    event_id    TEXT NOT NULL UNIQUE,
    account_id  TEXT NOT NULL REFERENCES accounts(account_id),
    type        TEXT NOT NULL,
    at_us       INTEGER NOT NULL,                   -- event time, microseconds since 1970 UTC
    fields      TEXT NOT NULL,                      -- JSON
    snapshot    TEXT NOT NULL,                      -- JSON: the account fields the rules read, when it was applied
    revision    TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_account ON events(account_id, at_us, event_id);
CREATE TABLE IF NOT EXISTS ledger (
    line_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    rule       TEXT NOT NULL,
    measure    TEXT NOT NULL CHECK (measure IN ('points', 'exposure', 'alert')),
    ref        TEXT NOT NULL DEFAULT '',
    amount     REAL NOT NULL,
    at_us      INTEGER NOT NULL,
    revision   TEXT NOT NULL,
    cause      TEXT NOT NULL,   -- the event (or sweep) whose processing wrote this line
    detail     TEXT NOT NULL,   -- JSON
    written_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_account ON ledger(account_id, line_id);
CREATE INDEX IF NOT EXISTS ledger_alerts ON ledger(measure, account_id);
CREATE TABLE IF NOT EXISTS rejected (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    event       TEXT NOT NULL,  -- JSON as submitted
    errors      TEXT NOT NULL   -- JSON
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

BUSY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AccountRow:
    account_id: str
    row: str  # JSON text
    version: int
    next_due_us: int | None

    @property
    def fields(self) -> dict[str, Any]:
        return json.loads(self.row)


@dataclass(frozen=True)
class StoredEvent:
    event: Event
    snapshot: dict[str, Any]
    revision: str


class EventStore:
    """One connection to the event database. Not shared between threads without the caller's lock."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a batch acknowledged to the caller survives a power cut, not only a crash of the process.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[None]:
        """One transaction; a writer takes the database's write lock at the start (BEGIN IMMEDIATE)."""
        self.db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- accounts ---

    def upsert_accounts(self, rows: Iterable[tuple[str, str]]) -> None:
        """(account id, fields as JSON) pairs; a known account keeps its version and timers."""
        self.db.executemany("INSERT INTO accounts (account_id, row) VALUES (?, ?) "
                            "ON CONFLICT(account_id) DO UPDATE SET row = excluded.row", list(rows))

    def account(self, account_id: str) -> AccountRow | None:
        found = self.db.execute("SELECT account_id, row, version, next_due_us FROM accounts WHERE account_id = ?",
                                (account_id,)).fetchone()
        return AccountRow(*found) if found else None

    def accounts_due(self, until_us: int) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT account_id FROM accounts WHERE next_due_us <= ? ORDER BY account_id", (until_us,))]

    def accounts(self) -> list[AccountRow]:
        return [AccountRow(*r) for r in self.db.execute(
            "SELECT account_id, row, version, next_due_us FROM accounts ORDER BY account_id")]

    def account_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT account_id FROM accounts ORDER BY account_id")]

    def bump(self, account_id: str, next_due_us: int | None) -> int:
        """Mark the account as changed; returns its new version."""
        return self.db.execute("UPDATE accounts SET version = version + 1, next_due_us = ? WHERE account_id = ? "
                               "RETURNING version", (next_due_us, account_id)).fetchone()[0]

    # --- events ---

    def event(self, event_id: str) -> StoredEvent | None:
        found = self.db.execute("SELECT event_id, account_id, type, at_us, fields, snapshot, revision FROM events "
                                "WHERE event_id = ?", (event_id,)).fetchone()
        return _stored(found) if found else None

    def add_event(self, event: Event, snapshot: dict[str, Any], revision: str, received_at: str) -> None:
        self.db.execute("INSERT INTO events (event_id, account_id, type, at_us, fields, snapshot, revision, "
                        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (event.id, event.account_id, event.type, event.at_us, _json(event.fields), _json(snapshot),
                         revision, received_at))

    def events_of(self, account_id: str) -> list[StoredEvent]:
        """The account's events in event-time order (ties by id)."""
        return [_stored(r) for r in self.db.execute(
            "SELECT event_id, account_id, type, at_us, fields, snapshot, revision FROM events WHERE account_id = ? "
            "ORDER BY at_us, event_id", (account_id,))]

    def event_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def add_rejected(self, event: Any, errors: list[dict[str, Any]], received_at: str) -> None:
        self.db.execute("INSERT INTO rejected (received_at, event, errors) VALUES (?, ?, ?)",
                        (received_at, json.dumps(event, ensure_ascii=False, default=str), _json(errors)))

    # --- ledger ---

    def add_lines(self, account_id: str, lines: Iterable[Line], cause: str, written_at: str) -> None:
        self.db.executemany(
            "INSERT INTO ledger (account_id, event_id, rule, measure, ref, amount, at_us, revision, cause, detail, "
            "written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(account_id, ln.event_id, ln.rule, ln.measure, ln.ref, ln.amount, ln.at_us, ln.revision, cause,
              _json(ln.detail), written_at) for ln in lines])

    def net_lines(self, account_id: str) -> dict[LineKey, Line]:
        """The account's ledger folded to one line per (event, rule, measure, ref): corrections added up."""
        net: dict[LineKey, Line] = {}
        for event_id, rule, measure, ref, amount, at_us, revision, detail in self.db.execute(
                "SELECT event_id, rule, measure, ref, amount, at_us, revision, detail FROM ledger "
                "WHERE account_id = ? ORDER BY line_id", (account_id,)):
            key = (event_id, rule, measure, ref)
            if key in net:
                net[key].amount += amount
            else:
                net[key] = Line(event_id, rule, measure, amount, at_us, revision, ref, json.loads(detail))
        return net

    def lines(self, account_id: str, measure: str | None, after_line: int, limit: int) -> list[tuple]:
        sql = ("SELECT line_id, account_id, event_id, rule, measure, ref, amount, at_us, revision, cause, detail, "
               "written_at FROM ledger WHERE account_id = ? AND line_id > ?")
        args: list[Any] = [account_id, after_line]
        if measure is not None:
            sql += " AND measure = ?"
            args.append(measure)
        return self.db.execute(sql + " ORDER BY line_id LIMIT ?", (*args, limit)).fetchall()

    def open_alerts(self, account_id: str | None, level: str | None, limit: int) -> list[tuple]:
        """Alerts raised and not withdrawn: (account, event, rule, at_us, revision, detail), newest first."""
        sql = ("SELECT account_id, event_id, rule, MIN(at_us), MAX(revision), MIN(detail) FROM ledger "
               "WHERE measure = 'alert'")
        args: list[Any] = []
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        if level is not None:
            sql += " AND json_extract(detail, '$.level') = ?"
            args.append(level)
        sql += " GROUP BY account_id, event_id, rule, ref HAVING SUM(amount) > 0.5 ORDER BY MIN(at_us) DESC, " \
               "account_id, event_id LIMIT ?"
        return self.db.execute(sql, (*args, limit)).fetchall()

    # --- settings ---

    def meta(self, key: str) -> str | None:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                        "value = excluded.value", (key, value))


def _stored(r: tuple) -> StoredEvent:
    event_id, account_id, type_, at_us, fields, snapshot, revision = r
    return StoredEvent(Event(event_id, account_id, type_, at_us, json.loads(fields)), json.loads(snapshot), revision)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
