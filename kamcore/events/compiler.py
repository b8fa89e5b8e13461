"""Event rules compiled to a durable-rules ruleset, and the working memory that runs one account's events through it.

Every event is asserted as a durable-rules fact with the account id as its session (`sid`): each rule on that
event type fires once for it; a streak rule (`count` events `within_days`) is a join over facts that consumes
the facts it used. Timers (no event of a type for N days, points expiry) are armed by rule actions and fired
by the caller's clock as `$timer` facts, so time is testable. Conditions and amounts are the project's own
expressions, evaluated in the actions, never Python from the YAML.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine
import numpy as np
from durable import engine
from durable.lang import c, m, pri, when_all

from ..expressions import Expression
from ..expressions import vectors as V
from ..expressions.types import Type
from . import eventtime
from .intake import Event
from .rules import POINTS_EXPIRY, Effect, EventRule, EventRules, TimerRule

TIMER = "$timer"  # fact type of a due timer; event types are identifiers, so it cannot clash
EPSILON = 1e-9  # amounts closer than this are equal (sums of decimal amounts in floating point)
# Accounts whose facts durable-rules holds at once. Its C engine has room for 1,024 sessions per ruleset, ~80 KB
# each, and keeps that memory after its ruleset is deleted; the other accounts keep their facts in their Session
# and are put back when next used.
RESIDENT = 256

LineKey = tuple[str, str, str, str]  # event id, rule id, measure, ref (the accrual rule an expiry is for)


@dataclass
class Line:
    """One derived ledger line: what a rule booked for an event."""

    event_id: str
    rule: str
    measure: str  # points | exposure | alert
    amount: float
    at_us: int
    revision: str
    ref: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> LineKey:
        return self.event_id, self.rule, self.measure, self.ref


@dataclass
class _Armed:
    due_us: int
    rule: str
    anchor: str  # the event the timer counts from
    ref: str
    snapshot: dict[str, Any]


@dataclass
class Session:
    """One account's working memory: its net lines, armed timers and the facts a streak may still use.
    `version` is the stored account version it reflects (another process may have moved on)."""

    account_id: str
    version: int = 0
    last_key: tuple[int, str] | None = None
    fired_until: int | None = None  # due time of the latest timer fired
    seq: int = 0
    events: int = 0
    lines: dict[LineKey, Line] = field(default_factory=dict)
    timers: dict[tuple[str, str, str], _Armed] = field(default_factory=dict)
    queue: list[tuple[int, tuple[str, str, str]]] = field(default_factory=list)  # heap; re-armed entries go stale
    live: dict[str, deque[dict[str, Any]]] = field(default_factory=dict)
    last_at: dict[str, int] = field(default_factory=dict)

    def is_late(self, event: Event) -> bool:
        """Would this event have come before something already applied (an event or a fired timer)?"""
        if self.last_key is not None and event.order_key < self.last_key:
            return True
        return self.fired_until is not None and event.at_us <= self.fired_until

    def arm(self, key: tuple[str, str, str], armed: _Armed) -> None:
        self.timers[key] = armed
        heapq.heappush(self.queue, (armed.due_us, key))

    def next_due(self) -> int | None:
        while self.queue and not self._current(*self.queue[0]):
            heapq.heappop(self.queue)
        return self.queue[0][0] if self.queue else None

    def _current(self, due_us: int, key: tuple[str, str, str]) -> bool:
        armed = self.timers.get(key)
        return armed is not None and armed.due_us == due_us

    def total(self, measure: str) -> float:
        return sum(line.amount for line in self.lines.values() if line.measure == measure)


@dataclass
class _Step:
    """What the actions of one assert work on."""

    session: Session
    event_id: str
    at_us: int
    values: dict[str, Any]
    snapshot: dict[str, Any]
    out: list[Line]
    frozen: bool = False
    restoring: bool = False  # putting an evicted account's facts back: they already did what they do
    consumed: set[str] = field(default_factory=set)


class _CallerDrivenHost(engine.Host):
    """A durable-rules host that only runs when called: no background dispatch threads, so every action runs in
    the caller's thread, inside the caller's SQLite transaction."""

    def _run(self) -> None:
        return None


_names = itertools.count()


class Engine:
    """The compiled ruleset of one revision, applying events and timers to account sessions."""

    def __init__(self, rules: EventRules, revision: str, resident: int = RESIDENT):
        self.rules = rules
        self.revision = revision
        self.capacity = resident
        self._resident: OrderedDict[str, Session] = OrderedDict()
        self.closed = False
        self.windows: dict[str, float] = {}
        for r in rules.rules:
            if r.is_streak:
                self.windows[r.on] = max(self.windows.get(r.on, 0.0), r.within_days)
        self._scopes: dict[int, dict[str, Type]] = {}
        for r in (*rules.rules, *rules.timers):
            fields_ = rules.types[r.on].fields if isinstance(r, EventRule) else {}
            scope = rules.account_types | {n: f.type for n, f in fields_.items()}
            exprs = [e.expr for e in r.effects if e.expr is not None]
            for expr in exprs + ([r.when] if isinstance(r, EventRule) and r.when is not None else []):
                self._scopes[id(expr)] = {n: scope[n] for n in expr.names}
        self.name = f"kam_events_{next(_names)}"
        self.definition = self._define()
        self.host = _CallerDrivenHost({self.name: self.definition})
        self._step: _Step | None = None
        self._error: BaseException | None = None

    # --- compiling ---

    def _define(self) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        n = len(self.rules.rules) + len(self.rules.timers)
        for i, r in enumerate(self.rules.rules):
            if r.is_streak:
                # Streaks fire after every other rule on the same fact: they retract the facts they consume.
                rules[r.id] = when_all(pri(n + i), *self._streak_pattern(r))(self._action(self._streak, r)).define()
            else:
                rules[r.id] = when_all(pri(i), m.type == r.on)(self._action(self._single, r)).define()
        for i, t in enumerate(self.rules.timers):
            rules[f"{t.id}.arm"] = when_all(pri(len(self.rules.rules) + i), m.type == t.since)(
                self._action(self._arm, t)).define()
            rules[f"{t.id}.due"] = when_all((m.type == TIMER) & (m.timer == t.id))(self._action(self._due, t)).define()
        if self.rules.expire_after_months:
            rules[f"{POINTS_EXPIRY}.due"] = when_all((m.type == TIMER) & (m.timer == POINTS_EXPIRY))(
                self._action(self._expire, None)).define()
        return rules

    @staticmethod
    def _streak_pattern(r: EventRule) -> list[Any]:
        """`count` facts of type `on`, each later than the one before, the last within `within_days` of the first."""
        aliases = [f"e{i}" for i in range(r.count)]
        parts = [getattr(c, aliases[0]) << (m.type == r.on)]
        for i in range(1, r.count):
            cond = (m.type == r.on) & (m.seq > getattr(c, aliases[i - 1]).seq)
            if i == r.count - 1:
                cond = cond & (m.t <= getattr(c, aliases[0]).t + r.within_days)
            parts.append(getattr(c, aliases[i]) << cond)
        return parts

    def _action(self, body: Callable[[Any, Any], None], rule: Any) -> Callable[[Any], None]:
        def action(closure: Any) -> None:
            # durable-rules swallows exceptions raised in actions; keep the first to raise it after the assert.
            if self._step.restoring:
                return
            try:
                body(closure, rule)
            except Exception as e:  # re-raised by _assert
                self._error = self._error or e
        return action

    # --- actions ---

    def _single(self, closure: Any, r: EventRule) -> None:
        step = self._step
        if step.frozen:
            return
        self._effects(step, r.id, r.effects, r.when, step.values)

    def _streak(self, closure: Any, r: EventRule) -> None:
        step = self._step
        facts = [getattr(closure, f"e{i}")._d for i in range(r.count)]
        if r.when is not None and self._evaluate(r.when, step.values | step.snapshot, step.at_us) is not True:
            return
        for fact in facts:
            closure.retract_fact(fact)
            step.consumed.add(fact["id"])
        live = step.session.live.get(r.on)
        if live is not None:
            step.session.live[r.on] = deque(f for f in live if f["id"] not in step.consumed)
        self._effects(step, r.id, r.effects, None, step.values, detail={"events": [f["id"] for f in facts]})

    def _arm(self, closure: Any, t: TimerRule) -> None:
        step = self._step
        due = step.at_us + round(t.after_days * eventtime.US_PER_DAY)
        step.session.arm((t.id, "", ""), _Armed(due, t.id, step.event_id, "", step.snapshot))

    def _due(self, closure: Any, t: TimerRule) -> None:
        step = self._step
        self._effects(step, t.id, t.effects, None, {})

    def _expire(self, closure: Any, _: None) -> None:
        step = self._step
        accrual = step.session.lines.get((step.event_id, step.values["ref"], "points", ""))
        if accrual is not None and abs(accrual.amount) > EPSILON:
            self._emit(step, Line(step.event_id, POINTS_EXPIRY, "points", -accrual.amount, step.at_us, self.revision,
                                  step.values["ref"], {"expires": accrual.rule}))

    def _effects(self, step: _Step, rule_id: str, effects: tuple[Effect, ...], when: Expression | None,
                 values: dict[str, Any], detail: dict[str, Any] | None = None) -> None:
        scope = values | step.snapshot
        if when is not None and self._evaluate(when, scope, step.at_us) is not True:
            return
        for e in effects:
            if e.measure == "alert":
                line = Line(step.event_id, rule_id, "alert", 1.0, step.at_us, self.revision,
                            detail={"level": e.level, "message": e.message, **(detail or {})})
            else:
                amount = self._evaluate(e.expr, scope, step.at_us)
                if amount is None or abs(amount) <= EPSILON:
                    continue
                line = Line(step.event_id, rule_id, e.measure, float(amount), step.at_us, self.revision,
                            detail=dict(detail or {}))
            self._emit(step, line)

    def _emit(self, step: _Step, line: Line) -> None:
        step.session.lines[line.key] = line
        step.out.append(line)
        if line.measure == "points" and line.rule != POINTS_EXPIRY and line.amount > 0 and \
                self.rules.expire_after_months:
            due = eventtime.add_months(line.at_us, self.rules.expire_after_months)
            step.session.arm((POINTS_EXPIRY, line.event_id, line.rule),
                             _Armed(due, POINTS_EXPIRY, line.event_id, line.rule, {}))

    def _evaluate(self, expr: Expression, values: dict[str, Any], at_us: int) -> Any:
        types = self._scopes[id(expr)]
        columns = {name: _scalar(types[name], values.get(name)) for name in expr.names}
        day = np.datetime64(eventtime.date_of(at_us), "D")
        return expr.evaluate(columns, 1, day).value(0)

    # --- running ---

    def open(self, account_id: str) -> Session:
        """A fresh session (durable-rules state of the account cleared)."""
        self._forget(account_id)
        return Session(account_id)

    def close(self) -> None:
        """Free the ruleset in the durable-rules engine (it lives in C until deleted). Closing twice is fine."""
        if self.closed:
            return
        durable_rules_engine.delete_ruleset(self.host.get_ruleset(self.name)._handle)
        self._resident.clear()
        self.closed = True

    def _forget(self, account_id: str) -> None:
        self._resident.pop(account_id, None)
        try:
            self.host.delete_state(self.name, account_id)
        except Exception:  # noqa: S110 - the engine raises when the account has no state yet
            pass

    def _enter(self, session: Session) -> None:
        """Make the session's facts present in durable-rules, evicting the account used longest ago."""
        current = self._resident.get(session.account_id)
        if current is session:
            self._resident.move_to_end(session.account_id)
            return
        if current is not None:  # a rebuilt session replaces this one: its facts are stale
            self._forget(session.account_id)
        while len(self._resident) >= self.capacity:
            self._forget(next(iter(self._resident)))
        self._resident[session.account_id] = session
        restoring = _Step(session, "", 0, {}, {}, [], restoring=True)
        for fact in sorted((f for live in session.live.values() for f in live), key=lambda f: f["seq"]):
            self._assert(restoring, fact)

    def apply(self, session: Session, event: Event, snapshot: dict[str, Any],
              frozen: list[Line] | None = None) -> list[Line]:
        """Apply one event (after any timer due before it). `frozen`: lines already booked for this event by
        single-event rules, used as they are instead of evaluating those rules again."""
        out = self.fire_due(session, event.at_us, inclusive=False)
        step = _Step(session, event.id, event.at_us, dict(event.fields), snapshot, out, frozen is not None)
        session.seq += 1
        # Event fields go under `data`, so a field can never shadow the keys the patterns match on.
        fact = {"sid": session.account_id, "id": event.id, "type": event.type, "t": eventtime.days(event.at_us),
                "seq": session.seq, "data": event.fields}
        self._assert(step, fact)
        for line in frozen or ():
            self._emit(step, line)
        window = self.windows.get(event.type)
        if window is None or event.id in step.consumed:
            self._retract(fact)
        else:
            live = session.live.setdefault(event.type, deque())
            live.append(fact)
            while live and live[0]["t"] < fact["t"] - window:
                self._retract(live.popleft())
        session.last_key = event.order_key
        session.last_at[event.type] = max(session.last_at.get(event.type, event.at_us), event.at_us)
        session.events += 1
        return out

    def fire_due(self, session: Session, until_us: int, inclusive: bool = True) -> list[Line]:
        """Fire the session's timers due before `until_us` (or at it, when inclusive), earliest first."""
        out: list[Line] = []
        while True:
            due = session.next_due()
            if due is None or due > until_us or (due == until_us and not inclusive):
                return out
            _, key = heapq.heappop(session.queue)
            armed = session.timers.pop(key)
            step = _Step(session, armed.anchor, armed.due_us, {"ref": armed.ref}, armed.snapshot, out)
            fact = {"sid": session.account_id, "id": f"{TIMER}:{armed.rule}:{armed.anchor}:{armed.ref}",
                    "type": TIMER, "timer": armed.rule, "t": eventtime.days(armed.due_us)}
            self._assert(step, fact)
            self._retract(fact)
            session.fired_until = max(session.fired_until or armed.due_us, armed.due_us)

    def _assert(self, step: _Step, fact: dict[str, Any]) -> None:
        if not step.restoring:
            self._enter(step.session)
        self._step, self._error = step, None
        try:
            self.host.assert_fact(self.name, fact)
        except engine.MessageNotHandledException:
            pass  # no rule listens to this event type: it is logged, and books nothing
        finally:
            self._step = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _retract(self, fact: dict[str, Any]) -> None:
        try:
            self.host.retract_fact(self.name, fact)
        except engine.MessageNotHandledException:
            pass


def _scalar(type_: Type, value: Any) -> V.Vec:
    """One value as a 0-d column of the expression language."""
    if type_ == Type.NUMBER:
        return V.number(np.nan if value is None else float(value))
    if type_ == Type.STRING:
        return V.string_scalar(None if value is None else str(value))
    if type_ == Type.BOOLEAN:
        return V.boolean(np.asarray(bool(value)), np.asarray(value is None))
    if type_ == Type.DATE:
        if value is None:
            return V.null(Type.DATE)
        return V.date(np.datetime64(value if isinstance(value, dt.date) else str(value)[:10], "D"))
    return V.null(type_)
