"""Semantic diff of two rule books (rules, rows, moved thresholds, bands, fields, raw text) and the blame-able
elements of each rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from marshmallow import ValidationError

from . import schemas, yamlsource
from .errors import ExpressionError, Problem
from .expressions import ast
from .expressions.parser import parse_unary_tests
from .expressions.types import Type
from .kinds.base import cell_text
from .rulebook import TESTS_DIR

ANY = "-"
ALIKE = 0.5  # two unnamed rows/bands at least this alike (see _likeness) are one element, changed
MAX_PAIRINGS = 250_000  # a block of rows rewritten wholesale beyond this is reported as removed + added
CACHED_FILES = 512  # parsed rule files kept, by content
LOWER_BOUNDS = (">", ">=")
UPPER_BOUNDS = ("<", "<=")


# --- the diff, as data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A numeric (or date) bound of a comparison or interval that moved while the rest of the cell stayed."""

    op: str  # the comparison the bound belongs to: >, >=, <, <= (an interval's ends read as two comparisons)
    old: Any
    new: Any
    direction: str  # raised | lowered
    effect: str  # widened | narrowed: more or fewer values pass the test

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "old": _plain(self.old), "new": _plain(self.new), "direction": self.direction,
                "effect": self.effect}


@dataclass(frozen=True)
class Change:
    """One property or cell, old → new (None: not there). `field` is e.g. `hit_policy`, `label.en`,
    `when.revenue_12m` (an input cell), `then.tier` (an output cell), `note`, `points`, `share`, `min`."""

    field: str
    old: Any
    new: Any
    thresholds: tuple[Threshold, ...] = ()
    direction: str | None = None  # raised | lowered, when both values are numbers

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": _plain(self.old), "new": _plain(self.new),
                "thresholds": [t.to_dict() for t in self.thresholds], "direction": self.direction}


@dataclass(frozen=True)
class ItemDiff:
    """A row, input, output, indicator, band, cut-off, formula or dictionary field that was added, removed,
    changed or moved. `section` names the list it sits in (`rows`, `inputs`, `outputs`, `indicators`,
    `indicators.<name>.bands`, `cutoffs`, `bands`, `formulas`, `fields`); `label_a` / `label_b` name it on
    each side as people and the engine do (row id or r<n>, name, band position); positions are 1-based.
    `moved` means its order relative to the other elements changed (it matters under FIRST, for bands...)."""

    section: str
    status: str  # added | removed | changed | moved
    label_a: str | None
    label_b: str | None
    position_a: int | None
    position_b: int | None
    moved: bool
    changes: tuple[Change, ...] = ()
    cells: dict[str, Any] | None = None  # the whole element, when added or removed

    @property
    def label(self) -> str:
        return self.label_b if self.label_b is not None else str(self.label_a)

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "status": self.status, "label": self.label, "label_a": self.label_a,
                "label_b": self.label_b, "position_a": self.position_a, "position_b": self.position_b,
                "moved": self.moved, "changes": [c.to_dict() for c in self.changes],
                "cells": None if self.cells is None else {k: _plain(v) for k, v in self.cells.items()}}


@dataclass(frozen=True)
class RuleDiff:
    """What happened to one rule: added, removed, changed, or moved (to another file, otherwise unchanged).
    A changed rule may have moved file too (`file_a != file_b`)."""

    rule: str
    kind: str
    status: str  # added | removed | changed | moved
    file_a: str | None
    file_b: str | None
    label: dict[str, str]
    changes: tuple[Change, ...] = ()
    items: tuple[ItemDiff, ...] = ()

    @property
    def moved_file(self) -> bool:
        return self.file_a is not None and self.file_b is not None and self.file_a != self.file_b

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "kind": self.kind, "status": self.status, "file_a": self.file_a,
                "file_b": self.file_b, "moved_file": self.moved_file, "label": dict(self.label),
                "changes": [c.to_dict() for c in self.changes], "items": [i.to_dict() for i in self.items]}


