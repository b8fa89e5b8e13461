"""Static checks of a decision table's input cells: overlapping, conflicting, unreachable rows and gaps."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..expressions import ast
from ..expressions.types import Type

UNKNOWN = object()  # an output (or test endpoint) that is an expression, so its value is not known statically
OTHER_TEXT = "<any other value>"  # example value for a text input outside every listed value
HIT_POLICIES = ("UNIQUE", "ANY", "FIRST", "PRIORITY", "RULE ORDER", "OUTPUT ORDER", "COLLECT")
MAX_BOXES = 20_000  # box subtraction gives up beyond this many pieces


@dataclass(frozen=True)
class Finding:
    kind: str  # overlap | conflict | unreachable | gap
    rows: tuple[str, ...]
    message: str
    severity: str  # error | warning
    example: dict[int, Any] | None = None  # input index -> value (None is null)


# A cut is a position on an ordered domain: (rank, value, side). Rank 0 is -infinity, 2 is +infinity; side 0
# is just below the value, 1 just above it. Tuples compare left to right, so ranks keep infinities apart from
# values of any type. An interval holds the values between two cuts; in a discrete domain (dates, booleans)
# every cut is normalised to side 0, so "above 2024-01-01" and "below 2024-01-02" are the same cut.
Cut = tuple[int, Any, int]
Interval = tuple[Cut, Cut]
_NEG_INF: Cut = (0, 0, 0)
_POS_INF: Cut = (2, 0, 0)


@dataclass(frozen=True)
class _Set:
    """Values of one input: disjoint sorted intervals of non-null values, plus null or not."""

    ivs: tuple[Interval, ...]
    null: bool = False

    def empty(self) -> bool:
        return not self.ivs and not self.null


Box = tuple[_Set, ...]  # one set per input: the inputs a row matches
Row = list[_Set | None]  # a row's cells; None where a cell depends on data


def _union(a: _Set, b: _Set) -> _Set:
    merged: list[Interval] = []
    for lo, hi in sorted(a.ivs + b.ivs):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return _Set(tuple(merged), a.null or b.null)


def _intersect(a: _Set, b: _Set) -> _Set:
    ivs = [(max(l1, l2), min(h1, h2)) for l1, h1 in a.ivs for l2, h2 in b.ivs if max(l1, l2) < min(h1, h2)]
    return _Set(tuple(sorted(ivs)), a.null and b.null)


def _minus(a: _Set, b: _Set) -> _Set:
    gaps, start = [], _NEG_INF
    for lo, hi in b.ivs:
        if start < lo:
            gaps.append((start, lo))
        start = hi
    if start < _POS_INF:
        gaps.append((start, _POS_INF))
    return _Set(_intersect(a, _Set(tuple(gaps))).ivs, a.null and not b.null)


@dataclass(frozen=True)
class _Domain:
    type: Type
    universe: _Set  # every non-null value
    default: Any  # example value when any value will do

    @property
    def discrete(self) -> bool:
        return self.type in (Type.DATE, Type.BOOLEAN)

    def cut(self, value: Any, above: bool) -> Cut:
        if self.type == Type.DATE:
            value = value.toordinal()
        key = int(value) if self.type == Type.BOOLEAN else value
        return (1, key + 1, 0) if self.discrete and above else (1, key, int(above))

    def everything(self) -> _Set:
        return _Set(self.universe.ivs, True)

    def pick(self, s: _Set) -> Any:
        """A readable value in the set, preferring non-null ones; `default` when the set holds every value."""
        if not s.ivs:
            return None
        lo, hi = s.ivs[0]
        if self.discrete:
            first, last = self.universe.ivs[0]
            if lo == first and hi == last:
                return self.default
            key = lo[1] if lo != first else hi[1] - 1
            return dt.date.fromordinal(key) if self.type == Type.DATE else bool(key)
        if lo[0] == 1 and lo[2] == 0:
            return lo[1]
        if hi[0] == 1 and hi[2] == 1:
            return hi[1]
        if self.type == Type.STRING or (lo[0] != 1 and hi[0] != 1):
            return self.default
        if lo[0] == hi[0] == 1:
            return (lo[1] + hi[1]) / 2
        return lo[1] + 1 if lo[0] == 1 else hi[1] - 1


_LINE = _Set(((_NEG_INF, _POS_INF),))
_LAST_DAY = dt.date.max.toordinal()
_DOMAINS = {
    Type.NUMBER: _Domain(Type.NUMBER, _LINE, 0.0),
    Type.STRING: _Domain(Type.STRING, _LINE, OTHER_TEXT),
    Type.DATE: _Domain(Type.DATE, _Set((((1, 1, 0), (1, _LAST_DAY + 1, 0)),)), dt.date(2024, 1, 1)),
    Type.BOOLEAN: _Domain(Type.BOOLEAN, _Set((((1, 0, 0), (1, 2, 0)),)), True),
}


def _constant(node: ast.Node, type_: Type) -> Any:
    """The literal value of an endpoint (None for null), or UNKNOWN."""
    negative = isinstance(node, ast.Negate)
    if negative:
        node = node.operand
    if not isinstance(node, ast.Literal):
        return UNKNOWN
    if node.value is None:
        return None
    if node.literal_type != type_ or (negative and type_ != Type.NUMBER):
        return UNKNOWN
    return -node.value if negative else node.value


# A test's truth over the domain, FEEL-style: (where it is true, where it is false); elsewhere it is null.
_Truth = tuple[_Set, _Set]


def _compare(op: str, value: Any, dom: _Domain) -> _Truth:
    if op in ("=", "!="):
        if value is None:
            true, false = _Set((), True), dom.universe
        else:
            true = _Set(((dom.cut(value, False), dom.cut(value, True)),))
            false = _Set(_minus(dom.universe, true).ivs, True)  # equality is total: null = "a" is false
        return (true, false) if op == "=" else (false, true)
    if value is None:
        return _Set(()), _Set(())  # ordering against null is null everywhere
    if op.startswith("<"):
        ray = (_NEG_INF, dom.cut(value, op == "<="))
    else:
        ray = (dom.cut(value, op == ">"), _POS_INF)
    true = _intersect(dom.universe, _Set((ray,)))
    return true, _minus(dom.universe, true)  # null input: null, neither true nor false


def _test(test: ast.Node, dom: _Domain) -> _Truth | None:
    if isinstance(test, ast.CompareTest):
        value = _constant(test.endpoint, dom.type)
        return None if value is UNKNOWN else _compare(test.op, value, dom)
    if isinstance(test, ast.IntervalTest):
        low, high = _constant(test.low, dom.type), _constant(test.high, dom.type)
        if low is UNKNOWN or high is UNKNOWN:
            return None
        above = _compare(">=" if test.low_closed else ">", low, dom)
        below = _compare("<=" if test.high_closed else "<", high, dom)
        return _intersect(above[0], below[0]), _union(above[1], below[1])
    if isinstance(test, ast.ValueTest) and not test.is_condition:
        value = _constant(test.expr, dom.type)
        return None if value is UNKNOWN else _compare("=", value, dom)
    return None


def _cell(tests: ast.UnaryTests, dom: _Domain | None) -> _Set | None:
    """The values of its input a cell matches, or None when that depends on data."""
    if tests.is_any:
        return dom.everything() if dom else _Set((), True)
    if dom is None:
        return None
    true, false = _Set(()), dom.everything()
    for test in tests.tests:
        truth = _test(test, dom)
        if truth is None:
            return None
        true, false = _union(true, truth[0]), _intersect(false, truth[1])
    return false if tests.negated else true


def _meets(a: Box, b: Box) -> bool:
    return all(not _intersect(x, y).empty() for x, y in zip(a, b, strict=True))


def _difference(a: Box, b: Box) -> list[Box]:
    """a minus b as disjoint boxes: piece i agrees with b on inputs before i and differs on input i."""
    pieces, head = [], list(a)
    for i in range(len(a)):
        rest = _minus(a[i], b[i])
        if not rest.empty():
            pieces.append((*head[:i], rest, *a[i + 1 :]))
        head[i] = _intersect(a[i], b[i])
    return pieces


def _subtract(box: Box, rows: list[tuple[str, Box]]) -> tuple[list[Box], list[str]] | None:
    """What of `box` none of the rows match and which rows took a part of it; None past MAX_BOXES pieces."""
    remaining: list[Box] = [] if any(s.empty() for s in box) else [box]
    used = []
    for row_id, other in rows:
        if not remaining:
            break
        pieces: list[Box] = []
        for part in remaining:
            if _meets(part, other):
                pieces += _difference(part, other)
                if row_id not in used:
                    used.append(row_id)
            else:
                pieces.append(part)
        if len(pieces) > MAX_BOXES:
            return None
        remaining = pieces
    return remaining, used


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return "any other text" if value == OTHER_TEXT else f'"{value}"'
    return str(value)


def _example(box: Box, domains: list[_Domain | None]) -> dict[int, Any]:
    return {i: dom.pick(s) if dom else None for i, (s, dom) in enumerate(zip(box, domains, strict=True))}


def _point(example: dict[int, Any], names: Sequence[str]) -> str:
    return ", ".join(f"{names[i]} = {_show(v)}" for i, v in example.items()) or "any account"


def _rows(ids: Sequence[str]) -> str:
    if len(ids) == 1:
        return f"row {ids[0]}"
    return f"rows {', '.join(ids[:-1])} and {ids[-1]}"


def _overlaps(policy: str, rows: list[Row], ids: list[str], outputs: list[list[object]],
              domains: list[_Domain | None], names: Sequence[str]) -> list[Finding]:
    found = []
    for a, b in itertools.combinations(range(len(rows)), 2):
        if None in rows[a] or None in rows[b]:
            continue  # a cell that depends on data: overlap cannot be proven
        common = tuple(_intersect(x, y) for x, y in zip(rows[a], rows[b], strict=True))
        if any(s.empty() for s in common):
            continue
        example = _example(common, domains)
        pair, point = (ids[a], ids[b]), _point(example, names)
        if policy == "UNIQUE":
            found.append(Finding("overlap", pair, f"{_rows(pair)} overlap: both match {point}; "
                                 "under UNIQUE only one row may match", "error", example))
            continue
        for j, (x, y) in enumerate(zip(outputs[a], outputs[b], strict=True)):
            if x is not UNKNOWN and y is not UNKNOWN and x != y:
                message = (f"{_rows(pair)} both match {point} but give different results (output {j + 1}: "
                           f"{_show(x)} vs {_show(y)}); under ANY rows matching the same account must agree")
                found.append(Finding("conflict", pair, message, "error", example))
                break
    return found


def _whole(row: Row, domains: list[_Domain | None]) -> Box:
    """A row's box with every data-dependent cell widened to match anything."""
    return tuple(
        c if c is not None else dom.everything() if dom else _Set((), True)
        for c, dom in zip(row, domains, strict=True)
    )


