"""Portfolio-relative tiers: Pareto (the accounts that make the top X% of a measure) and quantile bands
(A 20% / B 30% / C 30% / D 20%), optionally within groups, with deterministic ties and nulls ranked last."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..expressions import Expression
from ..expressions import scalar as S
from ..expressions import vectors as V
from ..expressions.types import Type
from ..expressions.vectors import Vec
from .base import Context, Output, Rule, Scope, State, literal_type


@dataclass
class RankKeys:
    """What a ranking orders accounts by, per account, before any sorting. The keys of consecutive parts of a
    portfolio join into the keys of the whole, so a partitioned portfolio ranks exactly as one frame does."""

    measure: np.ndarray  # float64, NaN where empty
    excluded: np.ndarray  # unreadable rows: never ranked
    within: Vec | None
    tie_break: list[Vec]

    def __len__(self) -> int:
        return len(self.measure)

    @classmethod
    def joined(cls, parts: Sequence[RankKeys]) -> RankKeys:
        """The keys of the parts, in order, as one portfolio's keys (text re-coded into one category list)."""
        first = parts[0]
        return cls(np.concatenate([p.measure for p in parts]), np.concatenate([p.excluded for p in parts]),
                   _joined([p.within for p in parts]) if first.within is not None else None,
                   [_joined([p.tie_break[k] for p in parts]) for k in range(len(first.tie_break))])


@dataclass
class Ranks:
    """A ranking's result per account: band index (one past the last band for unreadable rows), 1-based rank
    and share ranked above within the account's group, the group's size, and whether the measure was empty."""

    band: np.ndarray
    rank: np.ndarray
    share: np.ndarray
    size: np.ndarray
    empty: np.ndarray

    def __len__(self) -> int:
        return len(self.band)

    def part(self, start: int, stop: int) -> Ranks:
        """The ranks of accounts start..stop-1, e.g. one partition of the portfolio."""
        return Ranks(*(a[start:stop] for a in (self.band, self.rank, self.share, self.size, self.empty)))