@dataclass(frozen=True)
class FileDiff:
    """The raw unified text diff of one file (rule files, the dictionary and rule tests alike)."""

    path: str
    status: str  # added | removed | changed
    added_lines: int
    removed_lines: int
    diff: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BookDiff:
    """The semantic diff of two rule books plus the raw diff of each file. `problems` names files or rules
    that could not be read (those are left out of the semantic diff; their raw diff is still there)."""

    rules: tuple[RuleDiff, ...]
    fields: tuple[ItemDiff, ...]
    files: tuple[FileDiff, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.rules or self.fields or self.files)

    def rule(self, rule_id: str) -> RuleDiff | None:
        return next((r for r in self.rules if r.rule == rule_id), None)

    @property
    def thresholds(self) -> list[tuple[str, ItemDiff, Change, Threshold]]:
        """Every moved threshold: (rule id, element, cell, threshold)."""
        return [(r.rule, item, c, t) for r in self.rules for item in r.items for c in item.changes
                for t in c.thresholds]

    def summary(self) -> dict[str, int]:
        count = _zero_counts()
        for r in self.rules:
            count[f"rules_{r.status}"] += 1
            for item in r.items:
                if item.section == "rows":
                    count[f"rows_{item.status}"] += 1
        for f in self.fields:
            count[f"fields_{f.status}"] += 1
        count["thresholds_moved"] = len(self.thresholds)
        count["files_changed"] = len(self.files)
        return count

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary(), "rules": [r.to_dict() for r in self.rules],
                "fields": [f.to_dict() for f in self.fields], "files": [f.to_dict() for f in self.files],
                "problems": [p.to_dict() for p in self.problems]}

    def text(self, lang: str = "en", raw: bool = False) -> str:
        """A readable account of the changes, in English or 中文; `raw` appends each file's text diff."""
        return _render(self, lang if lang in _WORDS else "en", raw)

    def __str__(self) -> str:
        return self.text()


def _zero_counts() -> dict[str, int]:
    keys = [f"{what}_{status}" for what in ("rules", "rows", "fields")
            for status in ("added", "removed", "changed", "moved")]
    return dict.fromkeys(keys, 0)


# --- reading rule books into comparable shapes ---------------------------------------------------------------


@dataclass
class _Item:
    """One element of a list inside a rule: its written identity (row id, name; None if it has none), the
    label people see, and its cells in display order."""

    key: str | None
    label: str
    cells: dict[str, Any]

    @cached_property
    def content(self) -> str:
        return json.dumps({k: _plain(v) for k, v in self.cells.items()}, sort_keys=True, ensure_ascii=False)


@dataclass
class _Section:
    name: str
    items: list[_Item]
    element: str | None = None  # prefix of the blame element keys; None: part of the rule header
    ordered: bool = True  # whether the order of the items means something (first matching row or band wins)


@dataclass
class _Rule:
    id: str
    kind: str
    file: str
    position: int
    label: dict[str, str]
    props: dict[str, Any]
    sections: list[_Section]


@dataclass
class _Book:
    rules: dict[str, _Rule] = field(default_factory=dict)
    fields: list[tuple[str, _Item]] = field(default_factory=list)  # (file, field)
    problems: list[Problem] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)


def _read(files: Mapping[str, str]) -> _Book:
    """The rule documents and dictionary fields of a book given as {path: YAML text}, as `_Loader` reads them
    (files under tests/ are rule tests, not rules). Files that are not YAML are noted and left out."""
    book = _Book()
    for path in sorted(files):
        if path.startswith(TESTS_DIR + "/"):
            continue
        found = _read_file(path, files[path])
        if isinstance(found, Problem):
            book.problems.append(found)
            book.unreadable.add(path)
            continue
        entries, fields = found
        book.fields += [(path, f) for f in fields]
        for entry in entries:
            if isinstance(entry, Problem):
                book.problems.append(entry)
            elif entry.id in book.rules:
                book.problems.append(Problem(f"rule id {entry.id!r} is used twice; the second is left out", path,
                                             rule=entry.id, severity="warning"))
            else:
                book.rules[entry.id] = entry
    return book


def _read_file(path: str, text: str) -> Problem | tuple[tuple[_Rule | Problem, ...], tuple[_Item, ...]]:
    """One file's rules (and warnings about them) and dictionary fields, or why it is not YAML. Cached by
    content: a walk through history reads the same file texts over and over, and YAML parsing is most of
    the cost. (Keyed by digest, so the cache never holds the texts themselves.)"""
    key = (path, hashlib.sha256(text.encode("utf-8")).hexdigest())
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
            return found
    found = _parse_file(path, text)
    with _CACHE_LOCK:
        _CACHE[key] = found
        while len(_CACHE) > CACHED_FILES:
            _CACHE.popitem(last=False)
    return found


