"""What every rule kind shares: where it came from, what it reads and writes, and the evaluation state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ExpressionError, Problem, RowError
from ..expressions import Expression, UnaryTest, ast
from ..expressions import scalar as S
from ..expressions.parser import parse_expression, parse_unary_tests
from ..expressions.types import TYPE_NAMES, Type
from ..expressions.vectors import Vec
from ..yamlsource import Path, Positions


@dataclass(frozen=True)
class Output:
    """A field a rule writes."""

    name: str
    type: Type
    label: dict[str, str] = field(default_factory=dict)


class Scope:
    """Names visible to a rule's expressions: dictionary fields and outputs of rules compiled before it."""

    def __init__(self, types: dict[str, Type]):
        self.types = types

    def resolve(self, name: str) -> Type | None:
        return self.types.get(name)

    @property
    def known(self) -> list[str]:
        return list(self.types)


class Context:
    """Reports problems for one rule, pointing into its YAML file."""

    def __init__(self, positions: Positions, path: Path, rule_id: str, problems: list[Problem]):
        self.positions = positions
        self.path = path
        self.rule_id = rule_id
        self.problems = problems

    @property
    def file(self) -> str:
        return self.positions.file

    @property
    def line(self) -> int | None:
        return self.positions.at(self.path)[0]

    def problem(self, rel: Path, message: str, *, row: str | None = None, hint: str | None = None,
                severity: str = "error", offset: int | None = None) -> None:
        self.problems.append(self.positions.problem(self.path + rel, message, rule=self.rule_id, row=row,
                                                    hint=hint, severity=severity, offset=offset))

    def expression_problem(self, rel: Path, err: ExpressionError, row: str | None = None) -> None:
        self.problem(rel, err.message, row=row, hint=err.hint, offset=err.offset)

    @property
    def failed(self) -> bool:
        return any(p.is_error and p.rule == self.rule_id for p in self.problems)

    def names_in_expression(self, text: Any, rel: Path, row: str | None = None) -> set[str]:
        """Field names an expression reads (syntax only); a syntax error is reported, not raised."""
        try:
            return ast.names(parse_expression(str(text)))
        except ExpressionError as e:
            self.expression_problem(rel, e, row)
            return set()

    def names_in_tests(self, text: str, rel: Path, row: str | None = None) -> set[str]:
        try:
            return ast.names(parse_unary_tests(text))
        except ExpressionError as e:
            self.expression_problem(rel, e, row)
            return set()

    def expression(self, text: Any, rel: Path, scope: Scope, row: str | None = None) -> Expression | None:
        try:
            return Expression.compile(str(text), scope.resolve, scope.known)
        except ExpressionError as e:
            self.expression_problem(rel, e, row)
            return None

    def unary_test(self, text: str, input_type: Type, rel: Path, scope: Scope,
                   row: str | None = None) -> UnaryTest | None:
        try:
            return UnaryTest.compile(text, input_type, scope.resolve, scope.known)
        except ExpressionError as e:
            self.expression_problem(rel, e, row)
            return None


def cell_text(value: Any) -> str:
    """A YAML cell value as unary-test text: numbers and booleans as written, a list as a list of values,
    YAML's null as the `null` test. (A cell left out of `when` is `-`, any value.)"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return f'@"{value.isoformat()}"'
    if isinstance(value, list):
        return ", ".join(_quoted(v) for v in value)
    return str(value)


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return cell_text(value)


def literal_type(value: Any) -> Type:
    return ast.literal(value).literal_type


def declared_type(name: str | None) -> Type | None:
    return TYPE_NAMES[name] if name else None


@dataclass
class State:
    """One evaluation in progress: the columns so far, row errors, and each rule's trace data."""

    n: int
    as_of: np.datetime64
    columns: dict[str, Vec]
    excluded: np.ndarray  # rows whose input could not be read: evaluated, but not ranked and not reported
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    traces: dict[str, Any] = field(default_factory=dict)  # rule id -> trace data, or a function making it
    # Results of portfolio-relative rules (rule id -> ranks) computed over the whole portfolio, when this
    # state is one partition of it.
    ranks: dict[str, Any] = field(default_factory=dict)
    # The columns as per-account value lists, for rules evaluated account by account (made when first needed).
    scalars: S.Columns | None = field(default=None, repr=False)

    def trace(self, rule_id: str) -> Any:
        """A rule's trace data. Rules evaluated per account leave a function that builds it, called here the first
        time someone asks (most requests never do)."""
        t = self.traces[rule_id]
        if callable(t):
            t = self.traces[rule_id] = t()
        return t

    def per_account(self) -> S.Columns:
        if self.scalars is None:
            self.scalars = S.Columns(self.columns, self.n, self.as_of)
        return self.scalars

    def row_errors(self, rows: np.ndarray, rule: str, field_: str | None, message: Callable[[int], str],
                   severity: str = "error") -> None:
        target = self.errors if severity == "error" else self.warnings
        for i in np.flatnonzero(rows):
            if not self.excluded[i]:
                target.append(RowError(int(i), rule, field_, message(int(i)), severity))


_UNPLANNED = object()


class Rule:
    """A compiled rule. Subclasses fill `outputs`, `reads`, and implement compile / evaluate / explain."""

    kind: str = ""

    def __init__(self, spec: dict[str, Any], ctx: Context):
        self.spec = spec
        self.ctx = ctx
        self.id: str = spec["id"]
        self.label: dict[str, str] = spec["label"]
        self.description: str = spec.get("description", "")
        self.area: str | None = spec.get("area")
        self.file = ctx.file
        self.line = ctx.line
        self.outputs: dict[str, Output] = {}
        self.reads: set[str] = set()

    def evaluated_per_account(self, state: State) -> bool:
        """For a few accounts, evaluate this rule account by account in plain Python (kamcore.expressions.scalar)
        and say so; False where the rule (or one of its expressions) has no exact per-account form, and then it
        runs vectorized. Both write the same columns, errors, warnings and traces."""
        if state.scalars is None and not S.applies(state.n):  # (the per-account columns exist once it applies)
            return False
        plan = self.__dict__.get("_per_account", _UNPLANNED)
        if plan is _UNPLANNED:
            try:
                plan = self.plan_per_account()
            except S.Unsupported:
                plan = None
            self._per_account = plan
        if plan is None:
            return False
        try:
            plan(state)  # writes nothing to the state before it can no longer fail
        except S.Unsupported:
            return False
        return True

    def plan_per_account(self) -> Callable[[State], None] | None:
        """The per-account evaluation of this rule, or None (or Unsupported raised) where it has none."""
        return None

    def compile(self, scope: Scope) -> None:
        """Type-check and compile against the names visible to this rule; report problems on self.ctx."""
        raise NotImplementedError

    def evaluate(self, state: State) -> None:
        """Compute this rule's outputs over all accounts into state.columns, its trace into state.traces."""
        raise NotImplementedError

    def explain(self, state: State, i: int) -> dict[str, Any]:
        """What this rule did for account i, for people: inputs it read, rows or bands that matched, outputs."""
        raise NotImplementedError

    def inputs_of(self, state: State, i: int) -> dict[str, Any]:
        return {name: state.columns[name].value(i) for name in sorted(self.reads) if name in state.columns}

    def outputs_of(self, state: State, i: int) -> dict[str, Any]:
        return {name: state.columns[name].value(i) for name in self.outputs}

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "label": self.label, "description": self.description,
                "area": self.area, "file": self.file, "line": self.line,
                "outputs": {o.name: str(o.type) for o in self.outputs.values()}, "reads": sorted(self.reads)}
