"""Typed syntax tree → a Python closure over one account's plain values, for a request's few accounts.

The vectorized compiler (compiler.py) pays numpy's fixed cost per operation whatever the column length; for one
account that cost is all there is. This compiler gives the same results per account from plain Python values:

- number:  float, NaN is null (so IEEE arithmetic and comparisons behave as numpy's do)
- text:    str, None is null
- boolean: the int8 codes of vectors.py as ints (FALSE=0, NULL=1, TRUE=2): Kleene `and` is min, `or` is max
- date:    int days since 1970-01-01 (numpy's datetime64[D] ticks), None is null
- null:    None

A construct whose result this path cannot reproduce exactly (times and durations, date arithmetic, `**`,
functions not listed here) raises Unsupported when compiling, and the rule then runs vectorized. Compiled
closures take (cols, i, x): cols maps field names to per-account value lists (see `lists`), i is the account,
x the value `?` stands for in a unary test. Nothing here evaluates text: closures are built from the tree.

A closure that reads nothing but `?`, and `?` only by comparing it with constants (a cell such as `>= 1000000`,
`[0.1..0.3)`, `"finance", "retail"`, `null`), carries those constants as `cuts`: between and at them it gives one
result, so a table's cells can be run once per piece when compiling (`pieces`) and an account's value only placed.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import ast
from . import vectors as V
from .compiler import _is_constant, _literal_values, compile_node
from .types import Type
from .vectors import Vec

ENABLED = True  # off: every rule runs vectorized (tests compare both ways)
MOST_ACCOUNTS = 16  # up to this many accounts, rules that support it are evaluated account by account

F, N, T = 0, 1, 2  # boolean codes, as in vectors.py
AS_OF = "\x00as_of"  # the key under which `cols` holds the as-of day
_NAT = int(np.datetime64("NaT", "D").view(np.int64))
SUPPORTED = (Type.NUMBER, Type.STRING, Type.BOOLEAN, Type.DATE)

Fn = Callable[[Mapping[str, Any], int, Any], Any]


class Unsupported(Exception):  # noqa: N818 - a signal to fall back, not an error anyone sees
    """This expression or rule has no exact scalar evaluation: evaluate it vectorized."""


def applies(n: int) -> bool:
    """Whether an evaluation of n accounts takes the per-account path (where a rule supports it)."""
    return ENABLED and 0 < n <= MOST_ACCOUNTS and n <= V.SMALL_COLUMN


# --- values in and out ---------------------------------------------------------------------------------------


def null_of(type_: Type) -> Any:
    if type_ == Type.NUMBER:
        return math.nan
    if type_ == Type.BOOLEAN:
        return N
    return None


def is_null_fn(type_: Type) -> Callable[[Any], bool]:
    if type_ == Type.NUMBER:
        return lambda v: v != v
    if type_ == Type.BOOLEAN:
        return lambda v: v == N
    return lambda v: v is None


def to_list(vec: Vec, type_: Type, n: int) -> list[Any]:
    """A column's values for accounts 0..n-1 in this module's representation (Unsupported if it is not of type_)."""
    if vec.type != type_ or type_ not in SUPPORTED:
        raise Unsupported(f"a {vec.type} column read as {type_}")
    if type(vec) is ListVec:
        return vec.values
    data = vec.data
    if data.ndim == 0:
        data = np.broadcast_to(data, (n,))
    if type_ == Type.NUMBER:
        if data.dtype != np.float64:
            raise Unsupported("a number column that is not float64")
        return data.tolist()
    if type_ == Type.STRING:
        cats = vec.cats.tolist()
        return [cats[c] if c >= 0 else None for c in data.tolist()]
    if type_ == Type.BOOLEAN:
        return data.tolist()
    if data.dtype != np.dtype("datetime64[D]"):
        raise Unsupported("a date column not in days")
    return [None if v == _NAT else v for v in data.view(np.int64).tolist()]


_DATA, _CATS = Vec.__dict__["data"], Vec.__dict__["cats"]  # the slots ListVec fills when its arrays are asked for


class ListVec(Vec):
    """A column of a few accounts held as this module's plain values (`values`), as the per-account path makes
    and reads them; its numpy form (`data`, `cats`) is built only when something asks for it (a rule evaluated
    vectorized, a trace, the result frame), so a request whose rules all run per account builds no arrays.

    Text keeps the categories it must have when built (`cats`: e.g. a decision table's output values, so the
    column equals the one the table gathers vectorized); without them, the sorted distinct texts, as read."""

    __slots__ = ("values", "_cats")

    def __init__(self, type_: Type, values: list[Any], cats: np.ndarray | None = None):
        if type_ not in SUPPORTED:
            raise Unsupported(f"no list column of {type_}")
        # The slots' own setters: what object.__setattr__ ends in (Vec is frozen), without looking the names up.
        _set_type(self, type_)
        _set_values(self, values)
        _set_cats(self, cats)

    @property
    def data(self) -> np.ndarray:  # type: ignore[override]
        try:
            return _DATA.__get__(self, Vec)
        except AttributeError:
            self._build()
            return _DATA.__get__(self, Vec)

    @property
    def cats(self) -> np.ndarray | None:  # type: ignore[override]
        try:
            return _CATS.__get__(self, Vec)
        except AttributeError:
            self._build()
            return _CATS.__get__(self, Vec)

    def _build(self) -> None:
        values, t, cats = self.values, self.type, None
        if t == Type.NUMBER:
            data = np.array(values, dtype=np.float64)
        elif t == Type.BOOLEAN:
            data = np.array(values, dtype=np.int8)
        elif t == Type.DATE:
            data = np.array([_NAT if v is None else v for v in values], dtype=np.int64).view("datetime64[D]")
        else:
            cats = self._cats
            code = None if cats is None else {c: k for k, c in enumerate(cats.tolist())}
            if code is None or any(v is not None and v not in code for v in values):
                texts = sorted({v for v in values if v is not None})
                cats = np.array(texts, dtype=object) if texts else np.array([], dtype=object)
                code = {c: k for k, c in enumerate(texts)}
            data = np.array([-1 if v is None else code[v] for v in values], dtype=np.int32)
        _DATA.__set__(self, data)
        _CATS.__set__(self, cats)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (Dask ships rank keys between processes) as its values
        return ListVec, (self.type, self.values, self._cats)

    @property
    def is_scalar(self) -> bool:
        return False

    def full(self, n: int) -> Vec:
        return self

    def value(self, i: int) -> Any:
        v, t = self.values[i], self.type
        if t == Type.NUMBER:
            if v != v:
                return None
            f = float(v)
            return int(f) if f.is_integer() and abs(f) < 2**53 else f
        if t == Type.BOOLEAN:
            return None if v == N else v == T
        if t == Type.DATE:
            return None if v is None else _EPOCH + dt.timedelta(days=v)
        return v


_EPOCH = dt.date(1970, 1, 1)
_set_type, _set_values, _set_cats = Vec.__dict__["type"].__set__, ListVec.values.__set__, ListVec._cats.__set__


def column(type_: Type, values: list[Any], cats: np.ndarray | None = None) -> ListVec:
    """`ListVec(type_, values, cats)` for a type known to be one it holds, without the call to __init__: per-account
    rules make one for each output of each account's evaluation."""
    vec = _new(ListVec)
    _set_type(vec, type_)
    _set_values(vec, values)
    _set_cats(vec, cats)
    return vec


