"""The event ledger: applies account events exactly once, in event-time order, through the compiled event rules,
and answers for each account its ledger, its state and its open alerts.

The account's ledger is what its events give under the rules, in event-time order. An event that arrives after
later ones (or after a timer it would have preceded) re-derives the account from its event log; the difference
is booked as correction lines naming the late event as their cause. Lines that single-event rules booked for
other events stay as booked: only what depends on order (streaks, timers, expiry) is derived again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import KamError, RowError
from . import eventtime
from .compiler import EPSILON, Engine, Line, LineKey, Session
from .eventtime import Clock, system_clock
from .intake import Event, EventError, read_event
from .rules import EventRules
from .store import AccountRow, EventStore

if TYPE_CHECKING:
    from ..rulebook import RuleBook

STATE_FIELDS = ("tier", "points_multiplier", "credit_limit", "exposure", "credit_status")
SWEPT_UNTIL = "swept_until"
PORTFOLIO = "portfolio_generation"  # moves whenever an account row is registered or changed
MAX_LINES = 10_000  # per ledger request
MEASURES = ("points", "exposure", "alert")
SESSIONS = 10_000  # accounts whose working memory is kept between requests; others are rebuilt from the log


class UnknownAccount(KamError):
    """The account is not registered with the event ledger."""


class NoEventRules(KamError):
    """The rule book has no `kind: event_rules` file."""


@dataclass
class EventOutcome:
    """What became of one submitted event: applied, duplicate (its id was seen before; not applied again), or
    rejected (with errors)."""

    index: int
    event_id: str | None
    status: str
    errors: list[EventError] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.event_id, "status": self.status,
                "errors": [e.to_dict() for e in self.errors], "lines": self.lines}


@dataclass
class Submission:
    """The answer to a batch: one outcome per submitted event, in submission order."""

    outcomes: list[EventOutcome]
    revision: str

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def errors(self) -> list[EventError]:
        return [e for o in self.outcomes for e in o.errors]

    def to_dict(self) -> dict[str, Any]:
        return {"revision": self.revision, "applied": self.count("applied"), "duplicates": self.count("duplicate"),
                "rejected": self.count("rejected"), "events": [o.to_dict() for o in self.outcomes]}


def revision_of(book: RuleBook) -> str:
    """The book's revision, or a digest of its files when it was loaded from a folder rather than a commit."""
    if book.revision:
        return book.revision
    digest = hashlib.sha256()
    for f in sorted(book.files, key=lambda f: f.path):
        digest.update(f.path.encode() + b"\0" + f.text.encode() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


class EventLedger:
    """Events in, ledger and account state out. One instance may serve many threads; several processes may open
    the same database file."""

    def __init__(self, path: str | Path, book: RuleBook, clock: Clock = system_clock):
        self.clock = clock
        self.store = EventStore(path)
        self._lock = threading.RLock()
        self.engine: Engine | None = None
        self.use_book(book)

    def use_book(self, book: RuleBook) -> None:
        """Apply events with this rule book (its event rules, and account state at its revision) from now on."""
        rules = book.event_rules
        if rules is None:
            raise NoEventRules("the rule book has no event rules (a file with `kind: event_rules`)")
        with self._lock:
            self.book = book
            self.rules: EventRules = rules
            self.revision = revision_of(book)
            retired, self.engine = self.engine, Engine(rules, self.revision)
            if retired is not None:
                retired.close()
            self.single_rules = {r.id for r in rules.rules if not r.is_streak}
            self._sessions: OrderedDict[str, Session] = OrderedDict()
            self._contexts: dict[str, dict[str, Any]] = {}
            self._generation: str | None = None

    def close(self) -> None:
        with self._lock:
            self.engine.close()
            self.store.close()

    # --- accounts ---

    def register_accounts(self, accounts: Any) -> list[RowError]:
        """Register or update accounts (DataFrame or dicts, each with `account_id`). Rows without an id are
        returned as errors; every other row is stored."""
        frame = accounts if isinstance(accounts, pd.DataFrame) else pd.DataFrame(list(accounts))
        errors, rows = [], []
        for i, record in enumerate(frame.to_dict("records")):
            fields_ = {k: _plain(v) for k, v in record.items() if _plain(v) is not None}
            account_id = fields_.get("account_id")
            if account_id is None or str(account_id).strip() == "":
                errors.append(RowError(i, None, "account_id", "every account needs an account_id"))
                continue
            fields_["account_id"] = str(account_id).strip()
            rows.append((fields_["account_id"], json.dumps(fields_, ensure_ascii=False, sort_keys=True, default=str)))
        with self._lock, self.store.transaction():
            self.store.upsert_accounts(rows)
            self.store.set_meta(PORTFOLIO, str(int(self.store.meta(PORTFOLIO) or 0) + 1))
        return errors

    # --- events ---

    def submit(self, events: Iterable[Any]) -> Submission:
        """Apply a batch of events (`{id, account_id, type, at, <fields>}`). Each is applied exactly once; a repeated
        id is acknowledged as a duplicate; a bad event is rejected with its errors and the others still apply.
        Events are applied in event-time order, whatever their order in the batch."""
        raws = list(events)
        now = eventtime.iso(eventtime.parse(self.clock()))
        outcomes: list[EventOutcome | None] = [None] * len(raws)
        ready: list[tuple[int, Event]] = []
        first: dict[str, tuple[int, Event]] = {}
        repeats: list[tuple[int, int]] = []  # (a repeat, the event it repeats) within this batch
        for i, raw in enumerate(raws):
            event, errors = read_event(raw, i, self.rules)
            if event is None:
                outcomes[i] = EventOutcome(i, errors[0].event_id, "rejected", errors)
            elif event.id in first:
                outcomes[i] = self._repeat(i, event, first[event.id][1], "earlier in this batch")
                repeats.append((i, first[event.id][0]))
            else:
                first[event.id] = (i, event)
                ready.append((i, event))
        ready.sort(key=lambda pair: pair[1].order_key)
        with self._lock:
            touched: set[str] = set()
            try:
                with self.store.transaction():
                    for i, event in ready:
                        outcomes[i] = self._apply(i, event, now, touched)
                    for i, j in repeats:  # a repeat of an event that was rejected is rejected for the same reasons
                        if outcomes[i].status == "duplicate" and outcomes[j].status == "rejected":
                            outcomes[i] = EventOutcome(i, outcomes[i].event_id, "rejected", [
                                EventError(i, e.event_id, e.field, e.message) for e in outcomes[j].errors])
                    for o in outcomes:
                        if o.status == "rejected":
                            self.store.add_rejected(raws[o.index], [e.to_dict() for e in o.errors], now)
            except BaseException:
                for account_id in touched:  # their sessions ran ahead of a transaction that did not commit
                    self._sessions.pop(account_id, None)
                raise
        return Submission(outcomes, self.revision)

    def _apply(self, index: int, event: Event, now: str, touched: set[str]) -> EventOutcome:
        stored = self.store.event(event.id)
        if stored is not None:
            return self._repeat(index, event, stored.event, "already applied")
        account = self.store.account(event.account_id)
        if account is None:
            return EventOutcome(index, event.id, "rejected",
                                [EventError(index, event.id, "account_id", f"unknown account {event.account_id!r}")])
        touched.add(account.account_id)
        session = self._session(account)
        snapshot = self._snapshot(account)
        self.store.add_event(event, snapshot, self.revision, now)
        if session.is_late(event):
            session, lines = self._rederive(account, event)
            self._keep(session)
        else:
            lines = self.engine.apply(session, event, snapshot)
        self.store.add_lines(account.account_id, lines, event.id, now)
        session.version = self.store.bump(account.account_id, session.next_due())
        return EventOutcome(index, event.id, "applied", lines=[_line_dict(ln) for ln in lines])

    @staticmethod
    def _repeat(index: int, event: Event, original: Event, where: str) -> EventOutcome:
        if original == event:
            return EventOutcome(index, event.id, "duplicate")
        return EventOutcome(index, event.id, "rejected", [EventError(
            index, event.id, "id", f"id {event.id!r} was {where} for a different event; an id names one event")])

    def sweep(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Fire every timer due by `now` (default: the clock): points expiry, no order for N days. Returns the
        lines booked. Run it periodically; events arriving meanwhile fire the timers due before them anyway."""
        until = eventtime.parse(now or self.clock())
        written = eventtime.iso(eventtime.parse(self.clock()))
        booked: list[dict[str, Any]] = []
        with self._lock:
            touched: set[str] = set()
            try:
                with self.store.transaction():
                    for account_id in self.store.accounts_due(until):
                        account = self.store.account(account_id)
                        touched.add(account_id)
                        session = self._session(account)
                        lines = self.engine.fire_due(session, until)
                        self.store.add_lines(account_id, lines, "sweep@" + eventtime.iso(until), written)
                        session.version = self.store.bump(account_id, session.next_due())
                        booked += [_line_dict(ln, account_id) for ln in lines]
                    if until > self._swept_until():
                        self.store.set_meta(SWEPT_UNTIL, str(until))
            except BaseException:
                for account_id in touched:
                    self._sessions.pop(account_id, None)
                raise
        return booked

    # --- reading ---

    def ledger(self, account_id: str, measure: str | None = None, after_line: int = 0,
               limit: int = MAX_LINES) -> list[dict[str, Any]]:
        """The account's ledger lines in the order they were written (page with `after_line`)."""
        if measure is not None and measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(MEASURES)}")
        with self._lock:
            self._account(account_id)
            rows = self.store.lines(account_id, measure, after_line, max(1, min(limit, MAX_LINES)))
        keys = ("line", "account_id", "event_id", "rule", "measure", "ref", "amount", "at", "revision", "cause",
                "detail", "written_at")
        out = []
        for row in rows:
            line = dict(zip(keys, row, strict=True))
            line["at"] = eventtime.iso(line["at"])
            line["detail"] = json.loads(line["detail"])
            out.append(line)
        return out

    def state(self, account_id: str) -> dict[str, Any]:
        """The account now: tier, multiplier, limit and status from the batch rule book at the current revision,
        points and exposure from its ledger, open alerts, pending streaks and armed timers."""
        with self._lock, self.store.transaction(write=False):
            account = self._account(account_id)
            session = self._session(account)
            context = self._context(account)
            return _state(account_id, session, context, self.revision, self.rules)

    def alerts(self, account_id: str | None = None, level: str | None = None, limit: int = 1000) -> list[dict]:
        """Open alerts (credit alerts, holds, follow-ups), newest first."""
        with self._lock:
            rows = self.store.open_alerts(account_id, level, max(1, min(limit, MAX_LINES)))
        out = []
        for account, event_id, rule, at_us, revision, detail in rows:
            d = json.loads(detail)
            out.append({"account_id": account, "event_id": event_id, "rule": rule, "level": d["level"],
                        "message": d["message"], "at": eventtime.iso(at_us), "revision": revision})
        return out

    def verify(self, account_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
        """Replay each account's event log through a fresh engine and compare with its stored ledger. Returns the
        differences by account (empty when the ledger is exactly what the events give at this revision)."""
        with self._lock, self.store.transaction(write=False):
            ids = list(account_ids) if account_ids is not None else self.store.account_ids()
            out = {}
            for account_id in ids:
                self._account(account_id)
                replayed = self._replay(account_id, frozen=None)
                stored = self.store.net_lines(account_id)
                out[account_id] = [
                    f"{'/'.join(k)}: stored {_amount(stored.get(k))}, replay gives {_amount(replayed.lines.get(k))}"
                    for k in sorted(set(stored) | set(replayed.lines))
                    if abs(_amount(stored.get(k)) - _amount(replayed.lines.get(k))) > EPSILON]
        return out

    # --- sessions ---

    def _account(self, account_id: str) -> AccountRow:
        account = self.store.account(account_id)
        if account is None:
            raise UnknownAccount(f"unknown account {account_id!r}")
        return account

    def _session(self, account: AccountRow) -> Session:
        """The account's working memory, rebuilt by replaying its event log when this process has none or another
        process wrote to the account since."""
        session = self._sessions.get(account.account_id)
        if session is not None and session.version == account.version:
            self._sessions.move_to_end(account.account_id)
            return session
        stored = self.store.net_lines(account.account_id)
        session = self._replay(account.account_id, frozen=self._frozen(stored, None))
        session.lines = stored  # the stored ledger is the record; the replay restores timers and streak progress
        session.version = account.version
        self._keep(session)
        return session

    def _keep(self, session: Session) -> None:
        self._sessions[session.account_id] = session
        self._sessions.move_to_end(session.account_id)
        while len(self._sessions) > SESSIONS:
            self._sessions.popitem(last=False)

    def _rederive(self, account: AccountRow, late: Event) -> tuple[Session, list[Line]]:
        """Derive the account again with a late event in its place; return the new session and the corrections."""
        stored = self.store.net_lines(account.account_id)
        session = self._replay(account.account_id, frozen=self._frozen(stored, late.id), fresh=late.id)
        corrections = []
        for key in sorted(set(stored) | set(session.lines)):
            now, before = session.lines.get(key), stored.get(key)
            delta = _amount(now) - _amount(before)
            if abs(delta) > EPSILON:
                base = now or before
                corrections.append(Line(base.event_id, base.rule, base.measure, delta, base.at_us, self.revision,
                                        base.ref, base.detail))
        return session, corrections

    def _frozen(self, stored: dict[LineKey, Line], except_event: str | None) -> dict[str, list[Line]]:
        by_event: dict[str, list[Line]] = defaultdict(list)
        for line in stored.values():
            if line.rule in self.single_rules and line.event_id != except_event:
                by_event[line.event_id].append(line)
        return by_event

    def _replay(self, account_id: str, frozen: dict[str, list[Line]] | None, fresh: str | None = None) -> Session:
        """The account's events, in event-time order, through a fresh session; then the timers due by the last
        sweep. With `frozen`, single-event rules keep the lines booked for each event (but the `fresh` one)
        instead of running again."""
        session = self.engine.open(account_id)
        self._sessions.pop(account_id, None)  # opening cleared its durable-rules state; it is rebuilt when next used
        for stored in self.store.events_of(account_id):
            thawed = frozen is None or stored.event.id == fresh
            lines = None if thawed else frozen.get(stored.event.id, [])
            self.engine.apply(session, stored.event, stored.snapshot, lines)
        swept = self._swept_until()
        if swept > 0:
            self.engine.fire_due(session, swept)
        return session

    def _swept_until(self) -> int:
        value = self.store.meta(SWEPT_UNTIL)
        return int(value) if value else 0

    # --- account state from the batch rule book ---

    def _context(self, account: AccountRow) -> dict[str, Any]:
        """The account's fields and the batch rule book's outputs for it at the current revision. The book is
        evaluated over the whole registered portfolio (rankings are relative to it), again whenever an account
        row changes, here or in another process."""
        generation = self.store.meta(PORTFOLIO) or "0"
        if generation != self._generation or account.account_id not in self._contexts:
            accounts = self.store.accounts()
            as_of = eventtime.date_of(eventtime.parse(self.clock()))
            evaluation = self.book.evaluate([a.fields for a in accounts], as_of=as_of)
            names = set(self.rules.account_reads) | {n for n in STATE_FIELDS if n in self.book.outputs}
            columns = evaluation.state.columns
            errors = defaultdict(list)
            for e in evaluation.errors:
                errors[e.row].append(f"{e.field or e.rule}: {e.message}")
            self._contexts = {}
            for i, a in enumerate(accounts):
                context = {n: _plain(columns[n].value(i)) for n in sorted(names) if n in columns}
                context["row_errors"] = errors.get(i, [])
                self._contexts[a.account_id] = context
            self._generation = generation
        return self._contexts[account.account_id]

    def _snapshot(self, account: AccountRow) -> dict[str, Any]:
        context = self._context(account)
        return {n: context.get(n) for n in sorted(self.rules.account_reads)}


def _state(account_id: str, session: Session, context: dict[str, Any], revision: str,
           rules: EventRules) -> dict[str, Any]:
    points = round(session.total("points"), 6)
    moved = round(session.total("exposure"), 6)
    base = context.get("exposure")
    exposure = (base or 0.0) + moved
    limit = context.get("credit_limit")
    alerts = sorted(({"event_id": ln.event_id, "rule": ln.rule, "level": ln.detail.get("level"),
                      "at": eventtime.iso(ln.at_us)} for ln in session.lines.values()
                     if ln.measure == "alert" and ln.amount > 0.5), key=lambda a: (a["at"], a["event_id"], a["rule"]))
    status = context.get("credit_status")
    if any(a["level"] == "hold" for a in alerts):
        status = "hold"
    streaks = {r.id: len(session.live.get(r.on, ())) for r in rules.rules if r.is_streak}
    timers = sorted(({"rule": t.rule, "due": eventtime.iso(t.due_us), "event_id": t.anchor, "ref": t.ref}
                     for t in session.timers.values()), key=lambda t: (t["due"], t["rule"], t["event_id"], t["ref"]))
    return {
        "account_id": account_id,
        "revision": revision,
        "tier": context.get("tier"),
        "points_multiplier": context.get("points_multiplier"),
        "credit_limit": limit,
        "credit_status": status,
        "credit_status_rules": context.get("credit_status"),
        "points": points,
        "exposure": exposure,
        "exposure_rules": base,
        "exposure_events": moved,
        "utilisation": exposure / limit if limit else None,
        "alerts": alerts,
        "events": session.events,
        "last_event_at": {t: eventtime.iso(us) for t, us in sorted(session.last_at.items())},
        "streaks": streaks,
        "timers": timers,
        "row_errors": context.get("row_errors", []),
    }


def _line_dict(line: Line, account_id: str | None = None) -> dict[str, Any]:
    out = {"event_id": line.event_id, "rule": line.rule, "measure": line.measure, "amount": line.amount,
           "at": eventtime.iso(line.at_us), "revision": line.revision, "ref": line.ref, "detail": line.detail}
    if account_id is not None:
        out["account_id"] = account_id
    return out


def _amount(line: Line | None) -> float:
    return line.amount if line is not None else 0.0


def _plain(value: Any) -> Any:
    """A value as JSON can hold it: numpy scalars to Python, NaN/NaT to None, dates to ISO text."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.date):  # datetimes and pandas Timestamps too
        return value.isoformat()
    return value
