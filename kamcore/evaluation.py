"""Evaluating a rule book over a portfolio: results for every account, row errors, and a trace per account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import RowError
from .expressions import scalar as S
from .expressions import vectors as V
from .kinds.base import State
from .portfolio import Columns, Records, column_array, read_columns, records_of, to_frame

if TYPE_CHECKING:
    from .rulebook import RuleBook


def evaluate(book: RuleBook, accounts: Any, as_of: dt.date | str | None = None,
             progress: Callable[[str], None] | None = None, ranks: Mapping[str, Any] | None = None) -> Evaluation:
    """Apply every rule, in dependency order, to all accounts at once. A pure function of (book, accounts,
    as_of): `today()` in a rule means `as_of`, so a past decision reproduces exactly. `progress` is called
    with each rule id once that rule is done. `ranks` (rule id -> Ranks) are rankings computed over a whole
    portfolio that `accounts` is one partition of (see kamcore.partitioned)."""
    # A request's few accounts are read straight from their records (the frame is built only if asked for).
    frame = records_of(accounts, S.MOST_ACCOUNTS) if S.applies(1) else None
    frame = to_frame(accounts) if frame is None else frame
    day = as_of_date(as_of)
    state, columns = begin(book, frame, day, ranks)
    for rule in book.rules:
        rule.evaluate(state)
        if progress:
            progress(rule.id)
    return Evaluation(book, frame, state, day, columns.missing, columns.headers)


def begin(book: RuleBook, frame: pd.DataFrame | Records, day: dt.date, ranks: Mapping[str, Any] | None = None,
          fields: Collection[str] | None = None) -> tuple[State, Columns]:
    """The state an evaluation starts from: the fields the rules read, typed, with unreadable rows excluded.
    `fields`: read only these of the book's inputs, for an evaluation of some rules only."""
    needed = book.inputs if fields is None else {name: t for name, t in book.inputs.items() if name in fields}
    columns = read_columns(frame, needed, book.dictionary)
    state = State(len(frame), np.datetime64(day, "D"), dict(columns.values), columns.excluded,
                  errors=list(columns.errors), ranks=dict(ranks or {}))
    return state, columns


def as_of_date(as_of: dt.date | str | None) -> dt.date:
    """The date `today()` means: the given one, or today."""
    if as_of is None:
        return dt.date.today()
    if isinstance(as_of, dt.datetime):
        return as_of.date()
    if isinstance(as_of, dt.date):
        return as_of
    return dt.date.fromisoformat(str(as_of))


@dataclass
class Evaluation:
    """The result of one evaluation.

    `input`: the accounts as a DataFrame; `frame`: the input columns plus one column per rule output (null for
    rows whose input was unreadable). `errors`: RowError per problem (unreadable cell, hit-policy violation,
    disallowed value); `warnings`: notes that do not invalidate a row (e.g. an empty measure ranked last)."""

    book: RuleBook
    source: pd.DataFrame | Records  # the accounts as given; `input` is their DataFrame (built when asked for)
    state: State
    as_of: dt.date
    missing_fields: list[str]
    headers: dict[str, str]
    _frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def input(self) -> pd.DataFrame:
        return self.source.frame if isinstance(self.source, Records) else self.source

    @property
    def revision(self) -> str | None:
        return self.book.revision

    @property
    def errors(self) -> list[RowError]:
        return sorted(self.state.errors, key=lambda e: e.row)

    @property
    def warnings(self) -> list[RowError]:
        return sorted(self.state.warnings, key=lambda e: e.row)

    @property
    def output_names(self) -> list[str]:
        return list(self.book.outputs)

    @property
    def ok(self) -> np.ndarray:
        """True for every account with no row error."""
        good = np.ones(self.state.n, dtype=bool)
        for e in self.state.errors:
            good[e.row] = False
        return good

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            outputs = {}
            excluded = self.state.excluded.any()
            for name in self.output_names:
                values = self.state.columns[name].to_array(self.state.n)
                if excluded:
                    s = pd.Series(values, index=self.input.index, copy=False)
                    values = s.astype(object).where(~self.state.excluded, None) if s.dtype == object else \
                        s.mask(pd.Series(self.state.excluded, index=s.index))
                outputs[name] = values
            columns = self.input.columns
            labels = columns.tolist() if self.state.n <= V.SMALL_COLUMN else []
            if labels and columns.is_unique and all(isinstance(label, str) for label in labels):
                # A few accounts: one frame from copies of the input's column arrays and the outputs costs a third
                # of dropping, building and concatenating frames (copies, so the result never writes into input).
                data = {label: column_array(self.input, k).copy() for k, label in enumerate(labels)
                        if label not in outputs}
                data.update(outputs)
                # (Outputs masked for unreadable rows are Series: the checking constructor takes those.)
                self._frame = pd.DataFrame(data, index=self.input.index, copy=False) if excluded else \
                    _frame_of(data, self.input.index)
                return self._frame
            replaced = [c for c in columns if c in outputs]
            kept = self.input.drop(columns=replaced) if replaced else self.input
            # Fresh arrays, not Series: pandas then neither copies nor consolidates them into 2-D blocks.
            self._frame = pd.concat([kept, pd.DataFrame(outputs, index=self.input.index, copy=False)], axis=1)
        return self._frame

    def outputs(self, i: int) -> dict[str, Any]:
        """The outputs of account i as plain values."""
        if self.state.excluded[i]:
            return dict.fromkeys(self.output_names)
        return {name: self.state.columns[name].value(i) for name in self.output_names}

    def explain(self, i: int, rules: Collection[str] | None = None) -> Trace:
        """Why account i got its results: every rule (or only `rules`) in order with what it read and matched."""
        if not 0 <= i < self.state.n:
            raise IndexError(f"row {i} is outside the portfolio (0..{self.state.n - 1})")
        steps = [rule.explain(self.state, i) for rule in self.book.rules if rules is None or rule.id in rules]
        errors = [e for e in self.state.errors if e.row == i]
        warnings = [e for e in self.state.warnings if e.row == i]
        return Trace(i, self.revision, self.as_of, steps, errors, warnings)


