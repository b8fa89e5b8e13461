"""Decision tables with DMN 1.5 hit policies, matched over whole columns.

Each row's cells are compiled unary tests; matching all accounts against all rows gives a boolean matrix
(rows × accounts), and every hit policy is a vectorized reduction of that matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ..expressions import Expression, UnaryTest, ast
from ..expressions import scalar as S
from ..expressions import vectors as V
from ..expressions.compiler import choose
from ..expressions.types import Type
from ..expressions.vectors import Vec
from ..schemas import IDENTIFIER
from . import table_analysis
from .base import Context, Output, Rule, Scope, State, cell_text, declared_type, literal_type

SINGLE_HIT = ("UNIQUE", "ANY", "FIRST", "PRIORITY")
LIST_POLICIES = ("RULE ORDER", "OUTPUT ORDER", "COLLECT")


class Cell:
    """An output cell: a literal value, or an expression (written with a leading `=`)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.is_expression = isinstance(raw, str) and raw.lstrip().startswith("=")
        self.text = raw.lstrip()[1:].strip() if self.is_expression else None
        self.expression: Expression | None = None


_PATTERN_ROWS = 62  # a COLLECT table with up to this many rows keys each account's matched rows as one int64


def _first_rows(matched: np.ndarray) -> np.ndarray:
    """`matched.argmax(axis=0)` (rows × accounts: each account's first matching row, 0 if none) a row at a time,
    last to first: along the accounts, not across the rows of each (which numpy does slowly)."""
    first = np.zeros(matched.shape[1], dtype=np.intp)
    for r in range(len(matched) - 1, 0, -1):
        first[matched[r]] = r
    if len(matched):
        first[matched[0]] = 0
    return first


