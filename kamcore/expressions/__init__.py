"""The KAM expression language: grammar → syntax tree → type check → vectorized evaluator.

>>> from kamcore.expressions import Expression
>>> from kamcore.expressions.types import Type
>>> e = Expression.compile("gross_profit / revenue", {"gross_profit": Type.NUMBER, "revenue": Type.NUMBER}.get)
>>> e.type, sorted(e.names)
(<Type.NUMBER: 'number'>, ['gross_profit', 'revenue'])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from . import ast, temporal
from . import vectors as V
from .checker import Resolver, check
from .compiler import Compiled, Env, compile_node, compile_tests
from .parser import parse_expression, parse_unary_tests
from .types import Type
from .vectors import Vec

__all__ = ["Env", "Expression", "Type", "UnaryTest", "Vec", "parse_expression", "parse_unary_tests", "type_of",
           "unary_test"]


@dataclass(frozen=True)
class Expression:
    """A formula or output cell, parsed, type-checked and compiled."""

    text: str
    tree: ast.Node
    compiled: Compiled
    type: Type
    names: frozenset[str]

    @classmethod
    def compile(cls, text: str, resolve: Resolver, known: list[str] | None = None) -> Expression:
        tree = parse_expression(text)
        type_ = check(tree, text, resolve, known)
        return cls(text, tree, compile_node(tree), type_, frozenset(ast.names(tree)))

    def evaluate(self, columns: Mapping[str, Vec], n: int, as_of: np.datetime64) -> Vec:
        return self.compiled.eval(Env(columns, n, as_of))


@dataclass(frozen=True)
class UnaryTest:
    """A decision-table input cell (or scorecard band), compiled against the type of its input column."""

    text: str
    tree: ast.UnaryTests
    compiled: Compiled
    names: frozenset[str]

    @classmethod
    def compile(cls, text: str, input_type: Type, resolve: Resolver, known: list[str] | None = None) -> UnaryTest:
        tree = parse_unary_tests(text)
        check(tree, text, resolve, known, input_type)
        return cls(text, tree, compile_tests(tree), frozenset(ast.names(tree)))

    @property
    def is_any(self) -> bool:
        return self.tree.is_any

    def matches(self, value: Vec, columns: Mapping[str, Vec], n: int, as_of: np.datetime64) -> np.ndarray:
        """Where the input value definitely passes the test (bool per account)."""
        return self.compiled.truth(Env(columns, n, as_of, value))


def type_of(value: Any) -> Type:
    """The expression-language type of a plain Python value (None is `null`)."""
    if value is None:
        return Type.NULL
    if isinstance(value, bool):
        return Type.BOOLEAN
    if isinstance(value, int | float | Decimal):
        return Type.NUMBER
    if isinstance(value, str):
        return Type.STRING
    if isinstance(value, dt.datetime):
        return Type.DATE_TIME
    if isinstance(value, dt.date):
        return Type.DATE
    if isinstance(value, dt.time):
        return Type.TIME
    if isinstance(value, dt.timedelta):
        return Type.DAYS_DURATION
    if isinstance(value, temporal.YearsMonths):
        return Type.YEARS_DURATION
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a value of the expression language")


def unary_test(text: str, value: Any, context: Mapping[str, Any] | None = None,
               as_of: dt.date | None = None) -> bool | None:
    """Apply one input cell to one value, FEEL-style: True, False, or None where the answer is null (e.g.
    `< 5` for a null value). `context` gives the other names the cell reads, e.g. `? > limit`.

    >>> unary_test("[1..10)", 5), unary_test("? > limit", 7, context={"limit": 5}), unary_test("< 5", None)
    (True, True, None)
    """
    names = dict(context or {})
    types = {name: type_of(v) for name, v in names.items()}
    test = UnaryTest.compile(text, type_of(value), types.get, list(types))
    columns = {name: V.from_values([v], types[name]) for name, v in names.items()}
    day = np.datetime64(as_of or dt.date.today(), "D")
    result = test.compiled.eval(Env(columns, 1, day, V.from_values([value], type_of(value))))
    return result.full(1).value(0)