class RankingRule(Rule):
    kind = "ranking"

    def __init__(self, spec: dict[str, Any], ctx: Context):
        super().__init__(spec, ctx)
        self.method: str = spec["method"]
        self.descending = spec["order"] == "descending"
        self.together = spec["ties"] == "together"
        self.band_labels = [b["label"] for b in spec["bands"]]
        self.cumulative = np.cumsum([b["share"] for b in spec["bands"]])
        self.cumulative[-1] = 1.0
        self.reads |= ctx.names_in_expression(spec["measure"], ("measure",))
        if spec.get("within") is not None:
            self.reads |= ctx.names_in_expression(spec["within"], ("within",))
        for k, t in enumerate(spec["tie_break"]):
            self.reads |= ctx.names_in_expression(t, ("tie_break", k))
        types = {literal_type(label) for label in self.band_labels}
        if len(types) > 1:
            ctx.problem(("bands",), "all band labels must be of one type (e.g. all text)")
        name = spec["output"]["name"]
        self.outputs[name] = Output(name, types.pop(), spec["output"].get("label") or {})
        self.output_name = name
        self.measure: Expression | None = None
        self.within: Expression | None = None
        self.tie_break: list[Expression] = []

    def compile(self, scope: Scope) -> None:
        ctx, spec = self.ctx, self.spec
        self.measure = ctx.expression(spec["measure"], ("measure",), scope)
        if self.measure and self.measure.type not in (Type.NUMBER, Type.NULL):
            ctx.problem(("measure",), f"the measure must be a number, it is {self.measure.type.label}")
        if spec.get("within") is not None:
            self.within = ctx.expression(spec["within"], ("within",), scope)
        for k, t in enumerate(spec["tie_break"]):
            expr = ctx.expression(t, ("tie_break", k), scope)
            if expr and expr.type not in (Type.NUMBER, Type.STRING, Type.DATE):
                ctx.problem(("tie_break", k), f"tie-breaks must be numbers, text or dates, not {expr.type.label}")
            elif expr:
                self.tie_break.append(expr)
        # The band labels as one column (null after the last) for every evaluation to gather from.
        self.labels = V.from_values(list(self.band_labels) + [None], self.outputs[self.output_name].type)

    def evaluate(self, state: State) -> None:
        # Ranks handed in were computed over the whole portfolio this state is one partition of.
        ranks = state.ranks.get(self.id)
        if ranks is None and state.n == 1 and self.evaluated_per_account(state):
            return
        self.apply(state, ranks if ranks is not None else self.rank(self.keys(state)))

    def plan_per_account(self) -> Callable[[State], None] | None:
        """`rank` for one account alone (a request scoring one account): it is its group, ranked first; only its
        own measure decides its band. The same arithmetic as `rank`, on one value."""
        if self.measure is None or self.measure.type != Type.NUMBER:
            raise S.Unsupported("a measure that is not a number")
        compiler = S.Compiler()
        measure = compiler.expression(self.measure.tree)
        fields = dict(compiler.fields)
        last = len(self.band_labels) - 1
        bounds = [np.ceil(np.round(self.cumulative * size, 6)).tolist() for size in (0, 1)]
        edges = (self.cumulative - 1e-12).tolist()
        # What the sums below come to for one account: a quantile band by group size (0 or 1); a Pareto band by the
        # share ranked above, 0 or 1 (or NaN) for one account alone.
        quantile_band = [sum(1 for b in bounds[size] if 0 >= b) for size in (0, 1)]
        pareto_band = {share: sum(1 for e in edges if e <= share) for share in (0.0, 1.0)}
        labels = S.to_list(self.labels, self.labels.type, len(self.labels.data))
        cats = self.labels.cats if self.labels.type == Type.STRING else None
        quantile = self.method == "quantile"

        def evaluate(state: State) -> None:
            if state.n != 1:
                raise S.Unsupported("more than one account")
            m = measure(state.per_account().lists(fields), 0, None)
            excluded = bool(state.excluded[0])
            missing = m != m or excluded
            size = 0 if missing else 1
            if quantile:
                share = 0.0
                band = quantile_band[size]
            else:
                held = 0.0 if missing else (m if m > 0.0 else 0.0)
                before = held - held - 0.0  # what the accounts ranked above hold: none (NaN for an infinite measure)
                total = 0.0 + held
                share = before / total if total > 0 else 1.0
                band = len(edges) if share != share else pareto_band.get(share)
                if band is None:
                    band = sum(1 for e in edges if e <= share)
            band = last if missing else min(band, last)
            band = len(self.band_labels) if excluded else band
            # `apply` on these one-account ranks, in plain values (its trace built only when read)
            state.columns[self.output_name] = S.column(self.labels.type, [labels[band]], cats)
            empty = m != m
            state.traces[self.id] = partial(_trace_one, share, size, empty)
            if empty:
                state.row_errors(np.array([True]), self.id, self.output_name, lambda i: (
                    f"{self.spec['measure']} is empty; ranked last ({self.band_labels[band]})"), severity="warning")
        return evaluate

    def keys(self, state: State) -> RankKeys:
        """What this ranking orders the accounts of `state` by, before any sorting."""
        n, cols, as_of = state.n, state.columns, state.as_of
        return RankKeys(
            self.measure.evaluate(cols, n, as_of).full(n).data, state.excluded,
            self.within.evaluate(cols, n, as_of).full(n) if self.within else None,
            [t.evaluate(cols, n, as_of).full(n) for t in self.tie_break])

    def rank(self, keys: RankKeys) -> Ranks:
        """Band, rank and share of every account, from the keys of the whole portfolio."""
        n, measure, excluded = len(keys), keys.measure, keys.excluded
        missing = np.isnan(measure) | excluded
        groups = _sort_key(keys.within) if keys.within is not None else np.zeros(n, np.int64)
        ties = [_sort_key(t) for t in keys.tie_break]
        # One sort key: the measure, then empty measures (inf), then unreadable rows (NaN, which sorts last).
        primary = np.where(excluded, np.nan, np.where(np.isnan(measure), np.inf,
                                                      -measure if self.descending else measure))
        if ties or keys.within is not None:
            # np.lexsort is stable and sorts by its last key first: group, measure, tie-breaks, input order.
            keys = (*reversed(ties), primary, groups)
            order = _lexsort(keys) if n > V.SMALL_COLUMN else np.lexsort(keys)
        else:
            order = np.argsort(primary, kind="stable")  # stable: ties keep input order
        g = groups[order]
        starts = np.concatenate(([True], g[1:] != g[:-1])) if n else np.zeros(0, bool)
        group_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0)) if n else np.zeros(0, np.int64)
        group_id = np.cumsum(starts) - 1
        # Accounts are banded among those with a measure; empty measures go to the last band (and are reported),
        # unreadable rows (excluded) get no band at all.
        counted = (~missing[order]).astype(np.float64)
        group_sizes = np.bincount(group_id, weights=counted).astype(np.int64) if n else np.zeros(0, np.int64)
        sizes = group_sizes[group_id]
        position = np.arange(n) - group_start  # 0-based rank within the group
        if self.together:
            value = primary[order]
            same = (value[1:] == value[:-1]) | (np.isnan(value[1:]) & np.isnan(value[:-1]))
            new_value = starts | np.concatenate(([True], ~same)) if n else starts
            position = np.maximum.accumulate(np.where(new_value, np.arange(n), 0)) - group_start
        # Both methods place an account by the share ranked above it: of accounts (quantile) or of the
        # measure (pareto). Band k holds the accounts whose share above is below the k-th cumulative share.
        if self.method == "quantile":
            share = position / np.maximum(sizes, 1)
            # Band boundaries per group, as whole accounts; rounding first removes float noise (0.1 + 0.2 != 0.3).
            bounds = np.ceil(np.round(self.cumulative[:, None] * group_sizes[None, :], 6))
            band = np.zeros(n, dtype=np.int64)
            for bound in bounds:  # one band boundary at a time: the bands past which each account is placed
                band += position >= bound[group_id]
        else:
            m = np.where(missing[order], 0.0, np.clip(measure[order], 0.0, None))
            running = np.cumsum(m)
            before = running - m - np.concatenate(([0.0], running))[group_start]  # measure of the accounts ranked above
            totals = np.bincount(group_id, weights=m)[group_id] if n else np.zeros(0)
            if self.together:
                before = before[group_start + position]
            with np.errstate(invalid="ignore", divide="ignore"):
                share = np.where(totals > 0, before / totals, 1.0)
            band = np.searchsorted(self.cumulative - 1e-12, share, side="right")
        band = np.where(missing[order], len(self.band_labels) - 1, np.minimum(band, len(self.band_labels) - 1))
        band_of = np.empty(n, dtype=np.int64)
        band_of[order] = band
        band_of[excluded] = len(self.band_labels)
        rank = np.empty(n, dtype=np.int64)
        rank[order] = position + 1
        share_of = np.empty(n)
        share_of[order] = share
        size_of = np.empty(n, dtype=np.int64)
        size_of[order] = sizes
        return Ranks(band_of, rank, share_of, size_of, np.isnan(measure))

    def apply(self, state: State, ranks: Ranks) -> None:
        """Write the bands of `ranks` into `state` as this rule's output, with traces and warnings."""
        if len(ranks) != state.n:
            raise ValueError(f"ranking {self.id!r}: {len(ranks)} ranks for {state.n} accounts")
        state.columns[self.output_name] = self.labels.take(ranks.band)
        state.traces[self.id] = {"rank": ranks.rank, "share": ranks.share, "size": ranks.size, "empty": ranks.empty}
        state.row_errors(ranks.empty, self.id, self.output_name, lambda i: (
            f"{self.spec['measure']} is empty; ranked last ({self.band_labels[ranks.band[i]]})"), severity="warning")

    def explain(self, state: State, i: int) -> dict[str, Any]:
        t = state.trace(self.id)
        share_kind = "share of the measure held by accounts ranked above" if self.method == "pareto" \
            else "share of accounts ranked above"
        return {
            "rule": self.id, "kind": self.kind, "label": self.label, "method": self.method,
            "inputs": self.inputs_of(state, i),
            # An empty measure is not ranked among the `of` accounts that have one: it goes last, without a rank.
            "rank": None if t["empty"][i] else int(t["rank"][i]), "of": int(t["size"][i]),
            "share": float(t["share"][i]), "share_means": share_kind,
            "bands": [{"label": label, "up_to": float(c)}
                      for label, c in zip(self.band_labels, self.cumulative, strict=True)],
            "outputs": self.outputs_of(state, i),
        }