def _unreachable(rows: list[Row], ids: list[str], domains: list[_Domain | None]) -> list[Finding]:
    found = []
    for r, row in enumerate(rows):
        earlier = [(ids[k], tuple(rows[k])) for k in range(r) if None not in rows[k]]
        result = _subtract(_whole(row, domains), earlier)
        if result is None or result[0]:
            continue
        used = result[1]
        if used:
            message = (f"row {ids[r]} can never be chosen: every account it matches is matched first by "
                       f"{_rows(used)}; under FIRST the earliest matching row wins")
        else:
            message = f"row {ids[r]} can never match: no value passes all of its input tests"
        found.append(Finding("unreachable", (*used, ids[r]), message, "warning"))  # the row itself last
    return found


def _gaps(rows: list[Row], ids: list[str], domains: list[_Domain | None], names: Sequence[str]) -> list[Finding]:
    universe = tuple(dom.universe if dom else _Set(()) for dom in domains)
    result = _subtract(universe, [(i, _whole(row, domains)) for i, row in zip(ids, rows, strict=True)])
    if result is None or not result[0]:
        return []
    box = result[0][0]
    example = _example(box, domains)
    message = (f"no row matches some accounts, e.g. {_point(example, names)}; add a row for them "
               "or give the output a default")
    return [Finding("gap", (), message, "warning", example)]


def analyse(hit_policy: str, input_types: list[Type], cells: list[list[ast.UnaryTests]], row_ids: list[str],
            outputs: list[list[object]], needs_coverage: bool,
            input_names: Sequence[str] | None = None) -> list[Finding]:
    """Findings about a decision table's rows, from its parsed and type-checked input cells alone.
    `input_names` name the inputs in messages (default: "input 1", "input 2", ...)."""
    names = list(input_names) if input_names else [f"input {k + 1}" for k in range(len(input_types))]
    if hit_policy not in HIT_POLICIES:
        raise ValueError(f"unknown hit policy {hit_policy!r}")
    if not len(cells) == len(row_ids) == len(outputs):
        raise ValueError("cells, row_ids and outputs must have one entry per row")
    domains = [_DOMAINS.get(t) for t in input_types]
    rows = [[_cell(c, dom) for c, dom in zip(row, domains, strict=True)] for row in cells]
    findings = []
    if hit_policy in ("UNIQUE", "ANY"):
        findings += _overlaps(hit_policy, rows, row_ids, outputs, domains, names)
    if hit_policy == "FIRST":
        findings += _unreachable(rows, row_ids, domains)
    if needs_coverage:
        findings += _gaps(rows, row_ids, domains, names)
    return findings