_new = object.__new__


def from_list(type_: Type, values: list[Any], cats: np.ndarray | None = None) -> Vec:
    """A column of type_ from values in this module's representation (a rule's output written to the state);
    text only with the categories its vectorized form has (`cats`)."""
    if type_ == Type.NUMBER:
        return column(Type.NUMBER, list(map(float, values)))
    if type_ in (Type.BOOLEAN, Type.DATE) or (type_ == Type.STRING and cats is not None):
        return column(type_, values, cats)
    raise Unsupported(f"no exact {type_} column from single values")


def trace_vec(type_: Type, values: list[Any]) -> Vec:
    """A column for a trace (read back only by Vec.value): text may take any categories."""
    if type_ == Type.STRING:
        return ListVec(Type.STRING, values)
    return from_list(type_, values)


def as_of_day(as_of: np.datetime64) -> int | None:
    v = int(np.datetime64(as_of, "D").view(np.int64))
    return None if v == _NAT else v


class Columns:
    """Per-account value lists of the state's columns, each converted once per evaluation (and again only when
    a rule has replaced the column), in one `cols` dict the closures of all rules read."""

    def __init__(self, columns: Mapping[str, Vec], n: int, as_of: np.datetime64):
        self.columns = columns
        self.n = n
        self.day = as_of_day(as_of)
        self.cols: dict[str, Any] = {AS_OF: self.day}
        self.read: dict[str, Vec] = {}  # the column each list in `cols` was read from

    def lists(self, fields: Mapping[str, Type]) -> dict[str, Any]:
        """The `cols` a compiled closure reads: the lists of these fields (as the state's columns now are), and the
        as-of day. Shared by the rules of one evaluation: a rule may add its own lists under names of its own (see
        `put`), and finds the fields it asks for as it asked."""
        cols, read, columns = self.cols, self.read, self.columns
        for name in fields:
            vec = columns[name]
            if read.get(name) is not vec:
                type_ = fields[name]
                # (a per-account rule's output, or an input read cell by cell: its values as they are)
                cols[name] = vec.values if type(vec) is ListVec and vec.type is type_ else to_list(vec, type_, self.n)
                read[name] = vec
        return cols

    def put(self, name: str, values: list[Any]) -> None:
        """A rule's own values under `name`, for its closures that read them; later rules read the state's column."""
        self.cols[name] = values
        self.read.pop(name, None)