_CACHE: OrderedDict[tuple[str, str], Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _parse_file(path: str, text: str) -> Problem | tuple[tuple[_Rule | Problem, ...], tuple[_Item, ...]]:
    try:
        data, _ = yamlsource.load(text, path)
    except yamlsource.YamlError as e:
        return e.problem
    if not isinstance(data, dict):
        return (), ()
    raw_fields = data["fields"] if isinstance(data.get("fields"), list) else []
    fields = tuple(_field(f) for f in raw_fields if isinstance(f, dict) and "name" in f)
    entries: list[_Rule | Problem] = []
    if isinstance(data.get("rules"), list):
        for position, doc in enumerate(data["rules"]):
            entries += _rule(doc, path, position)
    return tuple(entries), fields


def _rule(doc: Any, path: str, position: int) -> list[_Rule | Problem]:
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return [Problem(f"rule {position + 1} has no id; left out of the comparison", path, severity="warning")]
    rule_id = doc["id"]
    kind = str(doc.get("kind"))
    schema = schemas.RULE_SCHEMAS.get(kind)
    try:
        spec = schema().load(doc) if schema else None
    except ValidationError:
        spec = None
    if spec is None:
        props = _flatten({k: v for k, v in doc.items() if k not in ("id", "kind")})
        label = doc.get("label") if isinstance(doc.get("label"), dict) else {"zh": str(doc.get("label"))}
        return [Problem("rule does not follow its schema; compared as plain YAML", path, rule=rule_id,
                        severity="warning"), _Rule(rule_id, kind, path, position, label, props, [])]
    props, sections = _SHAPES[kind](spec)
    props = {**_label("label", spec["label"]), "description": spec.get("description", "").strip() or None,
             **({"area": spec["area"]} if "area" in spec else {}), **props}
    return [_Rule(rule_id, kind, path, position, spec["label"], props, sections)]


def _label(prefix: str, label: dict[str, str] | None) -> dict[str, str | None]:
    label = label or {}
    return {f"{prefix}.zh": label.get("zh"), f"{prefix}.en": label.get("en")}


def _compact(cells: dict[str, Any]) -> dict[str, Any]:
    """Cells without the empty ones: an absent label or an any (`-`) input cell is the same as none written."""
    return {k: v for k, v in cells.items() if v is not None and v != [] and not (_is_test(k) and v == ANY)}


def _field(raw: dict) -> _Item:
    try:
        spec = schemas.FieldSchema().load(raw)
    except ValidationError:
        spec = raw
    cells = {"type": spec.get("type"), "unit": spec.get("unit"),
             **_label("label", spec.get("label") if isinstance(spec.get("label"), dict) else None),
             "description": spec.get("description"), "aliases": spec.get("aliases"), "values": spec.get("values")}
    return _Item(str(spec["name"]), str(spec["name"]), _compact(cells))


def _table_shape(spec: dict) -> tuple[dict[str, Any], list[_Section]]:
    inputs = [_Item(_input_name(s), _input_name(s), _compact({"expr": s["expr"], **_label("label", s.get("label")),
                                                               "values": s.get("values")}))
              for s in spec["inputs"]]
    outputs = [_Item(o["name"], o["name"], _compact({"type": o.get("type"), **_label("label", o.get("label")),
                                                      "values": o.get("values"), "default": o.get("default")}))
               for o in spec["outputs"]]
    names = [o["name"] for o in spec["outputs"]]
    order = [i.key for i in inputs]
    rows = []
    for r, row in enumerate(spec["rows"]):
        when = row["when"]
        cells = {f"when.{k}": cell_text(when[k]).strip() for k in sorted(when, key=lambda k: _rank(order, k))}
        then = row["then"] if isinstance(row["then"], dict) else {names[0] if len(names) == 1 else "": row["then"]}
        cells.update({f"then.{k}": v for k, v in then.items()})
        cells["note"] = row.get("note")
        rows.append(_Item(row.get("id"), row.get("id") or f"r{r + 1}", _compact(cells)))
    props = {"hit_policy": spec["hit_policy"], "aggregation": spec.get("aggregation")}
    return props, [_Section("inputs", inputs, ordered=False), _Section("outputs", outputs, ordered=False),
                   _Section("rows", rows, "row")]


def _input_name(s: dict) -> str:
    return s.get("name") or str(s["expr"]).strip()


def _rank(order: list[str | None], key: str) -> tuple[int, str]:
    return (order.index(key) if key in order else len(order), key)


def _scorecard_shape(spec: dict) -> tuple[dict[str, Any], list[_Section]]:
    indicators = [_Item(i["name"], i["name"], _compact({"expr": i["expr"], "weight": i["weight"],
                                                        **_label("label", i.get("label")),
                                                        "missing_points": i.get("missing_points")}))
                  for i in spec["indicators"]]
    sections = [_Section("indicators", indicators, ordered=False)]
    for ind in spec["indicators"]:
        bands = [_Item(None, str(b + 1), _compact({"when": cell_text(band["when"]).strip(), "points": band["points"],
                                                   "note": band.get("note")}))
                 for b, band in enumerate(ind["bands"])]
        sections.append(_Section(f"indicators.{ind['name']}.bands", bands, f"band:{ind['name']}"))
    props = {"score.name": spec["score"]["name"], **_label("score.label", spec["score"].get("label"))}
    grade = spec.get("grade")
    if grade:
        props.update({"grade.name": grade["name"], **_label("grade.label", grade.get("label"))})
        # A cut-off is the test `score >= min`, so a moved minimum reads as a moved threshold.
        cutoffs = [_Item(None, str(c["grade"]), {"min": ANY if c.get("min") is None else f">= {_show(c['min'])}",
                                                 "grade": c["grade"]})
                   for c in grade["cutoffs"]]
        sections.append(_Section("cutoffs", cutoffs, "cutoff"))
    return props, sections


def _ranking_shape(spec: dict) -> tuple[dict[str, Any], list[_Section]]:
    props = {"method": spec["method"], "measure": spec["measure"], "order": spec["order"],
             "within": spec.get("within"), "ties": spec["ties"],
             "tie_break": ", ".join(str(t) for t in spec["tie_break"]) or None,
             "output.name": spec["output"]["name"], **_label("output.label", spec["output"].get("label"))}
    bands = [_Item(str(b["label"]), str(b["label"]), {"share": b["share"]}) for b in spec["bands"]]
    return props, [_Section("bands", bands, "band")]


def _formula_shape(spec: dict) -> tuple[dict[str, Any], list[_Section]]:
    formulas = [_Item(name, name, _compact({"expr": f["expr"], "type": f.get("type"), **_label("label", f.get("label")),
                                             "unit": f.get("unit"), "description": f.get("description")}))
                for name, f in spec["formulas"].items()]
    return {}, [_Section("formulas", formulas, "formula", ordered=False)]


_SHAPES = {"decision_table": _table_shape, "scorecard": _scorecard_shape, "ranking": _ranking_shape,
           "formula": _formula_shape}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}.{i + 1}"))
        return out
    return {prefix: value}