def _trace_one(share: float, size: int, empty: bool) -> dict[str, Any]:
    """The trace `apply` leaves, for one account ranked alone (built when read)."""
    return {"rank": np.array([1], dtype=np.int64), "share": np.array([share], dtype=np.float64),
            "size": np.array([size], dtype=np.int64), "empty": np.array([empty], dtype=bool)}


def _joined(parts: list[Vec]) -> Vec:
    """Consecutive columns of one type as one column; text codes are re-expressed in the union of categories."""
    if parts[0].type != Type.STRING:
        return Vec(parts[0].type, np.concatenate([p.data for p in parts]))
    # Every part's categories sorted at once by Arrow: UTF-8 byte order is code-point order, the order of the
    # engine's own (Python-sorted) categories, and sorting 10M account ids takes seconds here, minutes in Python.
    cats = pa.chunked_array([pa.array(p.cats, type=pa.large_string()) for p in parts],
                            type=pa.large_string()).combine_chunks()
    order = pc.array_sort_indices(cats).to_numpy()
    ordered = cats.take(order)
    new = np.r_[True, pc.not_equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)] if len(cats) else \
        np.zeros(0, bool)
    code_of = np.empty(len(cats), dtype=np.int32)
    code_of[order] = np.cumsum(new) - 1  # each category's position among the distinct ones
    starts = np.cumsum([0] + [len(p.cats) for p in parts])
    codes = [np.append(code_of[a:b], np.int32(-1))[p.data]
             for p, a, b in zip(parts, starts[:-1], starts[1:], strict=True)]
    distinct = ordered.filter(pa.array(new)).to_numpy(zero_copy_only=False).astype(object)
    return Vec(Type.STRING, np.concatenate(codes), distinct)


def _lexsort(keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """`np.lexsort(keys)` (the last key first, ties in input order) as one stable sort per key, least significant
    first; a whole-number key of a small range (groups, text codes of few categories) is sorted as uint16, which
    numpy sorts by radix, faster than lexsort compares."""
    order: np.ndarray | None = None
    for key in keys:
        if key.dtype.kind in "iu" and len(key):
            low = key.min()
            if int(key.max()) - int(low) < 2**16:
                key = (key - low).astype(np.uint16)
        step = np.argsort(key if order is None else key[order], kind="stable")
        order = step if order is None else order[step]
    return order if order is not None else np.zeros(0, dtype=np.intp)


def _sort_key(vec: Vec) -> np.ndarray:
    """Values as sortable numbers; nulls sort last."""
    if vec.type == Type.STRING:
        return np.where(vec.data < 0, np.iinfo(np.int32).max, vec.data).astype(np.int64)
    if vec.type == Type.DATE:
        return np.where(np.isnat(vec.data), np.iinfo(np.int64).max, vec.data.astype(np.int64))
    if vec.type == Type.BOOLEAN:
        return vec.data.astype(np.int64)
    return np.where(np.isnan(vec.data), np.inf, vec.data)
