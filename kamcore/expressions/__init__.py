"""The KAM expression language: grammar → syntax tree → type check → vectorized evaluator.

>>> from kamcore.expressions import Expression
>>> from kamcore.expressions.types import Type
>>> e = Expression.compile("gross_profit / revenue", {"gross_profit": Type.NUMBER, "revenue": Type.NUMBER}.get)
>>> e.type, sorted(e.names)
(<Type.NUMBER: 'number'>, ['gross_profit', 'revenue'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import ast
from .checker import Resolver, check
from .compiler import Compiled, Env, compile_node, compile_tests
from .parser import parse_expression, parse_unary_tests
from .types import Type
from .vectors import Vec

__all__ = ["Env", "Expression", "Type", "UnaryTest", "Vec", "parse_expression", "parse_unary_tests"]


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