# --- compiling -----------------------------------------------------------------------------------------------


class Compiler:
    """Compiles nodes of one rule, collecting the fields (and their types) the closures read."""

    def __init__(self) -> None:
        self.fields: dict[str, Type] = {}

    def expression(self, node: ast.Node) -> Fn:
        if node.type not in (*SUPPORTED, Type.NULL):
            raise Unsupported(f"{node.type} values")
        if not isinstance(node, ast.Literal | ast.Name | ast.Input) and _is_constant(node):
            return _const(_constant(node))
        return self._compile(node)

    def truth(self, node: ast.Node) -> Fn:
        """A boolean expression as 'is it definitely true?'."""
        f = self.expression(node)
        if node.type == Type.NULL:
            return lambda c, i, x: False
        return lambda c, i, x: f(c, i, x) == T

    def _compile(self, node: ast.Node) -> Fn:
        t = node.type
        if isinstance(node, ast.Literal):
            return _const(_constant(node))
        if isinstance(node, ast.Name):
            if t not in SUPPORTED:
                raise Unsupported(f"field of type {t}")
            if self.fields.setdefault(node.name, t) != t:
                raise Unsupported(f"{node.name} read as two types")
            name = node.name
            return lambda c, i, x: c[name][i]
        if isinstance(node, ast.Input):
            return _input
        if isinstance(node, ast.Negate):
            if node.operand.type == Type.NULL:
                return _const(math.nan)
            if node.operand.type != Type.NUMBER:
                raise Unsupported("negating a duration")
            f = self.expression(node.operand)
            return lambda c, i, x: -f(c, i, x)
        if isinstance(node, ast.Not):
            return self._not(node.operand)
        if isinstance(node, ast.Arithmetic):
            return self._arithmetic(node)
        if isinstance(node, ast.Compare):
            return self.compare(node.op, node.left.type, self.expression(node.left), node.right.type,
                                self.expression(node.right))
        if isinstance(node, ast.Logical):
            return self._junction(node.op, [self._boolean(node.left), self._boolean(node.right)])
        if isinstance(node, ast.If):
            cond = self.truth(node.cond)
            then, otherwise = self._cast(node.then, t), self._cast(node.otherwise, t)
            return lambda c, i, x: then(c, i, x) if cond(c, i, x) else otherwise(c, i, x)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.InTests):
            operand = self.expression(node.operand)
            test = self.tests(node.tests, node.operand.type)
            return lambda c, i, x: test(c, i, operand(c, i, x))
        raise Unsupported(type(node).__name__)

    def _cast(self, node: ast.Node, type_: Type) -> Fn:
        """A branch's value as type_ (a null-typed branch gives type_'s null)."""
        if node.type == Type.NULL and type_ != Type.NULL:
            return _const(null_of(type_))
        if node.type != type_:
            raise Unsupported("a branch of another type")
        return self.expression(node)

    def _boolean(self, node: ast.Node) -> Fn:
        if node.type == Type.NULL:
            return _const(N)
        if node.type != Type.BOOLEAN:
            raise Unsupported("logic over non-booleans")
        return self.expression(node)

    def _not(self, operand: ast.Node) -> Fn:
        f = self._boolean(operand)
        return _cut_as(lambda c, i, x: T - f(c, i, x), [f])

    @staticmethod
    def _junction(op: str, parts: list[Fn]) -> Fn:
        if len(parts) == 1:
            return parts[0]
        if op == "and":
            if len(parts) == 2:
                a, b = parts
                return _cut_as(lambda c, i, x: min(a(c, i, x), b(c, i, x)), parts)
            return _cut_as(lambda c, i, x: min(p(c, i, x) for p in parts), parts)
        if len(parts) == 2:
            a, b = parts
            return _cut_as(lambda c, i, x: max(a(c, i, x), b(c, i, x)), parts)
        return _cut_as(lambda c, i, x: max(p(c, i, x) for p in parts), parts)

    @staticmethod
    def compare(op: str, lt: Type, left: Fn, rt: Type, right: Fn) -> Fn:
        """FEEL comparison as compiler.compare: `=` / `!=` total, ordering with a null operand null."""
        if Type.NULL in (lt, rt):
            if op not in ("=", "!="):
                return _const(N)
            na, nb = (lambda v: True) if lt == Type.NULL else is_null_fn(lt), \
                (lambda v: True) if rt == Type.NULL else is_null_fn(rt)
            hit, miss = (T, F) if op == "=" else (F, T)
            fn = lambda c, i, x: hit if na(left(c, i, x)) and nb(right(c, i, x)) else miss  # noqa: E731
            return _cut(fn, ()) if left is _input and hasattr(right, "constant") else fn
        if lt != rt or lt not in SUPPORTED:
            raise Unsupported(f"comparing {lt} with {rt}")
        if op in ("=", "!="):
            hit, miss = (T, F) if op == "=" else (F, T)
            if lt == Type.NUMBER:  # NaN is null: null = null, null != a number
                def eq_number(c: Any, i: int, x: Any) -> int:
                    a, b = left(c, i, x), right(c, i, x)
                    if a != a or b != b:
                        return hit if a != a and b != b else miss
                    return hit if a == b else miss
                fn = eq_number
            else:
                # text, dates: None is null and equals only None; booleans: codes are equal exactly when values are
                fn = lambda c, i, x: hit if left(c, i, x) == right(c, i, x) else miss  # noqa: E731
            k = getattr(right, "constant", None)
            return _cut(fn, k) if left is _input and k is not None else fn
        if lt == Type.BOOLEAN:
            raise Unsupported("ordering booleans")
        fused = _fused(op, lt, left, right)
        if fused is not None:
            return fused
        less = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
        if lt == Type.NUMBER:
            def order_number(c: Any, i: int, x: Any) -> int:
                a, b = left(c, i, x), right(c, i, x)
                if a != a or b != b:
                    return N
                return T if less(a, b) else F
            return order_number

        def order(c: Any, i: int, x: Any) -> int:
            a, b = left(c, i, x), right(c, i, x)
            if a is None or b is None:
                return N
            return T if less(a, b) else F
        return order

    def _arithmetic(self, node: ast.Arithmetic) -> Fn:
        t, lt, rt = node.type, node.left.type, node.right.type
        if t == Type.NULL or Type.NULL in (lt, rt):
            return _const(null_of(t))
        a, b = self.expression(node.left), self.expression(node.right)
        if t == Type.STRING and lt == rt == Type.STRING and node.op == "+":
            def join(c: Any, i: int, x: Any) -> str | None:
                p, q = a(c, i, x), b(c, i, x)
                return None if p is None or q is None else p + q
            return join
        if not (t == lt == rt == Type.NUMBER):
            raise Unsupported(f"{lt} {node.op} {rt}")
        op = node.op
        if op == "+":
            return lambda c, i, x: a(c, i, x) + b(c, i, x)
        if op == "-":
            return lambda c, i, x: a(c, i, x) - b(c, i, x)
        if op == "*":
            return lambda c, i, x: a(c, i, x) * b(c, i, x)
        if op == "/":
            def divide(c: Any, i: int, x: Any) -> float:
                p, q = a(c, i, x), b(c, i, x)
                if q == 0:
                    return math.nan  # x/0 is null, as in FEEL
                r = p / q
                return r if r - r == 0 else math.nan  # inf is null too
            return divide
        raise Unsupported(f"operator {op}")

    def _call(self, node: ast.Call) -> Fn:
        name, args, types = node.func, node.args, [a.type for a in node.args]
        if name in ("min", "max"):
            typed = [a for a in args if a.type != Type.NULL] or args
            if typed[0].type == Type.NULL:
                return _const(math.nan)
            t = typed[0].type
            if t not in (Type.NUMBER, Type.DATE) or any(a.type != t for a in typed):
                raise Unsupported(f"{name} of {t}")
            fs = [self.expression(a) for a in typed]
            return _min_max(fs, name == "min", t)
        if name in ("abs", "floor", "ceil", "ceiling"):
            if types != [Type.NUMBER]:
                raise Unsupported(f"{name} of {types}")
            f = self.expression(args[0])
            one = {"abs": abs, "floor": _floor, "ceil": _ceil, "ceiling": _ceil}[name]
            return lambda c, i, x: one(f(c, i, x))
        if name == "round":
            return self._round(node)
        if name == "coalesce":
            typed = [a for a in args if a.type != Type.NULL]
            if not typed:
                return _const(None)
            t = typed[0].type
            if any(a.type != t for a in typed) or t not in SUPPORTED:
                raise Unsupported("coalesce of mixed types")
            fs = [self.expression(a) for a in typed]
            null = is_null_fn(t)

            def coalesce(c: Any, i: int, x: Any) -> Any:
                v = None
                for f in fs:
                    v = f(c, i, x)
                    if not null(v):
                        return v
                return v
            return coalesce
        if name == "is_null":
            if types[0] == Type.NULL:
                return _const(T)
            f, null = self.expression(args[0]), is_null_fn(types[0])
            return lambda c, i, x: T if null(f(c, i, x)) else F
        if name == "today":
            return lambda c, i, x: c[AS_OF]
        if name in ("days_between", "months_between"):
            if types != [Type.DATE, Type.DATE]:
                raise Unsupported(f"{name} of {types}")
            a, b = self.expression(args[0]), self.expression(args[1])
            between = _days_between if name == "days_between" else _months_between
            return lambda c, i, x: between(a(c, i, x), b(c, i, x))
        if name in ("year", "month"):
            if types != [Type.DATE]:
                raise Unsupported(f"{name} of {types}")
            f, part = self.expression(args[0]), 0 if name == "year" else 1
            return lambda c, i, x: _date_part(f(c, i, x), part)
        if name in ("contains", "starts_with", "ends_with"):
            if Type.NULL in types:
                return _const(N)
            if types != [Type.STRING, Type.STRING]:
                raise Unsupported(f"{name} of {types}")
            a, b = self.expression(args[0]), self.expression(args[1])
            test = {"contains": lambda h, s: s in h, "starts_with": str.startswith, "ends_with": str.endswith}[name]

            def text_test(c: Any, i: int, x: Any) -> int:
                h, s = a(c, i, x), b(c, i, x)
                return N if h is None or s is None else (T if test(h, s) else F)
            return text_test
        if name in ("lower", "upper"):
            if types[0] == Type.NULL:
                return _const(None)
            f, case = self.expression(args[0]), str.lower if name == "lower" else str.upper
            return lambda c, i, x: None if (v := f(c, i, x)) is None else case(v)
        raise Unsupported(f"function {name}")

    def _round(self, node: ast.Call) -> Fn:
        """Half away from zero, as functions._round: sign(x) * floor(|x| * 10^d + 0.5) / 10^d."""
        if node.args[0].type != Type.NUMBER:
            raise Unsupported("round of a non-number")
        digits = 0.0
        if len(node.args) > 1:
            d = node.args[1]
            if d.type != Type.NUMBER or not _is_constant(d):
                raise Unsupported("round to a computed number of digits")
            digits = _constant(d)
        if digits != digits:
            return _const(math.nan)
        with np.errstate(all="ignore"):
            scale = float(np.power(10.0, np.nan_to_num(digits)))
        if not (0 < scale < math.inf):
            raise Unsupported("round to extreme digits")
        f = self.expression(node.args[0])

        def round_(c: Any, i: int, x: Any) -> float:
            v = f(c, i, x)
            if v != v:
                return math.nan
            sign = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
            y = abs(v) * scale + 0.5
            if y - y == 0:
                y = float(math.floor(y))
            return sign * y / scale
        return round_

    # --- unary tests ---

    def tests(self, node: ast.UnaryTests, input_type: Type) -> Fn:
        """An input cell or band as compiler.compile_tests: a test of `?` giving a boolean code."""
        if node.is_any:
            return _const(T)
        if input_type not in SUPPORTED:
            raise Unsupported(f"tests of {input_type}")
        literal_values: list[Any] = []
        others: list[Fn] = []
        for test in node.tests:
            values = _literal_values(test)
            if values is not None:
                for v in values:
                    if v.literal_type != input_type:
                        raise Unsupported("a list of values of another type")
                    literal_values.append(_scalar_of(V.scalar(v.value, v.literal_type), input_type))
            else:
                others.append(self._test(test, input_type))
        parts = ([_membership(literal_values, input_type)] if literal_values else []) + others
        combined = self._junction("or", parts)
        if node.negated:
            return _cut_as(lambda c, i, x: T - combined(c, i, x), [combined])
        return combined

    def _test(self, test: ast.Node, it: Type) -> Fn:
        inp = _input
        if isinstance(test, ast.CompareTest):
            return self.compare(test.op, it, inp, test.endpoint.type, self.expression(test.endpoint))
        if isinstance(test, ast.IntervalTest):
            both = _fused_interval(it, test, self.expression(test.low), self.expression(test.high))
            if both is not None:
                return both
            low = self.compare(">=" if test.low_closed else ">", it, inp, test.low.type, self.expression(test.low))
            high = self.compare("<=" if test.high_closed else "<", it, inp, test.high.type,
                                self.expression(test.high))
            return self._junction("and", [low, high])
        if isinstance(test, ast.ValueTest) and isinstance(test.expr, ast.ListLiteral):
            parts = [self.compare("=", it, inp, item.type, self.expression(item)) for item in test.expr.items]
            return self._junction("or", parts) if parts else _const(F)
        if isinstance(test, ast.ValueTest):
            if test.is_condition:
                return self._boolean(test.expr)
            return self.compare("=", it, inp, test.expr.type, self.expression(test.expr))
        raise Unsupported(type(test).__name__)