# --- thresholds ----------------------------------------------------------------------------------------------


def _is_test(key: str) -> bool:
    return key in ("when", "min") or key.startswith("when.")


@lru_cache(maxsize=4096)
def _bounds(text: str) -> tuple[str, tuple[tuple[str, Any], ...], bool] | None:
    """A unary-test cell as (its shape with every literal bound blanked, the bounds in order, negated), or
    None when the text does not parse."""
    try:
        tree = parse_unary_tests(text)
    except ExpressionError:
        return None
    bounds: list[tuple[str, Any]] = []
    return repr(_shape(tree, bounds)), tuple(bounds), tree.negated


def _shape(node: Any, bounds: list[tuple[str, Any]]) -> Any:
    if isinstance(node, ast.CompareTest) and node.op in LOWER_BOUNDS + UPPER_BOUNDS and _bound(node.endpoint):
        value = _bound(node.endpoint)[0]
        bounds.append((node.op, value))
        return ("compare", node.op, type(value).__name__)
    if isinstance(node, ast.IntervalTest):
        ends = []
        for end, op in ((node.low, ">=" if node.low_closed else ">"), (node.high, "<=" if node.high_closed else "<")):
            if _bound(end):
                value = _bound(end)[0]
                bounds.append((op, value))
                ends.append((op, type(value).__name__))
            else:
                ends.append((op, _shape(end, bounds)))
        return ("interval", *ends)
    if isinstance(node, ast.Node):
        parts = [type(node).__name__]
        for f in dataclasses.fields(node):
            if f.name not in ("pos", "type"):
                parts.append(_shape(getattr(node, f.name), bounds))
        return tuple(parts)
    if isinstance(node, list):
        return tuple(_shape(n, bounds) for n in node)
    return node


def _bound(node: ast.Node) -> tuple[Any] | None:
    """The value of a literal number or date endpoint (a negated number too), as a 1-tuple; else None."""
    if isinstance(node, ast.Literal) and node.literal_type in (Type.NUMBER, Type.DATE):
        return (node.value,)
    if isinstance(node, ast.Negate) and isinstance(node.operand, ast.Literal) \
            and node.operand.literal_type == Type.NUMBER:
        return (-node.operand.value,)
    return None


def thresholds(old: str, new: str) -> tuple[Threshold, ...]:
    """The bounds that moved between two unary-test cells that are otherwise the same (same operators, same
    open/closed ends, same values elsewhere): `>= 5000000` → `>= 4000000` is one threshold, lowered, widened.
    Empty when the cells differ in anything else."""
    a, b = _bounds(str(old).strip()), _bounds(str(new).strip())
    if a is None or b is None or a[0] != b[0] or a[1] == b[1]:
        return ()
    negated = a[2]
    moved = []
    for (op, before), (_, after) in zip(a[1], b[1], strict=True):
        if before == after:
            continue
        raised = after > before
        widened = raised != (op in LOWER_BOUNDS)
        moved.append(Threshold(op, before, after, "raised" if raised else "lowered",
                               "widened" if widened != negated else "narrowed"))
    return tuple(moved)


