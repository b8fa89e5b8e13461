"""Typed syntax tree → vectorized evaluator over whole columns (numpy), never `eval` of text.

Every compiled node has `eval(env) -> Vec` with FEEL's three-valued null logic, and `truth(env) -> bool array`
("is it definitely true?"), which comparisons answer in one numpy operation; decision-table matching only
needs truth, so a cell such as `>= 1000000` costs a single comparison per account.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping

import numpy as np

from . import ast, temporal
from . import vectors as V
from .functions import FUNCTIONS
from .types import DURATIONS, TEMPORAL, Type
from .vectors import Vec


class Env:
    """The columns an evaluation reads: fields by name, `?` in a unary test, and the as-of date for today()."""

    __slots__ = ("columns", "as_of", "input", "n")

    def __init__(self, columns: Mapping[str, Vec], n: int, as_of: np.datetime64, input_: Vec | None = None):
        self.columns = columns
        self.n = n
        self.as_of = as_of
        self.input = input_

    def with_input(self, vec: Vec) -> Env:
        return Env(self.columns, self.n, self.as_of, vec)


class Compiled:
    """A node ready to evaluate. Subclasses override `eval`, and `truth` where a faster answer exists."""

    type: Type = Type.NULL

    def eval(self, env: Env) -> Vec:
        raise NotImplementedError

    def truth(self, env: Env) -> np.ndarray:
        return self.eval(env).truth()


class Const(Compiled):
    def __init__(self, vec: Vec):
        self.vec = vec
        self.type = vec.type

    def eval(self, env: Env) -> Vec:
        return self.vec


class Field(Compiled):
    def __init__(self, name: str, type_: Type):
        self.name = name
        self.type = type_

    def eval(self, env: Env) -> Vec:
        return env.columns[self.name]


class InputRef(Compiled):
    def __init__(self, type_: Type):
        self.type = type_

    def eval(self, env: Env) -> Vec:
        return env.input


class Fn(Compiled):
    """A node computed by a plain function of its children's values."""

    def __init__(self, type_: Type, fn: Callable[..., Vec], *children: Compiled, as_of: bool = False):
        self.type = type_
        self.fn = fn
        self.children = children
        self.as_of = as_of

    def eval(self, env: Env) -> Vec:
        args = [c.eval(env) for c in self.children]
        return self.fn(args, env.as_of) if self.as_of else self.fn(*args)


# --- comparisons -------------------------------------------------------------------------------------------