def pieces(tests: list[Fn], type_: Type) -> tuple[Callable[[Any], int], list[Any]] | None:
    """Where every test reads only `?` and compares it only with constants (its `cuts`), the values of `?` fall
    into a few pieces on each of which every test gives one result: null; each constant; what lies between two
    consecutive constants (and below the first, above the last). Returns the function placing a value in its piece
    and one value of each piece (null for a piece no value falls in) to run the tests on once; None where a test
    is not of that kind."""
    cuts = [getattr(t, "cuts", None) for t in tests]
    if any(c is None for c in cuts):
        return None
    points = {v for c in cuts for v in c}
    if type_ == Type.BOOLEAN:  # three codes: each its own piece
        return _boolean_piece, [F, N, T]
    if type_ == Type.STRING:  # text is only compared for equality (no fused ordering): a piece per constant
        texts = sorted(v for v in points if v is not None)
        index = {v: j for j, v in enumerate(texts, 2)}
        get = index.get
        return (lambda x: 0 if x is None else get(x, 1)), [None, "".join(texts) + "\x00", *texts]
    if type_ == Type.NUMBER:
        cs = sorted(v for v in points if v == v)
        null: Any = math.nan

        def inside(lo: Any, hi: Any) -> Any:  # a float strictly between lo and hi (None: the ends), or null
            if lo is None:
                return 0.0 if hi is None else (-math.inf if hi > -math.inf else null)
            if hi is None:
                return math.inf if lo < math.inf else null
            v = math.nextafter(lo, hi)
            return v if v < hi else null

        def piece(x: Any) -> int:
            if x != x:
                return 0
            j = bisect_left(cs, x)
            return 2 + 2 * j if j < m and cs[j] == x else 1 + 2 * j
    elif type_ == Type.DATE:
        cs = sorted(v for v in points if v is not None)
        null = None

        def inside(lo: Any, hi: Any) -> Any:  # a day strictly between lo and hi (None: the ends), or null
            if lo is None:
                return 0 if hi is None else hi - 1
            if hi is None:
                return lo + 1
            return lo + 1 if lo + 1 < hi else null

        def piece(x: Any) -> int:
            if x is None:
                return 0
            j = bisect_left(cs, x)
            return 2 + 2 * j if j < m and cs[j] == x else 1 + 2 * j
    else:
        return None
    m = len(cs)
    values = [null]
    for j in range(m + 1):
        values.append(inside(cs[j - 1] if j else None, cs[j] if j < m else None))
        if j < m:
            values.append(cs[j])
    return piece, values