# --- comparing -----------------------------------------------------------------------------------------------


def _absent(key: str) -> Any:
    return ANY if _is_test(key) else None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _change(key: str, old: Any, new: Any) -> Change:
    moved = thresholds(old, new) if _is_test(key) and isinstance(old, str) and isinstance(new, str) else ()
    direction = None
    if _is_number(old) and _is_number(new):
        direction = "raised" if new > old else "lowered"
    return Change(key, old, new, moved, direction)


def _changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[Change, ...]:
    keys = list(a) + [k for k in b if k not in a]
    out = []
    for k in keys:
        old, new = a.get(k, _absent(k)), b.get(k, _absent(k))
        if not _same(old, new):
            out.append(_change(k, old, new))
    return tuple(out)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def _likeness(a: _Item, b: _Item) -> float:
    """How alike two elements are, 0..1: the share of equal cells (a moved threshold counting ¾), where
    the conditions (`when`) weigh three times the rest, as they say which accounts the element is about."""
    keys = set(a.cells) | set(b.cells)
    tests = [k for k in keys if _is_test(k)]
    rest = [k for k in keys if not _is_test(k)]
    if not tests or not rest:
        return _equal_share(a, b, tests or rest)
    return 0.75 * _equal_share(a, b, tests) + 0.25 * _equal_share(a, b, rest)


def _equal_share(a: _Item, b: _Item, keys: list[str]) -> float:
    if not keys:
        return 1.0
    score = 0.0
    for k in keys:
        old, new = a.cells.get(k, _absent(k)), b.cells.get(k, _absent(k))
        if _same(old, new):
            score += 1
        elif _is_test(k) and isinstance(old, str) and isinstance(new, str) and thresholds(old, new):
            score += 0.75  # the same test with a bound moved: still much the same condition
    return score / len(keys)


