"""Event rules as read from `kind: event_rules` files: event types, rules and timers, their expressions
type-checked against the event's fields and the batch rule book's fields and outputs."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from .. import schemas as book_schemas
from ..errors import ExpressionError, Problem
from ..expressions import Expression
from ..expressions.types import TYPE_NAMES, Type
from ..yamlsource import Path, Positions
from . import schema

POINTS_EXPIRY = "points_expiry"  # the rule id ledger lines of expired points name


@dataclass(frozen=True)
class EventField:
    name: str
    type: Type
    required: bool = False
    min: float | None = None


@dataclass(frozen=True)
class EventType:
    name: str
    label: dict[str, str]
    fields: dict[str, EventField]


@dataclass(frozen=True)
class Effect:
    """One thing a rule does: book points, move exposure, or raise an alert."""

    measure: str  # points | exposure | alert
    expr: Expression | None = None
    level: str | None = None
    message: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRule:
    """On an event of type `on` (or the `count`-th of them within `within_days`), when `when` holds, do `effects`.
    Written `event:` in YAML."""

    id: str
    label: dict[str, str]
    on: str
    effects: tuple[Effect, ...]
    when: Expression | None = None
    count: int | None = None
    within_days: float | None = None
    file: str | None = None
    line: int | None = None

    @property
    def is_streak(self) -> bool:
        return self.count is not None


@dataclass(frozen=True)
class TimerRule:
    """When no event of type `since` came for `after_days`, do `effects` (restarted by every such event)."""

    id: str
    label: dict[str, str]
    since: str
    after_days: float
    effects: tuple[Effect, ...]
    file: str | None = None
    line: int | None = None


@dataclass
class EventRules:
    """Every event type, rule and timer of a rule book, checked and compiled."""

    types: dict[str, EventType]
    rules: list[EventRule]
    timers: list[TimerRule]
    expire_after_months: int | None
    account_types: dict[str, Type]  # the batch book's fields and outputs, which event rules may read
    account_reads: frozenset[str]  # those the expressions read

    def __len__(self) -> int:
        return len(self.rules) + len(self.timers)

    @classmethod
    def read(cls, documents: Iterable[tuple[Any, Positions]], account_types: dict[str, Type],
             problems: list[Problem]) -> EventRules:
        """Check event-rules documents (already YAML-loaded, with positions); append every problem found.
        The result holds the rules that passed."""
        reader = _Reader(account_types, problems)
        for data, positions in documents:
            reader.document(data, positions)
        reads = frozenset(n for r in reader.rules for e in _exprs(r) for n in e.names if n in account_types)
        reads |= frozenset(n for t in reader.timers for e in _exprs(t) for n in e.names)
        return cls(reader.types, reader.rules, reader.timers, reader.expire_after_months, dict(account_types), reads)


def _exprs(rule: EventRule | TimerRule) -> list[Expression]:
    out = [e.expr for e in rule.effects if e.expr is not None]
    return out + ([rule.when] if isinstance(rule, EventRule) and rule.when is not None else [])


class _Reader:
    def __init__(self, account_types: dict[str, Type], problems: list[Problem]):
        self.account_types = account_types
        self.problems = problems
        self.types: dict[str, EventType] = {}
        self.rules: list[EventRule] = []
        self.timers: list[TimerRule] = []
        self.expire_after_months: int | None = None
        self.ids: set[str] = set()

    def document(self, data: Any, positions: Positions) -> None:
        try:
            spec = schema.EventRulesFile().load(data)
        except ValidationError as e:
            for rel, message in book_schemas.flatten(e.messages):
                rel = _document_path(rel)
                hint = book_schemas.hint_for(rel, message, _schema_at(rel))
                self.problems.append(positions.problem(
                    rel, book_schemas.plain(rel, message), rule=_rule_id(data, rel),
                    hint=hint.replace("fields_", "fields") if hint else None,
                    at_key=message.startswith("Unknown field")))
            return
        for name, t in spec["events"].items():
            self._event_type(name, t, positions)
        if spec["points"].get("expire_after_months"):
            self.expire_after_months = spec["points"]["expire_after_months"]
        for i, r in enumerate(spec["rules"]):
            self._rule(r, ("rules", i), positions)
        for i, t in enumerate(spec["timers"]):
            self._timer(t, ("timers", i), positions)

    def _event_type(self, name: str, spec: dict, positions: Positions) -> None:
        if name in self.types:
            self.problems.append(positions.problem(("events", name), f"event type {name!r} is declared twice"))
            return
        fields_ = {}
        for fname, f in spec["fields_"].items():
            if fname in self.account_types:
                self.problems.append(positions.problem(
                    ("events", name, "fields", fname), f"event field {fname!r} has the name of an account field",
                    hint="rules read both; name the event field differently, e.g. order_" + fname, at_key=True))
            fields_[fname] = EventField(fname, TYPE_NAMES[f["type"]], f["required"], f.get("min"))
        self.types[name] = EventType(name, spec["label"], fields_)

    def _claim(self, rule_id: str, path: Path, positions: Positions) -> bool:
        if rule_id == POINTS_EXPIRY or rule_id in self.ids:
            message = (f"{POINTS_EXPIRY!r} is reserved: ledger lines of expired points name it"
                       if rule_id == POINTS_EXPIRY else f"rule id {rule_id!r} is used twice")
            self.problems.append(positions.problem(path + ("id",), message, rule=rule_id))
            return False
        self.ids.add(rule_id)
        return True

    def _event_of(self, name: str, path: Path, positions: Positions, rule_id: str) -> EventType | None:
        t = self.types.get(name)
        if t is None:
            close = difflib.get_close_matches(name, list(self.types), n=1)
            self.problems.append(positions.problem(
                path, f"unknown event type {name!r}", rule=rule_id,
                hint=f"did you mean {close[0]!r}?" if close else "event types: " + ", ".join(self.types)))
        return t

    def _rule(self, spec: dict, path: Path, positions: Positions) -> None:
        rid = spec["id"]
        if not self._claim(rid, path, positions):
            return
        event = self._event_of(spec["event"], path + ("event",), positions, rid)
        if event is None:
            return
        scope = dict(self.account_types) | {n: f.type for n, f in event.fields.items()}
        before = len(self.problems)
        when = None
        if "when" in spec:
            when = self._compile(spec["when"], scope, path + ("when",), positions, rid, Type.BOOLEAN)
        effects = self._effects(spec["then"], scope, path + ("then",), positions, rid)
        if len(self.problems) == before:
            self.rules.append(EventRule(rid, spec["label"], spec["event"], effects, when, spec.get("count"),
                                        spec.get("within_days"), positions.file, positions.at(path)[0]))

    def _timer(self, spec: dict, path: Path, positions: Positions) -> None:
        tid = spec["id"]
        if not self._claim(tid, path, positions):
            return
        if self._event_of(spec["since"], path + ("since",), positions, tid) is None:
            return
        before = len(self.problems)
        effects = self._effects(spec["then"], dict(self.account_types), path + ("then",), positions, tid)
        if len(self.problems) == before:
            self.timers.append(TimerRule(tid, spec["label"], spec["since"], spec["after_days"], effects,
                                         positions.file, positions.at(path)[0]))

    def _effects(self, spec: dict, scope: dict[str, Type], path: Path, positions: Positions,
                 rid: str) -> tuple[Effect, ...]:
        out = []
        for measure in ("points", "exposure"):
            if measure in spec:
                expr = self._compile(spec[measure], scope, path + (measure,), positions, rid, Type.NUMBER)
                if expr is not None:
                    out.append(Effect(measure, expr))
        if "alert" in spec:
            out.append(Effect("alert", level=spec["alert"]["level"], message=spec["alert"]["message"]))
        return tuple(out)

    def _compile(self, text: Any, scope: dict[str, Type], path: Path, positions: Positions, rid: str,
                 want: Type) -> Expression | None:
        source = str(text).lower() if isinstance(text, bool) else str(text)
        try:
            expr = Expression.compile(source, scope.get, list(scope))
        except ExpressionError as e:
            self.problems.append(positions.problem(path, e.message, rule=rid, hint=e.hint, offset=e.offset))
            return None
        if expr.type not in (want, Type.NULL):
            self.problems.append(positions.problem(path, f"must give {want.label}, this gives {expr.type.label}",
                                                   rule=rid))
            return None
        return expr


def _document_path(rel: Path) -> Path:
    """A marshmallow error path as a path into the document: mappings of names (events, fields) report their
    entries as `<name>, "value"`, which the document does not have."""
    return tuple(p for i, p in enumerate(rel)
                 if not (p in ("value", "key") and i >= 2 and rel[i - 2] in ("events", "fields")))


def _rule_id(data: Any, rel: Path) -> str | None:
    if isinstance(data, dict) and len(rel) >= 2 and rel[0] in ("rules", "timers") and isinstance(rel[1], int):
        items = data.get(rel[0])
        if isinstance(items, list) and rel[1] < len(items) and isinstance(items[rel[1]], dict):
            rid = items[rel[1]].get("id")
            return rid if isinstance(rid, str) else None
    return None


def _schema_at(rel: Path) -> type | None:
    """The schema a problem's path points into, for 'did you mean' hints on unknown keys."""
    if not rel:
        return None
    head = {"rules": schema.EventRule, "timers": schema.Timer, "events": schema.EventType,
            "points": schema.PointsPolicy}.get(rel[0])
    if head is None:
        return schema.EventRulesFile
    depth = {"rules": 2, "timers": 2, "events": 2, "points": 1}[rel[0]]
    rest = rel[depth:]
    if rest[:1] == ("then",):
        return schema.Alert if rest[1:2] == ("alert",) and len(rest) > 3 else schema.Effects
    if rel[0] == "events" and rest[:1] == ("fields",) and len(rest) > 2:
        return schema.EventField
    return head