def _boolean_piece(x: int) -> int:
    return x


def _fused_interval(it: Type, test: ast.IntervalTest, low: Fn, high: Fn) -> Fn | None:
    """`[a..b)` between two constants as one closure: what the junction of its two fused comparisons gives
    (both null for a null input, else true when both hold)."""
    a, b = getattr(low, "constant", None), getattr(high, "constant", None)
    if a is None or b is None or not (it == test.low.type == test.high.type) or it not in (Type.NUMBER, Type.DATE):
        return None
    a, b = a[0], b[0]
    if it == Type.NUMBER and (a != a or b != b) or it == Type.DATE and (a is None or b is None):
        return None
    return _cut(_fused_between(it, test.low_closed, test.high_closed, a, b), (a, b))


def _fused_between(it: Type, lc: bool, hc: bool, a: Any, b: Any) -> Fn:
    if it == Type.NUMBER:
        if lc and hc:
            return lambda c, i, x: N if x != x else T if a <= x <= b else F
        if lc:
            return lambda c, i, x: N if x != x else T if a <= x < b else F
        if hc:
            return lambda c, i, x: N if x != x else T if a < x <= b else F
        return lambda c, i, x: N if x != x else T if a < x < b else F
    if lc and hc:
        return lambda c, i, x: N if x is None else T if a <= x <= b else F
    if lc:
        return lambda c, i, x: N if x is None else T if a <= x < b else F
    if hc:
        return lambda c, i, x: N if x is None else T if a < x <= b else F
    return lambda c, i, x: N if x is None else T if a < x < b else F