def _frame_of(data: dict[Any, Any], index: pd.Index) -> pd.DataFrame:
    """A frame of whole 1-D arrays (numpy or pandas), each already of the index's length and its final dtype:
    pandas' constructor for arrays that need no checking or conversion, where it has one."""
    try:
        return pd.DataFrame._from_arrays(list(data.values()), columns=pd.Index(list(data)), index=index,
                                         verify_integrity=False)
    except AttributeError:  # a pandas without it
        return pd.DataFrame(data, index=index, copy=False)


@dataclass
class Trace:
    """How one account's results came about, rule by rule."""

    row: int
    rules_version: str | None
    as_of: dt.date
    steps: list[dict[str, Any]]
    errors: list[RowError]
    warnings: list[RowError]

    def step(self, rule_id: str) -> dict[str, Any]:
        return next(s for s in self.steps if s["rule"] == rule_id)

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "rules_version": self.rules_version, "as_of": self.as_of.isoformat(),
                "steps": self.steps, "errors": [e.to_dict() for e in self.errors],
                "warnings": [e.to_dict() for e in self.warnings]}

    def text(self, lang: str = "en") -> str:
        """A readable explanation, one line per rule, in 中文 (`zh`) or English."""
        lines = []
        for s in self.steps:
            label = (s.get("label") or {}).get(lang) or s["rule"]
            outputs = ", ".join(f"{k} = {_show(v)}" for k, v in s["outputs"].items())
            lines.append(f"{label} [{s['rule']}]: {outputs}")
            lines.extend("    " + d for d in _details(s, lang))
        lines.extend(f"!! {e.rule or 'input'}: {e.field + ': ' if e.field else ''}{e.message}" for e in self.errors)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


_WORDS = {
    "en": {"row": "row", "matched": "matched", "none": "no row matched", "default": "default used",
           "band": "band", "points": "points", "rank": "rank", "of": "of", "share": "share above",
           "unranked": "empty: not ranked among the {of} with a value, last band"},
    "zh": {"row": "行", "matched": "命中", "none": "无命中行", "default": "使用默认值",
           "band": "区间", "points": "分", "rank": "排名", "of": "/", "share": "之前累计占比",
           "unranked": "无数值：不参与 {of} 个有值客户的排名，归入最后一档"},
}


def _details(step: dict[str, Any], lang: str) -> list[str]:
    w = _WORDS.get(lang, _WORDS["en"])
    kind = step["kind"]
    if kind == "decision_table":
        ins = ", ".join(f"{k} = {_show(v)}" for k, v in step["inputs"].items())
        if not step["hit"]:
            return [ins, w["default"] if step["default_used"] else w["none"]]
        hits = "; ".join(
            f"{w['row']} {h['row']}" + (f" ({h['note']})" if h["note"] else "")
            + (": " + ", ".join(f"{k} {t}" for k, t in h["when"].items()) if h["when"] else "")
            for h in step["hit"])
        return [ins, f"{w['matched']} {hits}"]
    if kind == "scorecard":
        return [f"{i['indicator']} = {_show(i['value'])}: {w['band']} {i['band'] or '-'} → {i['points']:g} "
                f"{w['points']} × {i['weight']:g}" for i in step["indicators"]]
    if kind == "ranking":
        if step["rank"] is None:
            return [w["unranked"].format(of=step["of"])]
        return [f"{w['rank']} {step['rank']} {w['of']} {step['of']}, {w['share']} {step['share']:.1%}"]
    if kind == "formula":
        return [f"{k} = {v}" for k, v in step["formulas"].items()]
    return []


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}".rstrip("0").rstrip(".")
    return str(v)
