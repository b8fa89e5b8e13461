"""Syntax tree of expressions and unary tests. Every node knows its offset in the source text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .types import Type


@dataclass(eq=False)
class Node:
    pos: int
    # Filled by the type checker.
    type: Type | None = field(default=None, init=False, repr=False)

    def children(self) -> Iterator[Node]:
        return iter(())

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children():
            yield from child.walk()


@dataclass(eq=False)
class Literal(Node):
    value: Any  # float | str | bool | date | time | datetime | timedelta | temporal.YearsMonths | None
    literal_type: Type = Type.NULL


@dataclass(eq=False)
class Name(Node):
    name: str


@dataclass(eq=False)
class Input(Node):
    """`?` in a unary test: the value of the decision-table input column."""


@dataclass(eq=False)
class Negate(Node):
    operand: Node

    def children(self) -> Iterator[Node]:
        yield self.operand


@dataclass(eq=False)
class Not(Node):
    operand: Node

    def children(self) -> Iterator[Node]:
        yield self.operand


@dataclass(eq=False)
class Arithmetic(Node):
    op: str  # + - * / **
    left: Node
    right: Node

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right


@dataclass(eq=False)
class Compare(Node):
    op: str  # = != < <= > >=
    left: Node
    right: Node

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right


@dataclass(eq=False)
class Logical(Node):
    op: str  # and / or
    left: Node
    right: Node

    def children(self) -> Iterator[Node]:
        yield self.left
        yield self.right


@dataclass(eq=False)
class If(Node):
    cond: Node
    then: Node
    otherwise: Node

    def children(self) -> Iterator[Node]:
        yield self.cond
        yield self.then
        yield self.otherwise


@dataclass(eq=False)
class ListLiteral(Node):
    """`[1, 2, 3]`: only meaningful as a test, where it matches any of its items."""

    items: list[Node]

    def children(self) -> Iterator[Node]:
        yield from self.items


@dataclass(eq=False)
class Call(Node):
    func: str
    args: list[Node]

    def children(self) -> Iterator[Node]:
        yield from self.args


# --- unary tests -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CompareTest(Node):
    """`< 5`, `>= 1000000`: compares the input with an endpoint."""

    op: str
    endpoint: Node

    def children(self) -> Iterator[Node]:
        yield self.endpoint


@dataclass(eq=False)
class IntervalTest(Node):
    """`[100..500)`: the input lies between two endpoints, each end open or closed."""

    low: Node
    high: Node
    low_closed: bool
    high_closed: bool

    def children(self) -> Iterator[Node]:
        yield self.low
        yield self.high


@dataclass(eq=False)
class ValueTest(Node):
    """A bare expression in a cell: equality with the input, or a condition when it uses `?` or is boolean
    while the input is not."""

    expr: Node
    uses_input: bool = False
    # Set by the type checker: True when the cell is a condition rather than an equality.
    is_condition: bool = field(default=False, init=False)

    def children(self) -> Iterator[Node]:
        yield self.expr


@dataclass(eq=False)
class UnaryTests(Node):
    """A whole input cell: `-` (any), a list of positive tests (any may match), optionally `not(...)`."""

    tests: list[Node]
    negated: bool = False
    is_any: bool = False

    def children(self) -> Iterator[Node]:
        yield from self.tests


@dataclass(eq=False)
class InTests(Node):
    """`x in ("a", "b")`, `x in [1..5]`: the unary tests applied to an expression."""

    operand: Node
    tests: UnaryTests

    def children(self) -> Iterator[Node]:
        yield self.operand
        yield self.tests


def literal(value: Any, pos: int = 0) -> Literal:
    """A literal node for a Python value read from YAML (numbers, text, booleans, dates, None)."""
    if value is None:
        return Literal(pos, None, Type.NULL)
    if isinstance(value, bool):
        return Literal(pos, value, Type.BOOLEAN)
    if isinstance(value, int | float):
        return Literal(pos, float(value), Type.NUMBER)
    if isinstance(value, dt.datetime):  # YAML reads 2024-01-31 00:00 as a datetime; Excel dates arrive so too
        return Literal(pos, value.date(), Type.DATE)
    if isinstance(value, dt.date):
        return Literal(pos, value, Type.DATE)
    return Literal(pos, str(value), Type.STRING)


def names(node: Node) -> set[str]:
    """Every field name an expression reads."""
    return {n.name for n in node.walk() if isinstance(n, Name)}


def uses_input(node: Node) -> bool:
    return any(isinstance(n, Input) for n in node.walk())