def _const(value: Any) -> Fn:
    fn = lambda c, i, x: value  # noqa: E731 - marked below, so compare can fuse it
    fn.constant = (value,)  # type: ignore[attr-defined]
    fn.cuts = ()  # type: ignore[attr-defined]
    return fn


def _cut(fn: Fn, cuts: tuple[Any, ...]) -> Fn:
    """Mark fn as a test of `?` alone that compares it with these constants only (see `pieces`)."""
    fn.cuts = cuts  # type: ignore[attr-defined]
    return fn


def _cut_as(fn: Fn, parts: list[Fn]) -> Fn:
    """Mark fn, a combination of parts (and, or, not), with their constants where every part is marked."""
    cuts = [getattr(p, "cuts", None) for p in parts]
    return fn if any(c is None for c in cuts) else _cut(fn, tuple(v for c in cuts for v in c))


def _input(c: Any, i: int, x: Any) -> Any:
    """`?`: the value a unary test is applied to."""
    return x


def _fused(op: str, lt: Type, left: Fn, right: Fn) -> Fn | None:
    """`? op constant` (a decision-table cell such as `>= 1000000`) as one closure instead of three: the same
    codes as the general comparison (null input: null; a null constant is left to the general form)."""
    k = getattr(right, "constant", None)
    if left is not _input or k is None:
        return None
    fn = _fused_compare(op, lt, k[0])
    return None if fn is None else _cut(fn, k)