class DecisionTableRule(Rule):
    kind = "decision_table"

    def __init__(self, spec: dict[str, Any], ctx: Context):
        super().__init__(spec, ctx)
        self.hit_policy: str = spec["hit_policy"]
        self.aggregation: str | None = spec.get("aggregation")
        self.input_specs: list[dict[str, Any]] = spec["inputs"]
        self.output_specs: list[dict[str, Any]] = spec["outputs"]
        self.input_names = [self._input_name(k, s) for k, s in enumerate(self.input_specs)]
        self.output_names = [o["name"] for o in self.output_specs]
        self._no_duplicates(self.input_names, "inputs", "input")
        self._no_duplicates(self.output_names, "outputs", "output")
        for k, s in enumerate(self.input_specs):
            self.reads |= ctx.names_in_expression(s["expr"], ("inputs", k, "expr"))
        self.row_ids: list[str] = []
        self.notes: list[str | None] = []
        self.cell_texts: list[list[str]] = []
        self.out_cells: list[list[Cell]] = []
        for r, row in enumerate(spec["rows"]):
            self._read_row(r, row)
        self._no_duplicates(self.row_ids, "rows", "row id")
        if self.aggregation and len(self.output_names) > 1:
            ctx.problem(("aggregation",), f"COLLECT {self.aggregation} needs exactly one output, "
                        f"this table has {len(self.output_names)}")
        if self.hit_policy in ("PRIORITY", "OUTPUT ORDER") and not any(o.get("values") for o in self.output_specs):
            ctx.problem(("outputs",), f"{self.hit_policy} ranks rows by the order of an output's values",
                        hint="list them in priority order, e.g. values: [A, B, C, D]")
        for name, o in zip(self.output_names, self.output_specs, strict=True):
            self.outputs[name] = Output(name, declared_type(o.get("type")), o.get("label") or {})
        self.inputs: list[Expression | None] = []
        self.tests: list[list[UnaryTest | None]] = []
        self.allowed_inputs: list[UnaryTest | None] = []
        self.allowed_outputs: dict[str, UnaryTest] = {}  # checked at run time where a formula cell could stray
        self.value_types: dict[str, Type] = {}
        # Fixed at compile time, so an evaluation (often of one account) does not rebuild them: per output, each
        # row's literal value as a column (None for a formula cell), its priority rank (None for a formula cell),
        # and the lookup table _pick gathers literal values from.
        self.literals: list[list[Vec | None]] = []
        self.literal_ranks: list[list[int | None] | None] = []
        self.pick_tables: list[Vec] = []

    # --- reading ---

    def _input_name(self, k: int, s: dict[str, Any]) -> str:
        if s.get("name"):
            return s["name"]
        expr = str(s["expr"]).strip()
        if IDENTIFIER.match(expr):
            return expr
        self.ctx.problem(("inputs", k), f"input {k + 1} ({expr!r}) needs a name",
                         hint="add name: a_short_name, used as the key in each row's `when`")
        return f"input_{k + 1}"

    def _no_duplicates(self, names: list[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for k, name in enumerate(names):
            if name in seen:
                self.ctx.problem((where, k), f"{what} {name!r} appears twice")
            seen.add(name)

    def _read_row(self, r: int, row: dict[str, Any]) -> None:
        ctx = self.ctx
        rid = row.get("id") or f"r{r + 1}"
        self.row_ids.append(rid)
        self.notes.append(row.get("note"))
        for key in row["when"]:
            if key not in self.input_names:
                ctx.problem(("rows", r, "when", key), f"{key!r} is not an input of this table", row=rid,
                            hint="inputs are: " + ", ".join(self.input_names))
        texts = [cell_text(row["when"][name]) if name in row["when"] else "-" for name in self.input_names]
        for k, text in enumerate(texts):
            self.reads |= ctx.names_in_tests(text, ("rows", r, "when", self.input_names[k]), rid)
        self.cell_texts.append(texts)
        then = row["then"]
        if not isinstance(then, dict):
            if len(self.output_names) != 1:
                ctx.problem(("rows", r, "then"), "with several outputs, `then` must name each one", row=rid,
                            hint="then: {" + ", ".join(f"{o}: ..." for o in self.output_names) + "}")
                then = {}
            else:
                then = {self.output_names[0]: then}
        for key in then:
            if key not in self.output_names:
                ctx.problem(("rows", r, "then", key), f"{key!r} is not an output of this table", row=rid,
                            hint="outputs are: " + ", ".join(self.output_names))
        cells = []
        for name in self.output_names:
            if name not in then:
                ctx.problem(("rows", r, "then"), f"row gives no value for output {name!r}", row=rid,
                            hint=f"add {name}: <value> (write ~ for no value)")
            cell = Cell(then.get(name))
            if cell.is_expression:
                self.reads |= ctx.names_in_expression(cell.text, ("rows", r, "then", name), rid)
            cells.append(cell)
        self.out_cells.append(cells)

    # --- compiling ---

    def compile(self, scope: Scope) -> None:
        ctx = self.ctx
        input_types: list[Type] = []
        for k, s in enumerate(self.input_specs):
            expr = ctx.expression(s["expr"], ("inputs", k, "expr"), scope)
            self.inputs.append(expr)
            input_types.append(expr.type if expr else Type.NULL)
            allowed = None
            if expr and s.get("values"):
                allowed = ctx.unary_test(cell_text(s["values"]), expr.type, ("inputs", k, "values"), scope)
            self.allowed_inputs.append(allowed)
        cache: dict[tuple[int, str], UnaryTest | None] = {}
        for r, texts in enumerate(self.cell_texts):
            row_tests = []
            for k, text in enumerate(texts):
                key = (k, text)
                if key not in cache:
                    rel = ("rows", r, "when", self.input_names[k])
                    cache[key] = ctx.unary_test(text, input_types[k], rel, scope, self.row_ids[r]) \
                        if self.inputs[k] else None
                row_tests.append(cache[key])
            self.tests.append(row_tests)
        for j, name in enumerate(self.output_names):
            self._compile_output(j, name, scope)
        if not ctx.failed:
            self._analyse(input_types)
            self._precompute()

    def _compile_output(self, j: int, name: str, scope: Scope) -> None:
        ctx, spec = self.ctx, self.output_specs[j]
        typ = declared_type(spec.get("type"))
        candidates = [literal_type(v) for v in spec.get("values") or []]
        candidates += [literal_type(row[j].raw) for row in self.out_cells if not row[j].is_expression]
        if spec.get("default") is not None:
            candidates.append(literal_type(spec["default"]))
        for r, row in enumerate(self.out_cells):
            cell = row[j]
            if cell.is_expression:
                cell.expression = ctx.expression(cell.text, ("rows", r, "then", name), scope, self.row_ids[r])
                if cell.expression:
                    candidates.append(cell.expression.type)
        if typ is None:
            typ = next((t for t in candidates if t != Type.NULL), Type.NULL)
        for r, row in enumerate(self.out_cells):
            cell = row[j]
            got = cell.expression.type if cell.expression else (None if cell.is_expression else literal_type(cell.raw))
            if got not in (None, Type.NULL, typ):
                hint = 'text outputs need no quotes; a formula starts with "=", e.g. "= revenue_12m * 0.1"'
                ctx.problem(("rows", r, "then", name), f"{name} should be {typ.label}, this row gives {got.label}",
                            row=self.row_ids[r], hint=hint)
            allowed = spec.get("values")
            if allowed and not cell.is_expression and cell.raw is not None and cell.raw not in allowed:
                ctx.problem(("rows", r, "then", name), f"{cell.raw!r} is not one of the allowed values of {name}",
                            row=self.row_ids[r], hint="allowed: " + ", ".join(map(str, allowed)))
        if self.aggregation in ("SUM", "MIN", "MAX") and typ not in (Type.NUMBER, Type.NULL):
            ctx.problem(("outputs", j), f"COLLECT {self.aggregation} needs a number output, {name} is {typ.label}")
        self.value_types[name] = typ
        if spec.get("values") and any(row[j].is_expression for row in self.out_cells):
            self.allowed_outputs[name] = UnaryTest.compile(cell_text(list(spec["values"])), typ, lambda _: None)
        out_type = Type.NUMBER if self.aggregation == "COUNT" else (
            Type.LIST if self.hit_policy in LIST_POLICIES and not self.aggregation else typ)
        self.outputs[name] = Output(name, out_type, self.outputs[name].label)

    def _precompute(self) -> None:
        # Each distinct non-`-` cell test with its input, and per row and input the slot of its test (0: `-`).
        self.distinct_tests: list[tuple[int, UnaryTest]] = []
        slot_of: dict[int, int] = {}
        self.cell_slots = np.zeros((len(self.tests), len(self.input_names)), dtype=np.intp)
        for r, row_tests in enumerate(self.tests):
            for k, test in enumerate(row_tests):
                if not test.is_any:
                    if id(test) not in slot_of:
                        self.distinct_tests.append((k, test))
                        slot_of[id(test)] = len(self.distinct_tests)
                    self.cell_slots[r, k] = slot_of[id(test)]
        for j, name in enumerate(self.output_names):
            typ = self.value_types[name]
            literals = [None if row[j].is_expression else V.scalar(row[j].raw, typ) for row in self.out_cells]
            self.literals.append(literals)
            order = self.output_specs[j].get("values")
            self.literal_ranks.append(None if not order else [
                None if vec is None else _rank(vec, [V.scalar(v, typ) for v in order]) for vec in literals])
            self.pick_tables.append(_pick_table(literals, typ, self.output_specs[j].get("default")))

    def _analyse(self, input_types: list[Type]) -> None:
        cells = [[t.tree for t in row] for row in self.tests]
        literal_outputs = [[table_analysis.UNKNOWN if c.is_expression else c.raw for c in row]
                           for row in self.out_cells]
        # A list table (COLLECT, RULE ORDER, OUTPUT ORDER) that matches no row has simply nothing to list.
        lists = self.hit_policy in LIST_POLICIES and not self.aggregation
        needs_coverage = not lists and any(o.get("default") is None for o in self.output_specs)
        for f in table_analysis.analyse(self.hit_policy, input_types, cells, self.row_ids, literal_outputs,
                                        needs_coverage, self.input_names):
            r = self.row_ids.index(f.rows[-1]) if f.rows else None
            hint = None
            if f.kind == "overlap":
                hint = "narrow one of the rows, or use hit_policy FIRST if row order should decide"
            elif f.kind == "gap":
                hint = "add a catch-all row with '-' cells, or give the outputs a default"
            self.ctx.problem(("rows", r) if r is not None else ("rows",), f.message, row=",".join(f.rows) or None,
                             severity=f.severity, hint=hint)

    # --- evaluating ---

    def evaluate(self, state: State) -> None:
        if self.evaluated_per_account(state):
            return
        n, cols, as_of = state.n, state.columns, state.as_of
        values = [e.evaluate(cols, n, as_of) for e in self.inputs]
        invalid = np.zeros(n, dtype=bool)
        for k, allowed in enumerate(self.allowed_inputs):
            if allowed is not None:
                bad = ~allowed.matches(values[k], cols, n, as_of) & ~values[k].nulls()
                bad = np.broadcast_to(bad, (n,))
                name = self.input_names[k]
                state.row_errors(bad, self.id, name,
                                 lambda i, k=k, name=name: f"{name} = {values[k].value(i)!r} is not an allowed value")
                invalid |= bad
        if n <= V.SMALL_COLUMN:
            matched = self._match_few(values, state)
        else:
            matched = self._match(values, state)
        matched[:, invalid] = False
        row_values = [self._row_values(j, state) for j in range(len(self.output_names))]
        # A row with a disallowed input matches nothing and gets null outputs, never the default.
        if self.hit_policy in SINGLE_HIT:
            selected, violation = self._select(matched, row_values, state)
            violation = violation | invalid
            for j, name in enumerate(self.output_names):
                state.columns[name] = self._gather(j, row_values[j], selected, violation, state)
        else:
            selected, violation = None, invalid
            if self.aggregation:
                total = self._aggregate(matched, row_values[0], state)
                state.columns[self.output_names[0]] = V.number(np.where(invalid, np.nan, total.data))
            else:
                self._collect(matched, row_values, invalid, state)
        state.traces[self.id] = {"values": values, "matched": matched, "selected": selected, "violation": violation}

    def _match(self, values: list[Vec], state: State) -> np.ndarray:
        """Which rows each account matches (rows × accounts): each distinct cell tested once over all accounts."""
        n, cols, as_of = state.n, state.columns, state.as_of
        matched = np.zeros((len(self.row_ids), n), dtype=bool)
        done: dict[int, np.ndarray] = {}
        for r, row_tests in enumerate(self.tests):
            m: np.ndarray | None = None
            for k, test in enumerate(row_tests):
                if test.is_any:
                    continue
                hit = done.get(id(test))
                if hit is None:
                    hit = done[id(test)] = test.matches(values[k], cols, n, as_of)
                m = hit if m is None else m & hit
            matched[r] = True if m is None else m
        return matched

    def _match_few(self, values: list[Vec], state: State) -> np.ndarray:
        """`_match` for a few accounts: every distinct cell's hits stacked, then each row's cells and-ed in one
        step (rows × inputs × accounts booleans, small when the accounts are few)."""
        n, cols, as_of = state.n, state.columns, state.as_of
        hits = np.empty((len(self.distinct_tests) + 1, n), dtype=bool)
        hits[0] = True  # a `-` cell
        for u, (k, test) in enumerate(self.distinct_tests, start=1):
            hits[u] = test.matches(values[k], cols, n, as_of)
        return hits[self.cell_slots].all(axis=1)

    def _row_values(self, j: int, state: State) -> list[Vec]:
        """The value each row gives for output j, as a column (scalar for literals)."""
        typ = self.value_types[self.output_names[j]]
        return [V.cast_null(row[j].expression.evaluate(state.columns, state.n, state.as_of), typ) if literal is None
                else literal for row, literal in zip(self.out_cells, self.literals[j], strict=True)]

    def _priority(self, row_values: list[list[Vec]], n: int) -> np.ndarray:
        """Rank (0 = highest priority) of each row's outputs, per account: rows × accounts. Priority is the order
        of the first output's `values` list that has one, ties broken by the next output with values, and so on
        (DMN 1.5 §8.2.11: output priorities come from the ordered output values); unlisted values rank last."""
        combined = np.zeros((len(self.row_ids), n), dtype=np.int64)
        for j, spec in enumerate(self.output_specs):
            order = spec.get("values")
            if not order:
                continue
            typ = self.value_types[self.output_names[j]]
            ranks = np.empty((len(self.row_ids), n), dtype=np.int64)
            for r, vec in enumerate(row_values[j]):
                literal_rank = self.literal_ranks[j][r]
                if literal_rank is not None:  # a literal cell: its rank was found when compiling
                    ranks[r] = literal_rank
                    continue
                ranks[r] = len(order)
                for k in reversed(range(len(order))):
                    ranks[r] = np.where(_equal(vec, V.scalar(order[k], typ)), k, ranks[r])
            combined = combined * (len(order) + 1) + ranks
        return combined

    def _select(self, matched: np.ndarray, row_values: list[list[Vec]],
                state: State) -> tuple[np.ndarray, np.ndarray]:
        """The row each account takes (-1: none) and where the hit policy was violated."""
        n = state.n
        count = matched.sum(axis=0)
        if self.hit_policy == "PRIORITY":
            ranks = np.where(matched, self._priority(row_values, n), np.iinfo(np.int64).max)
            first = ranks.argmin(axis=0)
        else:
            first = _first_rows(matched) if n > V.SMALL_COLUMN else matched.argmax(axis=0)
        selected = np.where(count > 0, first, -1)
        violation = np.zeros(n, dtype=bool)
        if self.hit_policy == "UNIQUE":
            violation = count > 1
            state.row_errors(violation, self.id, None, lambda i: (
                f"rows {', '.join(self._ids(matched[:, i]))} all match; UNIQUE allows only one"))
        elif self.hit_policy == "ANY":
            violation = self._conflicts(matched, row_values, first, count, n)
            state.row_errors(violation, self.id, None, lambda i: (
                f"rows {', '.join(self._ids(matched[:, i]))} match with different outputs; ANY needs them equal"))
        return selected, violation

    def _ids(self, mask: np.ndarray) -> list[str]:
        return [self.row_ids[r] for r in np.flatnonzero(mask)]

    def _conflicts(self, matched: np.ndarray, row_values: list[list[Vec]], first: np.ndarray, count: np.ndarray,
                   n: int) -> np.ndarray:
        conflict = np.zeros(n, dtype=bool)
        multi = count > 1
        if not multi.any():
            return conflict
        for rows in row_values:
            chosen = self._pick(rows, first, n)
            for r, vec in enumerate(rows):
                differs = ~_equal(vec, chosen)
                conflict |= multi & matched[r] & np.broadcast_to(differs, (n,))
        return conflict

    def _pick(self, rows: list[Vec], index: np.ndarray, n: int, default: Any = None,
              table: Vec | None = None) -> Vec:
        """Per account, the value of row index[i] (index -1 gives `default`, -2 gives null). `table`, when given,
        is _pick_table(rows, ...) made in advance: valid while every formula row's value is a full column."""
        if table is None:
            table = _pick_table(rows, rows[0].type if rows else Type.NULL, default)
        slot = np.where(index >= 0, index, np.where(index == -1, len(rows), len(rows) + 1))
        out = table.take(slot)
        for r, vec in enumerate(rows):
            if not vec.is_scalar:
                out = choose(index == r, vec.full(n), out)
        return out

    def _gather(self, j: int, rows: list[Vec], selected: np.ndarray, violation: np.ndarray, state: State) -> Vec:
        name = self.output_names[j]
        index = np.where(violation, -2, selected)
        literals = self.literals[j]
        ready = all(literal is not None or not vec.is_scalar for literal, vec in zip(literals, rows, strict=True)) \
            and (not rows or rows[0].type == self.pick_tables[j].type)
        out = self._pick(rows, index, state.n, self.output_specs[j].get("default"),
                         self.pick_tables[j] if ready else None)
        allowed = self.allowed_outputs.get(name)
        if allowed is not None:
            bad = (selected >= 0) & ~allowed.matches(out, state.columns, state.n, state.as_of) & ~out.nulls()
            state.row_errors(bad, self.id, name, lambda i: f"gives {out.value(i)!r}, not one of the allowed values")
        return out

    def _aggregate(self, matched: np.ndarray, rows: list[Vec], state: State) -> Vec:
        """COLLECT with an operator. DMN 1.5 §8.2.11 defines C+ as the sum of the *distinct* outputs and C# as the
        number of *distinct* outputs (null counts as one value); no match gives the default, else 0 for C#
        (the count of nothing) and null for the others. A null among the summed outputs makes the result null."""
        n = state.n
        default = self.output_specs[0].get("default")
        empty = 0.0 if self.aggregation == "COUNT" else np.nan
        fallback = empty if default is None else float(default)
        if not rows:
            return V.number(np.full(n, fallback))
        none = ~matched.any(axis=0)
        keys = _keys(rows, n)
        has_null = (matched & np.isnan(keys)).any(axis=0)
        if self.aggregation == "MIN":
            out = np.where(matched, keys, np.inf).min(axis=0)
        elif self.aggregation == "MAX":
            out = np.where(matched, keys, -np.inf).max(axis=0)
        else:
            present = matched & ~np.isnan(keys)
            ordered = np.sort(np.where(present, keys, np.inf), axis=0)  # each account's values first, then padding
            first = np.zeros(ordered.shape, dtype=bool)  # where a value differs from the one before it
            first[0] = present.any(axis=0)
            first[1:] = (ordered[1:] != ordered[:-1]) & (np.arange(1, len(ordered))[:, None] < present.sum(axis=0))
            if self.aggregation == "COUNT":
                return V.number(np.where(none, fallback, (first.sum(axis=0) + has_null).astype(np.float64)))
            out = np.where(first, ordered, 0.0).sum(axis=0)
        return V.number(np.where(none, fallback, np.where(has_null, np.nan, out)))

    def _collect(self, matched: np.ndarray, row_values: list[list[Vec]], invalid: np.ndarray, state: State) -> None:
        """RULE ORDER / OUTPUT ORDER / COLLECT: one list per account and output (no match: default or null)."""
        n, rows = state.n, len(self.row_ids)
        if n > V.SMALL_COLUMN and rows <= _PATTERN_ROWS and all(v.is_scalar for vs in row_values for v in vs):
            # Every row gives one value for all accounts, so an account's lists follow from which rows it matched:
            # made once per distinct set of matched rows (a few dozen), then copied for each account (a caller
            # changing one account's list must not change another's).
            key = (matched.astype(np.int64) << np.arange(rows, dtype=np.int64)[:, None]).sum(axis=0) if rows \
                else np.zeros(n, dtype=np.int64)
            _, first, pattern = np.unique(key, return_index=True, return_inverse=True)
            pattern = pattern.ravel()
            for name, lists in zip(self.output_names, self._lists(matched[:, first], row_values, len(first)),
                                   strict=True):
                out = np.fromiter((None if v is None else v.copy() for v in lists[pattern].tolist()), dtype=object,
                                  count=n)
                out[invalid] = None
                state.columns[name] = Vec(Type.LIST, out)
            return
        for name, lists in zip(self.output_names, self._lists(matched, row_values, n), strict=True):
            lists[invalid] = None
            state.columns[name] = Vec(Type.LIST, lists)

    def _lists(self, matched: np.ndarray, row_values: list[list[Vec]], n: int) -> list[np.ndarray]:
        """Per output, each account's list of its matched rows' values, in the hit policy's order (object arrays;
        no match: [default], or None without one)."""
        rows_idx, acc_idx = np.nonzero(matched)
        order = np.lexsort((rows_idx, acc_idx))
        if self.hit_policy == "OUTPUT ORDER":
            ranks = self._priority(row_values, n)[rows_idx, acc_idx]
            order = np.lexsort((rows_idx, ranks, acc_idx))
        rows_idx, acc_idx = rows_idx[order], acc_idx[order]
        ends = np.cumsum(np.bincount(acc_idx, minlength=n)).tolist()
        starts = [0, *ends[:-1]]
        out = []
        for j in range(len(self.output_names)):
            # Each row's value is looked up once for all the accounts it matched (a literal is one value), and
            # the accounts' lists are slices of one flat list: Python work per match, not per match and call.
            flat = np.empty(len(rows_idx), dtype=object)
            for r, vec in enumerate(row_values[j]):
                at = rows_idx == r
                if at.any():
                    flat[at] = vec.value(0) if vec.is_scalar else [vec.value(a) for a in acc_idx[at]]
            flat = flat.tolist()
            default = self.output_specs[j].get("default")
            out.append(np.fromiter((flat[a:b] if b > a else ([default] if default is not None else None)
                                    for a, b in zip(starts, ends, strict=True)), dtype=object, count=n))
        return out

    def plan_per_account(self) -> Callable[[State], None] | None:
        """`evaluate` account by account, for tables whose outputs are all literal values (no formula cells, no
        COLLECT operator): the same matches, hit-policy checks, outputs (gathered from the same pick tables) and
        trace. An account's matching rows are one int (bit r: row r), and-ed over the inputs from the rows whose
        cell on each input its value passes: looked up by the value's piece where the input's cells only compare
        it with constants (scalar.pieces: each cell run once per piece, here), else by running the cells of the
        rows still in question."""
        rows = len(self.row_ids)
        if self.aggregation or not rows or any(c.is_expression for row in self.out_cells for c in row):
            raise S.Unsupported("formula cells or an aggregation")
        if any(e is None for e in self.inputs) or not hasattr(self, "distinct_tests"):
            raise S.Unsupported("a table that did not compile")
        if any(self.pick_tables[j].type != self.literals[j][0].type for j in range(len(self.output_names))):
            raise S.Unsupported("outputs gathered from a table made per evaluation")
        compiler = S.Compiler()
        types = [e.type for e in self.inputs]
        if any(t not in S.SUPPORTED for t in types):
            raise S.Unsupported("an input of another type")
        inputs = [compiler.expression(e.tree) for e in self.inputs]
        fields = [e.tree.name if isinstance(e.tree, ast.Name) else None for e in self.inputs]
        # Where each input's values are in `cols`: a field's list, or the list of an expression's values (put there).
        keys = [f if f else f"\x00{self.id} input {k}" for k, f in enumerate(fields)]
        allowed = [(k, compiler.tests(a.tree, types[k])) for k, a in enumerate(self.allowed_inputs) if a is not None]
        tests = [(k, compiler.tests(test.tree, types[k])) for k, test in self.distinct_tests]
        bits = [0] * len(tests)  # per distinct test, the rows it is the cell of
        for r in range(rows):
            for u in self.cell_slots[r]:
                if u:
                    bits[int(u) - 1] |= 1 << r
        every = (1 << rows) - 1
        # Per input with cells: (key, piece of a value, the rows passed per piece), or (key, `-` rows, cells).
        placed, run = [], []
        for k in range(len(self.inputs)):
            cells = [(test, b) for (at, test), b in zip(tests, bits, strict=True) if at == k]
            if not cells:
                continue
            free = every  # rows whose cell on this input is `-`
            for _, b in cells:
                free &= ~b
            piece = S.pieces([test for test, _ in cells], types[k])
            if piece is None:
                run.append((keys[k], free, cells))
                continue
            piece_of, values = piece
            passed = []
            for v in values:
                got = free
                for test, b in cells:
                    if test({}, 0, v) == S.T:
                        got |= b
                passed.append(got)
            placed.append((keys[k], piece_of, passed))
        ranked = self.hit_policy in ("PRIORITY", "OUTPUT ORDER")
        priority = [0] * rows
        for j, spec in enumerate(self.output_specs):
            order = spec.get("values")
            if ranked and order:
                priority = [p * (len(order) + 1) + self.literal_ranks[j][r] for r, p in enumerate(priority)]
        # Each row's outputs as plain values: equal exactly where the vectorized _equal finds them equal.
        plain = [[self.literals[j][r].value(0) for j in range(len(self.output_names))] for r in range(rows)]
        # What each output gathers from its pick table (rows, then the default, then null), as plain values.
        picks = [(t, S.to_list(t, t.type, len(t.data)), t.cats if t.type == Type.STRING else None)
                 if t.type in S.SUPPORTED and not t.is_scalar else (t, None, None) for t in self.pick_tables]
        # For list policies, per output: each row's value, and the default an account matching no row gets.
        row_values = [[plain[r][j] for r in range(rows)] for j in range(len(self.output_names))]
        defaults = [spec.get("default") for spec in self.output_specs]
        ordered = [(p, r) for r, p in enumerate(priority)].__getitem__ if self.hit_policy == "OUTPUT ORDER" else None
        names = dict(compiler.fields)
        computed = [(k, keys[k], fn) for k, fn in enumerate(inputs) if not fields[k]]
        single = self.hit_policy in SINGLE_HIT
        first = self.hit_policy == "FIRST"

        def match(cols: dict[str, Any], i: int) -> int:
            m = every
            for key, piece_of, passed in placed:
                m &= passed[piece_of(cols[key][i])]
            for key, free, cells in run:
                if not m:
                    return 0
                x, got = cols[key][i], free
                for test, b in cells:
                    if b & m and test(cols, i, x) == S.T:
                        got |= b
                m &= got
            return m

        def evaluate(state: State) -> None:
            # Plain values throughout; numpy arrays only when a trace is read (see State.trace).
            n = state.n
            columns = state.per_account()
            cols = columns.lists(names)
            given = list(map(state.columns.get, fields))  # an input's column, or (below) an expression's values
            for k, key, fn in computed:
                given[k] = values = [fn(cols, i, None) for i in range(n)]
                columns.put(key, values)
            invalid = [False] * n
            for k, test in allowed:
                x = cols[keys[k]]
                null = S.is_null_fn(types[k])
                bad = [test(cols, i, x[i]) != S.T and not null(x[i]) for i in range(n)]
                if any(bad):
                    name, shown = self.input_names[k], _input_values(given, types)[k]
                    state.row_errors(np.array(bad, dtype=bool), self.id, name, lambda i, name=name, shown=shown: (
                        f"{name} = {shown.value(i)!r} is not an allowed value"))
                    invalid = [a or b for a, b in zip(invalid, bad, strict=True)]
            # Per account: its matched rows, the first of them (-1: none), and the slot of the pick tables it takes.
            matched, chosen, index, several = [], [], [], False
            for i in range(n):
                if invalid[i]:
                    matched.append(0)
                    chosen.append(-1)
                    index.append(rows + 1)  # null
                    continue
                m = match(cols, i)
                r = (m & -m).bit_length() - 1
                matched.append(m)
                chosen.append(r)
                index.append(r if r >= 0 else rows)  # the row's outputs, else the default
                if m & (m - 1):
                    several = True
            violation = invalid
            if not single:
                chosen = None
                for j, name in enumerate(self.output_names):
                    values, default = row_values[j], defaults[j]
                    lists = np.empty(n, dtype=object)
                    for i, m in enumerate(matched):
                        found = sorted(_rows(m), key=ordered) if ordered else _rows(m)
                        lists[i] = None if invalid[i] else list(map(values.__getitem__, found)) if found else \
                            ([default] if default is not None else None)
                    state.columns[name] = Vec(Type.LIST, lists)
            else:
                if several and not first:  # the hit policy decides between rows, and may be violated
                    chosen, violation = self._select_few([_rows(m) for m in matched], priority, plain, invalid, state)
                    index = [rows + 1 if bad else (r if r >= 0 else rows)
                             for r, bad in zip(chosen, violation, strict=True)]
                for name, (table, slots, cats) in zip(self.output_names, picks, strict=True):
                    state.columns[name] = table.take(np.array(index, dtype=np.int64)) if slots is None else \
                        S.column(table.type, [slots[x] for x in index] if n > 1 else [slots[index[0]]], cats)
            state.traces[self.id] = partial(_trace_few, rows, given, types, matched, chosen, violation)
        return evaluate

    def _select_few(self, hit_rows: list[list[int]], priority: list[int], plain: list[list[Any]],
                    invalid: list[bool], state: State) -> tuple[list[int], list[bool]]:
        """`_select` from each account's matching rows: the row it takes (-1: none) and where the hit policy was
        violated (or the input was not allowed), with the same row errors."""
        if self.hit_policy == "PRIORITY":
            chosen = [min(found, key=priority.__getitem__) if found else -1 for found in hit_rows]
        else:
            chosen = [found[0] if found else -1 for found in hit_rows]
        if self.hit_policy == "UNIQUE":
            violation = [len(found) > 1 for found in hit_rows]
            if any(violation):
                state.row_errors(np.array(violation, dtype=bool), self.id, None, lambda i: (
                    f"rows {', '.join(self.row_ids[r] for r in hit_rows[i])} all match; UNIQUE allows only one"))
        elif self.hit_policy == "ANY":
            violation = [len(found) > 1 and any(plain[r] != plain[found[0]] for r in found) for found in hit_rows]
            if any(violation):
                state.row_errors(np.array(violation, dtype=bool), self.id, None, lambda i: (
                    f"rows {', '.join(self.row_ids[r] for r in hit_rows[i])} match with different outputs; ANY "
                    "needs them equal"))
        else:
            return chosen, invalid
        return chosen, [a or b for a, b in zip(violation, invalid, strict=True)]

    def explain(self, state: State, i: int) -> dict[str, Any]:
        t = state.trace(self.id)
        matched = [r for r in range(len(self.row_ids)) if t["matched"][r, i]]
        if t["selected"] is not None:
            hit = [int(t["selected"][i])] if t["selected"][i] >= 0 and not t["violation"][i] else []
        else:
            hit = matched
        return {
            "rule": self.id, "kind": self.kind, "label": self.label, "hit_policy": self.hit_policy
            + (f" {self.aggregation}" if self.aggregation else ""),
            "inputs": {name: t["values"][k].value(i) for k, name in enumerate(self.input_names)},
            "matched": [{"row": self.row_ids[r], "note": self.notes[r]} for r in matched],
            "hit": [{"row": self.row_ids[r], "note": self.notes[r],
                     "when": {self.input_names[k]: txt for k, txt in enumerate(self.cell_texts[r]) if txt != "-"}}
                    for r in hit],
            "default_used": not matched and any(o.get("default") is not None for o in self.output_specs),
            "outputs": self.outputs_of(state, i),
        }


def _rows(matched: int) -> list[int]:
    """The rows set in a bit set of rows, in order."""
    out = []
    while matched:
        low = matched & -matched
        out.append(low.bit_length() - 1)
        matched ^= low
    return out


def _input_values(given: list[Vec | list[Any]], types: list[Type]) -> list[Vec]:
    """A per-account evaluation's input values as columns: the state's column for a field, else the values."""
    return [v if isinstance(v, Vec) else S.trace_vec(t, v) for v, t in zip(given, types, strict=True)]


def _trace_few(rows: int, given: list[Vec | list[Any]], types: list[Type], matched: list[int],
               chosen: list[int] | None, violation: list[bool]) -> dict[str, Any]:
    """The trace `evaluate` leaves, from a per-account evaluation (built when read)."""
    table = np.zeros((rows, len(matched)), dtype=bool)
    for i, m in enumerate(matched):
        table[_rows(m), i] = True
    return {"values": _input_values(given, types), "matched": table,
            "selected": None if chosen is None else np.array(chosen, dtype=np.int64),
            "violation": np.array(violation, dtype=bool)}


def _pick_table(rows: list[Vec | None], typ: Type, default: Any) -> Vec:
    """The values _pick gathers from: each row's value where it is one value (else null), then `default`, then
    null. `typ` is the rows' type (a row's column, or the output's type when every row is a formula)."""
    literal = [None if vec is None or not vec.is_scalar else vec.value(0) for vec in rows]
    return V.from_values(literal + [default, None], typ)


def _rank(vec: Vec, order: list[Vec]) -> int:
    """The position of a one-value column in an output's ordered values (len(order) when it is not among them)."""
    return next((k for k, v in enumerate(order) if bool(_equal(vec, v))), len(order))


def _keys(rows: list[Vec], n: int) -> np.ndarray:
    """Each row's output as float64 keys (rows × accounts), NaN for null: equal values get equal keys."""
    keys = np.empty((len(rows), n), dtype=np.float64)
    strings = [v for v in rows if v.type == Type.STRING]
    cats = np.unique(np.concatenate([v.cats for v in strings])).astype(object) if strings else None
    for r, v in enumerate(rows):
        data = np.broadcast_to(v.data, (n,))
        if v.type == Type.NULL:
            keys[r] = np.nan
        elif v.type == Type.STRING:
            codes = np.broadcast_to(V.remap_strings(v, cats), (n,))
            keys[r] = np.where(codes < 0, np.nan, codes)
        elif data.dtype.kind in "mM":  # dates, times, durations: their integer ticks
            keys[r] = np.where(np.isnat(data), np.nan, data.astype(np.int64).astype(np.float64))
        elif v.type == Type.BOOLEAN:
            keys[r] = np.where(data == V.NULL, np.nan, data.astype(np.float64))
        else:
            keys[r] = data
    return keys


def _equal(a: Vec, b: Vec) -> np.ndarray:
    """Null-aware equality of two columns of one type (null equals null)."""
    if a.type == Type.STRING:
        ca, cb, _ = V.align_strings(a, b)
        return ca == cb
    na, nb = a.nulls(), b.nulls()
    return np.where(na | nb, na & nb, a.data == b.data)