def _align(a: list[_Item], b: list[_Item]) -> list[tuple[int | None, int | None]]:
    """Which element of `a` each element of `b` is: pairs (i, j), with (i, None) removed and (None, j) added.

    Elements with a written identity (row id, name) pair by it. The others pair by content: runs of equal
    elements (difflib), then within each rewritten block the most alike ones in order (at least ALIKE),
    then any identical element that moved elsewhere. Two elements with different written ids never pair."""
    pairs: dict[int, int] = {}
    keyed = {}
    for j, item in enumerate(b):
        if item.key is not None:
            keyed.setdefault(item.key, j)
    for i, item in enumerate(a):
        j = keyed.get(item.key) if item.key is not None else None
        if j is not None and j not in pairs.values():
            pairs[i] = j

    def pairable(i: int, j: int) -> bool:
        return a[i].key is None or b[j].key is None

    rest_a = [i for i in range(len(a)) if i not in pairs]
    taken = set(pairs.values())
    rest_b = [j for j in range(len(b)) if j not in taken]
    matcher = difflib.SequenceMatcher(None, [a[i].content for i in rest_a], [b[j].content for j in rest_b],
                                      autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs.update({i: j for i, j in zip(rest_a[i1:i2], rest_b[j1:j2], strict=True) if pairable(i, j)})
        elif tag == "replace":
            pairs.update(_most_alike(a, b, rest_a[i1:i2], rest_b[j1:j2], pairable))
    taken = set(pairs.values())
    for i in (i for i in range(len(a)) if i not in pairs):
        j = next((j for j in range(len(b)) if j not in taken and a[i].content == b[j].content and pairable(i, j)),
                 None)
        if j is not None:
            pairs[i] = j
            taken.add(j)
    added = ((None, j) for j in range(len(b)) if j not in taken)
    result: list[tuple[int | None, int | None]] = sorted([*pairs.items(), *added], key=lambda p: p[1])
    return result + [(i, None) for i in range(len(a)) if i not in pairs]


def _most_alike(a: list[_Item], b: list[_Item], ia: list[int], jb: list[int], pairable: Any) -> dict[int, int]:
    """Pairs within a rewritten block, in order, maximising total likeness (an LCS weighted by likeness)."""
    m, n = len(ia), len(jb)
    if m * n > MAX_PAIRINGS:
        return {}
    like = [[_likeness(a[i], b[j]) if pairable(i, j) else 0.0 for j in jb] for i in ia]
    best = [[0.0] * (n + 1) for _ in range(m + 1)]
    for x in range(m - 1, -1, -1):
        for y in range(n - 1, -1, -1):
            score = max(best[x + 1][y], best[x][y + 1])
            if like[x][y] >= ALIKE:
                score = max(score, best[x + 1][y + 1] + like[x][y])
            best[x][y] = score
    out, x, y = {}, 0, 0
    while x < m and y < n:
        if like[x][y] >= ALIKE and best[x][y] == best[x + 1][y + 1] + like[x][y]:
            out[ia[x]] = jb[y]
            x, y = x + 1, y + 1
        elif best[x][y] == best[x + 1][y]:
            x += 1
        else:
            y += 1
    return out


def _moved(pairs: list[tuple[int, int]]) -> set[int]:
    """The `a` indexes of pairs whose relative order changed: those outside a longest run kept in order."""
    ordered = sorted(pairs)
    tails: list[int] = []  # index into `ordered` of the smallest tail of an increasing run of each length
    back = [-1] * len(ordered)
    for k, (_, j) in enumerate(ordered):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if ordered[tails[mid]][1] < j:
                lo = mid + 1
            else:
                hi = mid
        back[k] = tails[lo - 1] if lo else -1
        if lo == len(tails):
            tails.append(k)
        else:
            tails[lo] = k
    kept = set()
    k = tails[-1] if tails else -1
    while k >= 0:
        kept.add(ordered[k][0])
        k = back[k]
    return {i for i, _ in ordered} - kept


def _diff_items(section: str, a: list[_Item], b: list[_Item], ordered: bool = True) -> list[ItemDiff]:
    aligned = _align(a, b)
    moved = _moved([(i, j) for i, j in aligned if i is not None and j is not None]) if ordered else set()
    out = []
    for i, j in aligned:
        if j is None:
            out.append(ItemDiff(section, "removed", a[i].label, None, i + 1, None, False, (), dict(a[i].cells)))
        elif i is None:
            out.append(ItemDiff(section, "added", None, b[j].label, None, j + 1, False, (), dict(b[j].cells)))
        else:
            changes = _changes(a[i].cells, b[j].cells)
            if changes or i in moved:
                out.append(ItemDiff(section, "changed" if changes else "moved", a[i].label, b[j].label, i + 1,
                                    j + 1, i in moved, changes))
    return out


def _diff_rule(a: _Rule, b: _Rule) -> RuleDiff | None:
    """What changed in a rule present in both books; None when nothing did."""
    changes = (Change("kind", a.kind, b.kind),) if a.kind != b.kind else ()
    changes += _changes(a.props, b.props)
    items: list[ItemDiff] = []
    sections_a = {s.name: s for s in a.sections}
    sections_b = {s.name: s for s in b.sections}
    for name in list(sections_a) + [n for n in sections_b if n not in sections_a]:
        section = sections_b.get(name) or sections_a[name]
        items += _diff_items(name, sections_a[name].items if name in sections_a else [],
                             sections_b[name].items if name in sections_b else [], section.ordered)
    if not (changes or items or a.file != b.file):
        return None
    status = "changed" if changes or items else "moved"
    return RuleDiff(b.id, b.kind, status, a.file, b.file, dict(b.label), changes, tuple(items))


def diff_books(files_a: Mapping[str, str], files_b: Mapping[str, str]) -> BookDiff:
    """The semantic diff from book `a` to book `b`, each given as {path: YAML text} (paths relative to the book's
    root; files under tests/ are rule tests and only get a raw diff). Rules pair by id wherever they sit;
    table rows by their `id`, else by content; inputs, outputs, indicators, formulas, ranking bands and fields by
    name; scorecard bands and cut-offs by content. A file that is not valid YAML on either side is named in
    `problems` and left out of the semantic diff on both sides."""
    first, second = _read(files_a), _read(files_b)
    skip = first.unreadable | second.unreadable
    rules_a = {k: r for k, r in first.rules.items() if r.file not in skip}
    rules_b = {k: r for k, r in second.rules.items() if r.file not in skip}
    found = []
    for rule_id, rb in rules_b.items():
        ra = rules_a.get(rule_id)
        found.append(RuleDiff(rule_id, rb.kind, "added", None, rb.file, dict(rb.label)) if ra is None
                     else _diff_rule(ra, rb))
    found += [RuleDiff(rule_id, ra.kind, "removed", ra.file, None, dict(ra.label))
              for rule_id, ra in rules_a.items() if rule_id not in rules_b]
    rules = [r for r in found if r is not None]

    def where(r: RuleDiff) -> tuple[bool, str, int]:
        rule = rules_a[r.rule] if r.status == "removed" else rules_b[r.rule]
        return r.status == "removed", rule.file, rule.position

    rules.sort(key=where)
    fields = _diff_items("fields", [item for path, item in first.fields if path not in skip],
                         [item for path, item in second.fields if path not in skip], ordered=False)
    return BookDiff(tuple(rules), tuple(fields), tuple(_file_diffs(files_a, files_b)),
                    tuple(_unique(first.problems + second.problems)))


def _unique(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def _file_diffs(files_a: Mapping[str, str], files_b: Mapping[str, str]) -> Iterator[FileDiff]:
    for path in sorted(set(files_a) | set(files_b)):
        old, new = files_a.get(path), files_b.get(path)
        if old == new:
            continue
        lines = list(difflib.unified_diff((old or "").splitlines(), (new or "").splitlines(),
                                          "/dev/null" if old is None else f"a/{path}",
                                          "/dev/null" if new is None else f"b/{path}", lineterm=""))
        added = sum(1 for line in lines[2:] if line.startswith("+"))
        removed = sum(1 for line in lines[2:] if line.startswith("-"))
        status = "added" if old is None else "removed" if new is None else "changed"
        yield FileDiff(path, status, added, removed, "\n".join(lines) + "\n" if lines else "")


# --- blame elements ------------------------------------------------------------------------------------------


def _element_keys(rule: _Rule) -> dict[tuple[str, int], str]:
    """(section, index) → element key, e.g. `row:r5`, `row:big_accounts`, `band:revenue:2`, `cutoff:A`,
    `band:key`, `formula:gross_margin`. A label written twice gets `#2`, `#3`… so keys stay unique."""
    keys: dict[tuple[str, int], str] = {}
    seen: set[str] = set()
    for s in rule.sections:
        if s.element is None:
            continue
        for index, item in enumerate(s.items):
            key, n = f"{s.element}:{item.label}", 1
            while key in seen:
                n += 1
                key = f"{s.element}:{item.label}#{n}"
            seen.add(key)
            keys[(s.name, index)] = key
    return keys


def elements(files: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """For each rule of a book given as {path: YAML text}: element key → canonical text, one element per
    decision-table row (`row:<id or r<n>>`), scorecard band (`band:<indicator>:<n>`) and grade cut-off
    (`cutoff:<grade>`), ranking band (`band:<label>`), formula (`formula:<name>`), and `header` for everything
    else (label, description, hit policy, inputs, outputs, indicators, measure…). Equal text means the
    element did not change; the text does not depend on key order, quoting style, where the rule sits or
    where an element stands in its list. Files that are not valid YAML contribute nothing."""
    out = {}
    for rule in _read(files).rules.values():
        keys = _element_keys(rule)
        found = {"header": _header_text(rule)}
        for s in rule.sections:
            if s.element is not None:
                found.update({keys[(s.name, k)]: _item_text(item) for k, item in enumerate(s.items)})
        out[rule.id] = found
    return out


def matched_elements(files_a: Mapping[str, str], files_b: Mapping[str, str]) -> dict[str, dict[str, str | None]]:
    """For each rule of book `b`: its element keys → the key of the same element in book `a` (None: new in b).
    Rows without ids are named by position (r5), so a row inserted above renames the ones below; following
    elements through this map from revision to revision keeps blame on the row, not on its position."""
    first, second = _read(files_a), _read(files_b)
    out: dict[str, dict[str, str | None]] = {}
    for rule_id, rb in second.rules.items():
        ra = first.rules.get(rule_id)
        keys_b = _element_keys(rb)
        found: dict[str, str | None] = {"header": "header" if ra else None, **dict.fromkeys(keys_b.values())}
        if ra is not None and ra.kind == rb.kind:
            keys_a = _element_keys(ra)
            sections_a = {s.name: s for s in ra.sections}
            for s in rb.sections:
                if s.element is None or s.name not in sections_a:
                    continue
                for i, j in _align(sections_a[s.name].items, s.items):
                    if i is not None and j is not None:
                        found[keys_b[(s.name, j)]] = keys_a[(s.name, i)]
        out[rule_id] = found
    return out


def _item_text(item: _Item) -> str:
    def order(key: str) -> tuple[int, str]:
        return (0 if key.startswith("when") else 1 if key.startswith("then") else 2, key)

    return "; ".join(f"{k}: {_show(item.cells[k])}" for k in sorted(item.cells, key=order))


def _header_text(rule: _Rule) -> str:
    lines = [f"id: {rule.id}", f"kind: {rule.kind}"]
    lines += [f"{k}: {_show(v)}" for k, v in sorted(rule.props.items()) if v is not None]
    for s in rule.sections:
        if s.element is None:
            lines += [f"{s.name}.{item.label}: {_item_text(item)}" for item in s.items]
    return "\n".join(lines)


# --- values and text -----------------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    """A JSON-ready value: dates as ISO text, whole floats as ints."""
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _show(v: Any) -> str:
    v = _plain(v)
    if v is None:
        return "~"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "rule": "Rule", "added": "added", "removed": "removed", "changed": "changed", "moved": "moved",
        "moved_file": "moved from {a} to {b}", "order": "order {a} → {b}", "raised": "raised", "lowered": "lowered",
        "widened": "matches more", "narrowed": "matches fewer", "threshold": "threshold", "none": "(none)",
        "fields": "Data dictionary", "files": "Files", "nothing": "No changes.", "problems": "Not compared",
        "then": "then ", "rows": "row", "inputs": "input", "outputs": "output", "indicators": "indicator",
        "bands": "band", "cutoffs": "cut-off", "formulas": "formula", "field": "field", "band_of": "band {n} of {x}",
        "lines": "+{a} −{r} lines",
    },
    "zh": {
        "rule": "规则", "added": "新增", "removed": "删除", "changed": "修改", "moved": "移动",
        "moved_file": "从 {a} 移到 {b}", "order": "顺序 {a} → {b}", "raised": "上调", "lowered": "下调",
        "widened": "匹配范围扩大", "narrowed": "匹配范围缩小", "threshold": "阈值", "none": "（无）",
        "fields": "数据字典", "files": "文件", "nothing": "无变更。", "problems": "未比较",
        "then": "输出 ", "rows": "行", "inputs": "输入", "outputs": "输出", "indicators": "指标",
        "bands": "区间", "cutoffs": "等级线", "formulas": "公式", "field": "字段", "band_of": "{x} 区间 {n}",
        "lines": "+{a} −{r} 行",
    },
}


def _render(d: BookDiff, lang: str, raw: bool) -> str:
    w = _WORDS[lang]
    lines: list[str] = []
    for r in d.rules:
        name = (r.label or {}).get(lang)
        head = f"{w['rule']} {r.rule}" + (f" ({name})" if name and name != r.rule else "")
        where = r.file_b or r.file_a
        status = w["moved_file"].format(a=r.file_a, b=r.file_b) if r.status == "moved" else w[r.status]
        lines.append(f"{head} [{where}]: {status}")
        if r.status == "changed" and r.moved_file:
            lines.append("  " + w["moved_file"].format(a=r.file_a, b=r.file_b))
        lines += ["  " + _change_text(c, w) for c in r.changes]
        for item in r.items:
            lines += ["  " + line for line in _item_lines(item, w)]
    if d.fields:
        lines.append(f"{w['fields']}:")
        for item in d.fields:
            lines += ["  " + line for line in _item_lines(item, w)]
    if d.files:
        lines.append(f"{w['files']}:")
        lines += [f"  {f.path}: {w[f.status]} ({w['lines'].format(a=f.added_lines, r=f.removed_lines)})"
                  for f in d.files]
    if d.problems:
        lines.append(f"{w['problems']}:")
        lines += [f"  {p}" for p in d.problems]
    if not lines:
        lines.append(w["nothing"])
    if raw:
        lines += [f.diff.rstrip("\n") for f in d.files]
    return "\n".join(lines)


def _item_name(item: ItemDiff, w: dict[str, str]) -> str:
    if item.section.startswith("indicators.") and item.section.endswith(".bands"):
        return w["band_of"].format(n=item.label, x=item.section.split(".")[1])
    return f"{w.get(item.section, item.section)} {item.label}"


def _item_lines(item: ItemDiff, w: dict[str, str]) -> list[str]:
    name = _item_name(item, w)
    if item.label_a is not None and item.label_b is not None and item.label_a != item.label_b \
            and item.section == "rows":
        name += f" (← {item.label_a})"
    if item.status in ("added", "removed"):
        content = "; ".join(f"{_cell_name(k, w)}: {_show(v)}" for k, v in (item.cells or {}).items())
        return [f"{name} {w[item.status]}: {content}"]
    first = f"{name} {w[item.status]}"
    if item.moved:
        first += " (" + w["order"].format(a=item.position_a, b=item.position_b) + ")"
    return [first + (":" if item.changes else "")] + ["    " + _change_text(c, w) for c in item.changes]


def _cell_name(key: str, w: dict[str, str]) -> str:
    if key.startswith("when."):
        return key[5:]
    if key.startswith("then."):
        return w["then"] + key[5:]
    return key


def _change_text(c: Change, w: dict[str, str]) -> str:
    old = w["none"] if c.old is None else _show(c.old)
    new = w["none"] if c.new is None else _show(c.new)
    text = f"{_cell_name(c.field, w)}: {old} → {new}"
    notes = [f"{w['threshold']} {t.op} {_show(t.old)} → {_show(t.new)}: {w[t.direction]}, {w[t.effect]}"
             for t in c.thresholds]
    if c.direction:
        notes.append(w[c.direction])
    return text + (" (" + "; ".join(notes) + ")" if notes else "")
