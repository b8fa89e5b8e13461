"""Type checker: infers the type of every node against the known fields and rejects `"a" + 1` before any
account is evaluated."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from ..errors import ExpressionTypeError, UnknownName
from . import ast
from .functions import FUNCTIONS
from .types import DURATIONS, Type, unify

# name -> type, or None when the name is unknown
Resolver = Callable[[str], "Type | None"]

_ORDERED = {Type.NUMBER, Type.STRING, Type.DATE, Type.TIME, Type.DATE_TIME, Type.DAYS_DURATION, Type.YEARS_DURATION}


class Checker:
    def __init__(self, text: str, resolve: Resolver, known: list[str] | None = None,
                 input_type: Type | None = None):
        self.text = text
        self.resolve = resolve
        self.known = known or []
        self.input_type = input_type

    def fail(self, node: ast.Node, message: str, hint: str | None = None) -> ExpressionTypeError:
        return ExpressionTypeError(message, self.text, node.pos, hint)

    def check(self, node: ast.Node) -> Type:
        node.type = self._infer(node)
        return node.type

    def _infer(self, node: ast.Node) -> Type:
        method = getattr(self, "_" + type(node).__name__)
        return method(node)

    def _Literal(self, node: ast.Literal) -> Type:
        return node.literal_type

    def _Name(self, node: ast.Name) -> Type:
        t = self.resolve(node.name)
        if t is None:
            close = difflib.get_close_matches(node.name, self.known, n=1)
            hint = f'if you meant the text, write "{node.name}" in double quotes'
            if close:
                hint = f"did you mean {close[0]}? {hint[0].upper()}{hint[1:]}"
            raise UnknownName(f"unknown field {node.name!r}", self.text, node.pos, hint)
        if t == Type.LIST:
            raise self.fail(node, f"{node.name!r} is a list (from a COLLECT table) and cannot be used here")
        return t

    def _Input(self, node: ast.Input) -> Type:
        if self.input_type is None:
            raise self.fail(node, "'?' stands for the input value and only works in a decision-table input cell")
        return self.input_type

    def _Negate(self, node: ast.Negate) -> Type:
        t = self.check(node.operand)
        if t not in (Type.NUMBER, Type.NULL, *DURATIONS):
            raise self.fail(node, f"cannot negate {t.label}")
        return Type.NUMBER if t == Type.NULL else t

    def _Not(self, node: ast.Not) -> Type:
        t = self.check(node.operand)
        if t not in (Type.BOOLEAN, Type.NULL):
            raise self.fail(node, f"'not' needs true/false, got {t.label}")
        return Type.BOOLEAN

    def _Arithmetic(self, node: ast.Arithmetic) -> Type:
        a, b = self.check(node.left), self.check(node.right)
        result = arithmetic_type(node.op, a, b)
        if result is None:
            verb = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "**": "raise"}[node.op]
            hint = None
            if Type.STRING in (a, b) and Type.NUMBER in (a, b):
                hint = "text and numbers do not mix; check the field types in fields.yaml"
            raise self.fail(node, f"cannot {verb} {a.label} and {b.label} ({node.op})", hint)
        return result

    def _Compare(self, node: ast.Compare) -> Type:
        a, b = self.check(node.left), self.check(node.right)
        self._comparable(node, node.op, a, b)
        return Type.BOOLEAN

    def _comparable(self, node: ast.Node, op: str, a: Type, b: Type) -> None:
        if Type.NULL in (a, b):
            return
        if a != b:
            raise self.fail(node, f"cannot compare {a.label} with {b.label}",
                            'put text in double quotes, e.g. "A"' if Type.STRING in (a, b) else None)
        if op not in ("=", "!=") and a not in _ORDERED:
            raise self.fail(node, f"{a.label} values have no order; use = or !=")

    def _Logical(self, node: ast.Logical) -> Type:
        for side in (node.left, node.right):
            t = self.check(side)
            if t not in (Type.BOOLEAN, Type.NULL):
                raise self.fail(side, f"'{node.op}' needs true/false on both sides, got {t.label}")
        return Type.BOOLEAN

    def _If(self, node: ast.If) -> Type:
        c = self.check(node.cond)
        if c not in (Type.BOOLEAN, Type.NULL):
            raise self.fail(node.cond, f"the condition of 'if' must be true/false, got {c.label}")
        a, b = self.check(node.then), self.check(node.otherwise)
        result = unify(a, b)
        if result is None:
            raise self.fail(node, f"'then' gives {a.label} but 'else' gives {b.label}; both must be the same type")
        return result

    def _ListLiteral(self, node: ast.ListLiteral) -> Type:
        raise self.fail(node, "a list [...] only works as a test: in an input cell or after 'in'",
                        'e.g. industry in ["finance", "retail"]')

    def _Call(self, node: ast.Call) -> Type:
        fn = FUNCTIONS.get(node.func)
        if fn is None:
            close = difflib.get_close_matches(node.func, list(FUNCTIONS), n=1)
            raise UnknownName(f"unknown function {node.func!r}", self.text, node.pos,
                              f"did you mean {close[0]}?" if close else "functions: " + ", ".join(sorted(FUNCTIONS)))
        types = [self.check(a) for a in node.args]
        result = fn.signature(types)
        if isinstance(result, str):
            raise self.fail(node, f"{node.func}() {result}", f"usage: {fn.usage}")
        return result

    # --- unary tests ---

    def _InTests(self, node: ast.InTests) -> Type:
        operand = self.check(node.operand)
        Checker(self.text, self.resolve, self.known, operand).check(node.tests)
        return Type.BOOLEAN

    def _UnaryTests(self, node: ast.UnaryTests) -> Type:
        for test in node.tests:
            self.check(test)
        return Type.BOOLEAN

    def _CompareTest(self, node: ast.CompareTest) -> Type:
        t = self.check(node.endpoint)
        self._comparable(node, node.op, self._input(node), t)
        return Type.BOOLEAN

    def _IntervalTest(self, node: ast.IntervalTest) -> Type:
        inp = self._input(node)
        for end in (node.low, node.high):
            t = self.check(end)
            self._comparable(end, "<", inp, t)
        return Type.BOOLEAN

    def _ValueTest(self, node: ast.ValueTest) -> Type:
        inp = self._input(node)
        if isinstance(node.expr, ast.ListLiteral):  # FEEL: the input is one of the list's items
            node.expr.type = Type.LIST
            for item in node.expr.items:
                self._comparable(item, "=", inp, self.check(item))
            return Type.BOOLEAN
        t = self.check(node.expr)
        if node.uses_input:
            if t not in (Type.BOOLEAN, Type.NULL):
                raise self.fail(node, f"a cell using '?' must be a condition (true/false), got {t.label}")
            node.is_condition = True
        elif t == Type.BOOLEAN and inp not in (Type.BOOLEAN, Type.NULL):
            node.is_condition = True  # a boolean expression in a non-boolean column: a plain condition
        else:
            self._comparable(node, "=", inp, t)
        return Type.BOOLEAN

    def _input(self, node: ast.Node) -> Type:
        if self.input_type is None:
            raise self.fail(node, "a test like '< 5' only works in a decision-table input cell or after 'in'")
        return self.input_type


def arithmetic_type(op: str, a: Type, b: Type) -> Type | None:
    """The result type of `a op b`, or None when the operation is not defined for those types."""
    if a == Type.NULL and b == Type.NULL:
        return Type.NULL
    if a == Type.NULL:
        a = b if not (op == "-" and b == Type.DATE) else Type.DATE
    if b == Type.NULL:
        b = a if a != Type.DATE else Type.NUMBER
    if a == b == Type.NUMBER:
        return Type.NUMBER
    if Type.TIME in (a, b) or Type.DATE_TIME in (a, b) or a in DURATIONS or b in DURATIONS:
        return _temporal_type(op, a, b)
    if op == "+" and a == b == Type.STRING:
        return Type.STRING
    if op in "+-" and a == Type.DATE and b == Type.NUMBER:
        return Type.DATE
    if op == "+" and a == Type.NUMBER and b == Type.DATE:
        return Type.DATE
    if op == "-" and a == b == Type.DATE:
        return Type.NUMBER
    return None


def _temporal_rules() -> dict[tuple[Type, str, Type], Type]:
    """FEEL's arithmetic on times, dates and durations (DMN 1.5 §10.3.2.3.x): (left, op, right) → result."""
    rules = {
        (Type.DATE_TIME, "-", Type.DATE_TIME): Type.DAYS_DURATION,
        (Type.TIME, "-", Type.TIME): Type.DAYS_DURATION,
        (Type.TIME, "+", Type.DAYS_DURATION): Type.TIME,
        (Type.TIME, "-", Type.DAYS_DURATION): Type.TIME,
        (Type.DAYS_DURATION, "+", Type.TIME): Type.TIME,
    }
    for d in DURATIONS:
        rules |= {(d, "+", d): d, (d, "-", d): d, (d, "/", d): Type.NUMBER,
                  (d, "*", Type.NUMBER): d, (Type.NUMBER, "*", d): d, (d, "/", Type.NUMBER): d}
        for t in (Type.DATE, Type.DATE_TIME):
            rules |= {(t, "+", d): t, (t, "-", d): t, (d, "+", t): t}
    return rules


_TEMPORAL_ARITHMETIC = _temporal_rules()


def _temporal_type(op: str, a: Type, b: Type) -> Type | None:
    return _TEMPORAL_ARITHMETIC.get((a, op, b))


def check(node: ast.Node, text: str, resolve: Resolver, known: list[str] | None = None,
          input_type: Type | None = None) -> Type:
    """Type-check a syntax tree in place (every node gets `.type`) and return the type of the whole."""
    return Checker(text, resolve, known, input_type).check(node)