_ORDER_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _operands(a: Vec, b: Vec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Comparable raw values and null masks of two columns of the same type."""
    if a.type == Type.STRING and b.type == Type.STRING:
        ca, cb, _ = V.align_strings(a, b)
        return ca, cb, ca < 0, cb < 0
    return a.data, b.data, a.nulls(), b.nulls()


def compare(op: str, a: Vec, b: Vec) -> Vec:
    """FEEL comparison: `=` and `!=` are total (null = null is true, null = 1 is false); ordering with a
    null operand is null."""
    if a.type == Type.NULL or b.type == Type.NULL:
        na, nb = a.nulls(), b.nulls()
        if op in ("=", "!="):
            eq = na & nb
            return V.boolean(eq if op == "=" else ~eq)
        return V.null(Type.BOOLEAN)
    va, vb, na, nb = _operands(a, b)
    if op in ("=", "!="):
        eq = np.where(na | nb, na & nb, va == vb)
        return V.boolean(eq if op == "=" else ~eq)
    return V.boolean(_ORDER_OPS[op](va, vb), na | nb)


def compare_truth(op: str, a: Vec, b: Vec) -> np.ndarray:
    if op in ("=", "!=") or Type.NULL in (a.type, b.type):
        return compare(op, a, b).truth()
    if a.type != Type.STRING:  # NaN and NaT compare false: no null masks needed
        return _ORDER_OPS[op](a.data, b.data)
    va, vb, na, nb = _operands(a, b)
    result = _ORDER_OPS[op](va, vb)
    if a.type == Type.STRING:
        result = result & ~na & ~nb  # code -1 (null) would otherwise sort first
    return result  # NaN and NaT compare false, which is exactly "not definitely true"


class Comparison(Compiled):
    type = Type.BOOLEAN

    def __init__(self, op: str, left: Compiled, right: Compiled):
        self.op, self.left, self.right = op, left, right

    def eval(self, env: Env) -> Vec:
        return compare(self.op, self.left.eval(env), self.right.eval(env))

    def truth(self, env: Env) -> np.ndarray:
        return compare_truth(self.op, self.left.eval(env), self.right.eval(env))


# --- logic -------------------------------------------------------------------------------------------------


class Junction(Compiled):
    """`and` / `or` over any number of parts, Kleene-style: false < null < true, so `and` is the minimum
    and `or` the maximum; "definitely true" combines with & and |."""

    type = Type.BOOLEAN

    def __init__(self, op: str, *parts: Compiled):
        self.parts = parts
        self.combine, self.combine_truth = (np.minimum, np.logical_and) if op == "and" else (np.maximum, np.logical_or)

    def eval(self, env: Env) -> Vec:
        out = _bool(self.parts[0].eval(env)).data
        for p in self.parts[1:]:
            out = self.combine(out, _bool(p.eval(env)).data)
        return Vec(Type.BOOLEAN, out)

    def truth(self, env: Env) -> np.ndarray:
        out = self.parts[0].truth(env)
        for p in self.parts[1:]:
            out = self.combine_truth(out, p.truth(env))
        return out


class NotOp(Compiled):
    """`not x`, and `not(tests)` around a cell: Kleene negation (not null is null), so a negated cell matches
    where its tests are definitely false."""

    type = Type.BOOLEAN

    def __init__(self, operand: Compiled):
        self.operand = operand

    def eval(self, env: Env) -> Vec:
        v = _bool(self.operand.eval(env))
        return Vec(Type.BOOLEAN, (V.TRUE - v.data).astype(np.int8))


def _bool(v: Vec) -> Vec:
    return V.null(Type.BOOLEAN) if v.type == Type.NULL else v


class IfOp(Compiled):
    def __init__(self, type_: Type, cond: Compiled, then: Compiled, otherwise: Compiled):
        self.type, self.cond, self.then, self.otherwise = type_, cond, then, otherwise

    def eval(self, env: Env) -> Vec:
        mask = self.cond.truth(env)  # FEEL: a null condition takes the else branch
        a = V.cast_null(self.then.eval(env), self.type)
        b = V.cast_null(self.otherwise.eval(env), self.type)
        return choose(mask, a, b)


def choose(mask: np.ndarray, a: Vec, b: Vec) -> Vec:
    """Row-wise a where mask else b (both of one type)."""
    if a.type == Type.STRING:
        ca, cb, cats = V.align_strings(a, b)
        return Vec(Type.STRING, np.where(mask, ca, cb).astype(np.int32), cats)
    if a.type == Type.NULL:
        return a
    return Vec(a.type, np.where(mask, a.data, b.data).astype(a.data.dtype))


# --- arithmetic --------------------------------------------------------------------------------------------


def arithmetic(op: str, type_: Type, a: Vec, b: Vec) -> Vec:
    if type_ == Type.NULL or Type.NULL in (a.type, b.type):
        return V.null(type_)
    if a.type in TEMPORAL or b.type in TEMPORAL:
        return _temporal_arithmetic(op, type_, a, b)
    with np.errstate(all="ignore"):
        if type_ == Type.NUMBER and a.type == Type.NUMBER:
            x, y = a.data, b.data
            if op == "+":
                return V.number(x + y)
            if op == "-":
                return V.number(x - y)
            if op == "*":
                return V.number(x * y)
            r = x / y if op == "/" else np.power(x, y)
            return V.number(np.where(np.isfinite(r), r, np.nan))  # x/0 is null, as in FEEL
        if type_ == Type.NUMBER:  # date - date: days
            diff = a.data - b.data
            return V.number(np.where(np.isnat(diff), np.nan, diff.astype(np.int64).astype(np.float64)))
        if type_ == Type.DATE:
            d, days = (a, b) if a.type == Type.DATE else (b, a)
            shift = np.nan_to_num(days.data).astype(np.int64).astype("timedelta64[D]")
            out = d.data - shift if op == "-" else d.data + shift
            return V.date(np.where(np.isnan(days.data), np.datetime64("NaT"), out))
    # text + text
    left, right = np.broadcast_arrays(V.object_values(a), V.object_values(b))
    joined = [None if x is None or y is None else x + y for x, y in zip(left.ravel(), right.ravel(), strict=True)]
    return V.strings(joined) if left.ndim else V.string_scalar(joined[0])


def _temporal_arithmetic(op: str, type_: Type, a: Vec, b: Vec) -> Vec:
    """FEEL arithmetic with times, dates and times and durations; NaT / NaN carry nulls through."""
    x, y = a.data, b.data
    with np.errstate(all="ignore"):
        if type_ == Type.NUMBER:  # duration / duration
            r = (x / y).astype(np.float64)
            return V.number(np.where(np.isfinite(r), r, np.nan))
        if a.type in DURATIONS and b.type in DURATIONS:
            return Vec(type_, x + y if op == "+" else x - y)
        if op in "*/":
            d, f = (a, b) if a.type in DURATIONS else (b, a)
            if d.type == Type.DAYS_DURATION:
                return Vec(type_, temporal.scale(d.data, f.data, divide=op == "/"))
            r = d.data / f.data if op == "/" else d.data * f.data
            return Vec(type_, np.where(np.isfinite(r), np.trunc(r), np.nan))
        if a.type not in DURATIONS and b.type not in DURATIONS:  # time - time, date and time - date and time
            return Vec(type_, x - y)
        point, dur = (a, b) if b.type in DURATIONS else (b, a)
        shift = -dur.data if op == "-" else dur.data
        if dur.type == Type.YEARS_DURATION:
            return Vec(type_, temporal.add_months(point.data, shift))
        if point.type == Type.TIME:
            return Vec(type_, (point.data + shift) % temporal.DAY)  # clock arithmetic wraps at midnight
        if point.type == Type.DATE:  # FEEL: date + duration is the date part of midnight + duration
            return V.date((point.data.astype("datetime64[us]") + shift).astype("datetime64[D]"))
        return Vec(type_, point.data + shift)


def negate(a: Vec) -> Vec:
    if a.type in DURATIONS:
        return Vec(a.type, -a.data)
    return V.null(Type.NUMBER) if a.type == Type.NULL else V.number(-a.data)


# --- unary tests -------------------------------------------------------------------------------------------


class TestOf(Compiled):
    """A unary test applied to a value: binds `?` and evaluates the test."""

    type = Type.BOOLEAN

    def __init__(self, operand: Compiled, test: Compiled):
        self.operand, self.test = operand, test

    def eval(self, env: Env) -> Vec:
        return self.test.eval(env.with_input(self.operand.eval(env)))

    def truth(self, env: Env) -> np.ndarray:
        return self.test.truth(env.with_input(self.operand.eval(env)))


class Membership(Compiled):
    """`"finance", "retail"` (or numbers): one vectorized membership test for a list of literal values."""

    type = Type.BOOLEAN

    def __init__(self, values: list[Vec]):
        self.values = values
        self.wanted = [v.value(0) for v in values]
        # For a few accounts, a set lookup per account beats numpy's per-call cost: the texts, or the numbers.
        self.texts = frozenset(self.wanted) if all(v.type == Type.STRING for v in values) else None
        self.numbers = frozenset(float(v.data[()]) for v in values) \
            if all(v.type == Type.NUMBER for v in values) else None

    def truth(self, env: Env) -> np.ndarray:
        x = env.input
        if x.data.ndim == 1 and len(x.data) <= V.SMALL_COLUMN:
            if x.type == Type.STRING and self.texts is not None:
                cats, texts = x.cats, self.texts
                return np.array([c >= 0 and cats[c] in texts for c in x.data.tolist()], dtype=bool)
            if x.type == Type.NUMBER and self.numbers is not None:
                numbers = self.numbers
                return np.array([v in numbers for v in x.data.tolist()], dtype=bool)
        if x.type == Type.STRING:
            wanted = self.wanted
            codes = np.searchsorted(x.cats, wanted) if len(x.cats) else np.zeros(len(wanted), int)
            hits = [int(c) for c, w in zip(codes, wanted, strict=True) if c < len(x.cats) and x.cats[c] == w]
            if not hits:
                return np.zeros(x.data.shape, dtype=bool)
            if len(hits) == 1:
                return x.data == hits[0]
            hit = np.zeros(len(x.cats) + 1, dtype=bool)  # per category, and False for null (code -1, the last)
            hit[hits] = True
            return hit[x.data]
        values = np.array([v.data[()] for v in self.values], dtype=x.data.dtype)
        return x.data == values[0] if len(values) == 1 else np.isin(x.data, values)

    def eval(self, env: Env) -> Vec:
        return V.boolean(self.truth(env))  # equality is total: never null


class AnyValue(Compiled):
    """`-`: matches every value, null included."""

    type = Type.BOOLEAN

    def eval(self, env: Env) -> Vec:
        return Vec(Type.BOOLEAN, np.asarray(V.TRUE, dtype=np.int8))

    def truth(self, env: Env) -> np.ndarray:
        return np.asarray(True)


# --- the compiler ------------------------------------------------------------------------------------------


def compile_node(node: ast.Node) -> Compiled:
    """Compile a type-checked node. Subtrees that read no field are folded into constants."""
    compiled = _compile(node)
    if not isinstance(compiled, Const | Field | InputRef) and _is_constant(node):
        return Const(compiled.eval(Env({}, 1, np.datetime64("NaT", "D"))))
    return compiled


def _is_constant(node: ast.Node) -> bool:
    for n in node.walk():
        if isinstance(n, ast.Name | ast.Input):
            return False
        if isinstance(n, ast.Call) and not FUNCTIONS[n.func].deterministic:
            return False
        if isinstance(n, ast.ValueTest | ast.CompareTest | ast.IntervalTest | ast.UnaryTests):
            return False
    return True


def _compile(node: ast.Node) -> Compiled:
    t = node.type
    if isinstance(node, ast.Literal):
        return Const(V.scalar(node.value, node.literal_type))
    if isinstance(node, ast.Name):
        return Field(node.name, t)
    if isinstance(node, ast.Input):
        return InputRef(t)
    if isinstance(node, ast.Negate):
        return Fn(t, negate, compile_node(node.operand))
    if isinstance(node, ast.Not):
        return NotOp(compile_node(node.operand))
    if isinstance(node, ast.Arithmetic):
        op, result = node.op, t
        return Fn(t, lambda a, b: arithmetic(op, result, a, b), compile_node(node.left), compile_node(node.right))
    if isinstance(node, ast.Compare):
        return Comparison(node.op, compile_node(node.left), compile_node(node.right))
    if isinstance(node, ast.Logical):
        return Junction(node.op, compile_node(node.left), compile_node(node.right))
    if isinstance(node, ast.If):
        return IfOp(t, compile_node(node.cond), compile_node(node.then), compile_node(node.otherwise))
    if isinstance(node, ast.Call):
        fn = FUNCTIONS[node.func]
        return Fn(t, fn.impl, *(compile_node(a) for a in node.args), as_of=True)
    if isinstance(node, ast.InTests):
        return TestOf(compile_node(node.operand), compile_tests(node.tests))
    raise AssertionError(f"cannot compile {type(node).__name__} here")


def compile_tests(node: ast.UnaryTests) -> Compiled:
    """Compile an input cell into a test of `?` (bound by the caller to the input column)."""
    if node.is_any:
        return AnyValue()
    literal_values: list[Vec] = []
    others: list[Compiled] = []
    for test in node.tests:
        values = _literal_values(test)
        if values is not None:
            literal_values += [V.scalar(v.value, v.literal_type) for v in values]
        else:
            others.append(_compile_test(test))
    parts = ([Membership(literal_values)] if literal_values else []) + others
    combined = parts[0] if len(parts) == 1 else Junction("or", *parts)
    return NotOp(combined) if node.negated else combined


def _literal_values(test: ast.Node) -> list[ast.Literal] | None:
    """The plain literal values an equality test lists (`"a"`, `[1, 2]`), or None when it is something else."""
    if not isinstance(test, ast.ValueTest) or test.is_condition:
        return None
    items = test.expr.items if isinstance(test.expr, ast.ListLiteral) else [test.expr]
    plain = all(isinstance(v, ast.Literal) and v.value is not None and v.literal_type == v.type != Type.BOOLEAN
                for v in items)
    return items if plain and items else None


def _compile_test(test: ast.Node) -> Compiled:
    inp = InputRef(Type.NULL)
    if isinstance(test, ast.CompareTest):
        return Comparison(test.op, inp, compile_node(test.endpoint))
    if isinstance(test, ast.IntervalTest):
        low = Comparison(">=" if test.low_closed else ">", inp, compile_node(test.low))
        high = Comparison("<=" if test.high_closed else "<", inp, compile_node(test.high))
        return Junction("and", low, high)
    if isinstance(test, ast.ValueTest) and isinstance(test.expr, ast.ListLiteral):
        parts = [Comparison("=", inp, compile_node(item)) for item in test.expr.items]
        if not parts:
            return Const(V.boolean(np.asarray(False)))  # the empty list holds nothing
        return parts[0] if len(parts) == 1 else Junction("or", *parts)
    if isinstance(test, ast.ValueTest):
        expr = compile_node(test.expr)
        return expr if test.is_condition else Comparison("=", inp, expr)
    raise AssertionError(f"not a unary test: {type(test).__name__}")