def _fused_compare(op: str, lt: Type, k: Any) -> Fn | None:
    if lt == Type.NUMBER:
        if k != k:
            return None
        if op == "<":
            return lambda c, i, x: N if x != x else T if x < k else F
        if op == "<=":
            return lambda c, i, x: N if x != x else T if x <= k else F
        if op == ">":
            return lambda c, i, x: N if x != x else T if x > k else F
        if op == ">=":
            return lambda c, i, x: N if x != x else T if x >= k else F
        return None
    if lt == Type.DATE and k is not None:
        if op == "<":
            return lambda c, i, x: N if x is None else T if x < k else F
        if op == "<=":
            return lambda c, i, x: N if x is None else T if x <= k else F
        if op == ">":
            return lambda c, i, x: N if x is None else T if x > k else F
        if op == ">=":
            return lambda c, i, x: N if x is None else T if x >= k else F
    return None


def _scalar_of(vec: Vec, type_: Type) -> Any:
    if vec.type == Type.NULL:
        return null_of(type_)
    return to_list(vec, type_, 1)[0]


def _constant(node: ast.Node) -> Any:
    """A subtree that reads no field, evaluated once by the vectorized compiler (so folding is identical)."""
    compiled = compile_node(node)
    vec = getattr(compiled, "vec", None)
    if vec is None:
        raise Unsupported("a constant that did not fold")
    return _scalar_of(vec, node.type)


