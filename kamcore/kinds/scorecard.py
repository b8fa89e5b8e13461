"""Weighted scorecards: each indicator's value falls in a band worth points; weighted points sum to a score,
and cut-offs turn the score into a grade."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ..expressions import Expression, UnaryTest, ast
from ..expressions import scalar as S
from ..expressions import vectors as V
from ..expressions.types import Type
from .base import Context, Output, Rule, Scope, State, cell_text, literal_type


class ScorecardRule(Rule):
    kind = "scorecard"

    def __init__(self, spec: dict[str, Any], ctx: Context):
        super().__init__(spec, ctx)
        self.indicators: list[dict[str, Any]] = spec["indicators"]
        for k, ind in enumerate(self.indicators):
            self.reads |= ctx.names_in_expression(ind["expr"], ("indicators", k, "expr"))
            for b, band in enumerate(ind["bands"]):
                self.reads |= ctx.names_in_tests(cell_text(band["when"]), ("indicators", k, "bands", b, "when"))
        total = sum(ind["weight"] for ind in self.indicators)
        if abs(total - 1.0) > 1e-6:
            ctx.problem(("indicators",), f"weights add up to {total:.4g}, not 100%", severity="warning",
                        hint="scores stay comparable when the weights add up to 100%")
        self.score_name: str = spec["score"]["name"]
        self.outputs[self.score_name] = Output(self.score_name, Type.NUMBER, spec["score"].get("label") or {})
        self.grade = spec.get("grade")
        if self.grade:
            cutoffs = self.grade["cutoffs"]
            for c, cut in enumerate(cutoffs[:-1]):
                if cut.get("min") is None:
                    ctx.problem(("grade", "cutoffs", c), "only the last cut-off may leave out `min`")
            mins = [c["min"] for c in cutoffs if c.get("min") is not None]
            if mins != sorted(mins, reverse=True):
                ctx.problem(("grade", "cutoffs"), "cut-offs must go from the highest `min` to the lowest")
            types = {literal_type(c["grade"]) for c in cutoffs}
            if len(types) > 1:
                ctx.problem(("grade", "cutoffs"), "all grades must be of one type (e.g. all text)")
            self.outputs[self.grade["name"]] = Output(self.grade["name"], types.pop(), self.grade.get("label") or {})
        self.expressions: list[Expression | None] = []
        self.bands: list[list[UnaryTest | None]] = []

    def compile(self, scope: Scope) -> None:
        for k, ind in enumerate(self.indicators):
            expr = self.ctx.expression(ind["expr"], ("indicators", k, "expr"), scope)
            self.expressions.append(expr)
            self.bands.append([
                self.ctx.unary_test(cell_text(band["when"]), expr.type, ("indicators", k, "bands", b, "when"), scope)
                if expr else None
                for b, band in enumerate(ind["bands"])
            ])
        # Made once, for every evaluation: each indicator's points per band (then missing_points), and the grades
        # as one column (null after the last).
        self.points = [np.array([bd["points"] for bd in ind["bands"]] + [ind["missing_points"]], dtype=np.float64)
                       for ind in self.indicators]
        if self.grade and not self.ctx.failed:
            self.grades = V.from_values([c["grade"] for c in self.grade["cutoffs"]] + [None],
                                        self.outputs[self.grade["name"]].type)

    def evaluate(self, state: State) -> None:
        if self.evaluated_per_account(state):
            return
        n = state.n
        total = np.zeros(n)
        trace: dict[str, Any] = {"values": [], "band": [], "points": []}
        for ind, expr, bands, table in zip(self.indicators, self.expressions, self.bands, self.points, strict=True):
            value = expr.evaluate(state.columns, n, state.as_of)
            band = np.full(n, -1, dtype=np.int16)
            for b, test in enumerate(bands):
                free = band < 0
                if not free.any():
                    break
                band[free & test.matches(value, state.columns, n, state.as_of)] = b
            points = table[band]  # band -1 reads the last slot: missing_points
            total += ind["weight"] * points
            trace["values"].append(value)
            trace["band"].append(band)
            trace["points"].append(points)
        # Weighted points are human-scale; rounding away float noise keeps 0.7 * 85 + 0.1 * 5 at 60, on its cut-off.
        total = np.round(total, 9)
        state.columns[self.score_name] = V.number(total)
        if self.grade:
            cutoffs = self.grade["cutoffs"]
            slot = np.full(n, len(cutoffs), dtype=np.int64)
            for c in reversed(range(len(cutoffs))):
                floor = cutoffs[c].get("min")
                slot[(total >= floor) if floor is not None else np.ones(n, bool)] = c
            state.columns[self.grade["name"]] = self.grades.take(slot)
        state.traces[self.id] = trace

    def plan_per_account(self) -> Callable[[State], None] | None:
        """`evaluate` account by account: the same values, bands, points, score, grade and trace. An indicator whose
        bands only compare its value with constants finds the band by the value's piece (scalar.pieces: the bands
        run once per piece, here)."""
        compiler = S.Compiler()
        indicators = []
        for ind, expr, bands, table in zip(self.indicators, self.expressions, self.bands, self.points, strict=True):
            if expr is None or expr.type not in S.SUPPORTED or any(b is None for b in bands):
                raise S.Unsupported("an indicator without a plain value")
            field = expr.tree.name if isinstance(expr.tree, ast.Name) else None
            tests = [compiler.tests(b.tree, expr.type) for b in bands]
            placed = S.pieces(tests, expr.type)
            if placed is not None:
                piece_of, values = placed
                placed = (piece_of, [_band({}, 0, v, tests) for v in values])
            indicators.append((compiler.expression(expr.tree), expr.type, field, tests, placed, table.tolist(),
                               ind["weight"]))
        floors = [None if c.get("min") is None else float(c["min"]) for c in self.grade["cutoffs"]] \
            if self.grade else []
        grades = (self.grades.type, S.to_list(self.grades, self.grades.type, len(self.grades.data)),
                  self.grades.cats if self.grades.type == Type.STRING else None) if self.grade else None
        fields = dict(compiler.fields)

        def evaluate(state: State) -> None:
            n = state.n
            cols = state.per_account().lists(fields)
            total = [0.0] * n
            per_indicator = []
            for fn, typ, field, tests, placed, table, weight in indicators:
                values = cols[field] if field else [fn(cols, i, None) for i in range(n)]
                bands, points = [], []
                for i in range(n):
                    band = placed[1][placed[0](values[i])] if placed else _band(cols, i, values[i], tests)
                    bands.append(band)
                    p = table[band]  # band -1 reads the last slot: missing_points
                    points.append(p)
                    total[i] = total[i] + weight * p
                per_indicator.append((state.columns[field] if field else None, typ, values, bands, points))
            rounded = []
            for t in total:
                rounded.append(_round9(t))  # as evaluate: numpy's rounding, not Python's
            state.columns[self.score_name] = S.column(Type.NUMBER, rounded)
            if grades:
                typ, labels, cats = grades
                graded = []
                for t in rounded:
                    c = 0
                    for floor in floors:
                        if floor is None or t >= floor:
                            break
                        c += 1
                    graded.append(labels[c])  # past the last cut-off (none without a floor): null
                state.columns[self.grade["name"]] = S.column(typ, graded, cats)
            state.traces[self.id] = partial(_trace_few, per_indicator)
        return evaluate

    def explain(self, state: State, i: int) -> dict[str, Any]:
        t = state.trace(self.id)
        indicators = []
        for k, ind in enumerate(self.indicators):
            b = int(t["band"][k][i])
            indicators.append({
                "indicator": ind["name"], "label": ind.get("label"), "value": t["values"][k].value(i),
                "band": cell_text(ind["bands"][b]["when"]) if b >= 0 else None,
                "note": ind["bands"][b].get("note") if b >= 0 else "no band matched",
                "points": float(t["points"][k][i]), "weight": ind["weight"],
                "weighted": float(t["points"][k][i] * ind["weight"]),
            })
        return {"rule": self.id, "kind": self.kind, "label": self.label, "indicators": indicators,
                "outputs": self.outputs_of(state, i)}


def _band(cols: Any, i: int, value: Any, tests: list[Any]) -> int:
    """The first band whose test the value passes, or -1."""
    for b, test in enumerate(tests):
        if test(cols, i, value) == S.T:
            return b
    return -1


def _trace_few(per_indicator: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The trace `evaluate` leaves, from a per-account evaluation (built when read)."""
    return {"values": [vec if vec is not None else S.trace_vec(typ, values)
                       for vec, typ, values, _, _ in per_indicator],
            "band": [np.array(bands, dtype=np.int16) for _, _, _, bands, _ in per_indicator],
            "points": [np.array(points, dtype=np.float64) for _, _, _, _, points in per_indicator]}


def _round9(v: float) -> float:
    """np.round(v, 9) for one float: numpy multiplies by 10**9, rounds half to even (rint) and divides back."""
    y = v * 1e9
    if y - y != 0:  # inf, NaN: rint leaves them
        return y / 1e9
    r = float(round(y))
    return (r if r != 0 else math.copysign(0.0, y)) / 1e9