def _membership(values: list[Any], type_: Type) -> Fn:
    """compiler.Membership: true where the input is one of the values; never null."""
    if type_ not in (Type.NUMBER, Type.STRING, Type.DATE):
        raise Unsupported(f"a list of {type_}")
    wanted = frozenset(values)
    if type_ == Type.NUMBER:  # NaN (null) is in no list: a fresh NaN is neither identical nor equal to one
        return _cut(lambda c, i, x: T if x == x and x in wanted else F, tuple(wanted))
    return _cut(lambda c, i, x: T if x is not None and x in wanted else F, tuple(wanted))


def _min_max(fs: list[Fn], smallest: bool, t: Type) -> Fn:
    """np.minimum / np.maximum folded left: null in, null out; on a tie (0.0 and -0.0) the later value."""
    def pick(a: Any, b: Any) -> Any:
        if t == Type.NUMBER:
            if a != a or b != b:
                return math.nan
        elif a is None or b is None:
            return None
        if smallest:
            return a if a < b else b
        return a if a > b else b

    def fold(c: Any, i: int, x: Any) -> Any:
        out = fs[0](c, i, x)
        for f in fs[1:]:
            out = pick(out, f(c, i, x))
        return out
    return fold


def _floor(v: float) -> float:
    if v - v != 0:
        return v
    r = float(math.floor(v))
    return math.copysign(0.0, v) if r == 0 else r


def _ceil(v: float) -> float:
    if v - v != 0:
        return v
    r = float(math.ceil(v))
    return math.copysign(0.0, v) if r == 0 else r


def civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number (days since 1970-01-01), proleptic Gregorian, any year."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def _days_between(a: int | None, b: int | None) -> float:
    return math.nan if a is None or b is None else float(b - a)


def _months_between(a: int | None, b: int | None) -> float:
    """functions._months_between: whole months, a month counting once its day-of-month is reached."""
    if a is None or b is None:
        return math.nan
    ya, ma, da = civil(a)
    yb, mb, db = civil(b)
    months = (yb * 12 + mb) - (ya * 12 + ma)
    if months > 0 and db < da:
        months -= 1
    elif months < 0 and db > da:
        months += 1
    return float(months)


def _date_part(v: int | None, part: int) -> float:
    return math.nan if v is None else float(civil(v)[part])
