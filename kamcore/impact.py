"""What a rule change does to a portfolio: the same accounts evaluated under the base book and the changed
one, compared on tier, entitlements, credit status, segment, credit limit, exposure on hold and points."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import RowError
from .evaluation import Evaluation
from .kinds.decision_table import DecisionTableRule
from .portfolio import to_frame
from .rulebook import RuleBook

ACCOUNT_ID = "account_id"
TIER = "tier"
WATCHED = ("entitlements", "credit_status", "segment")  # accounts whose value changes are listed one by one
LISTS = ("entitlements",)  # compared as sets: the order rows were collected in is not an entitlement
HOLD = "hold"
SIDES = ("base", "change")


@dataclass(frozen=True)
class TierMigration:
    """Accounts by tier under the base book (rows) and the changed book (columns); None is "no tier"."""

    labels: list[Any]
    counts: list[list[int]]

    def count(self, from_tier: Any, to_tier: Any) -> int:
        return self.counts[self.labels.index(from_tier)][self.labels.index(to_tier)]

    @property
    def changed(self) -> int:
        return sum(c for i, row in enumerate(self.counts) for j, c in enumerate(row) if i != j)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "counts": self.counts, "changed": self.changed}


@dataclass(frozen=True)
class AccountChange:
    """One account whose watched output differs; `gained` / `lost` for list outputs (entitlements)."""

    row: int  # 0-based, in the portfolio
    account_id: Any
    field: str
    old: Any
    new: Any
    gained: tuple[Any, ...] = ()
    lost: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"row": self.row, "account_id": self.account_id, "field": self.field, "old": self.old,
               "new": self.new}
        if self.field in LISTS:
            out.update(gained=list(self.gained), lost=list(self.lost))
        return out


@dataclass(frozen=True)
class Total:
    """A portfolio total under each book; a side is None when its book does not compute the figure."""

    base: float | None
    change: float | None

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.change is None else self.change - self.base

    def to_dict(self) -> dict[str, Any]:
        return {"base": _plain(self.base), "change": _plain(self.change), "delta": _plain(self.delta)}


@dataclass(frozen=True)
class ImpactError:
    """A row error of one evaluation (`base`, `change`) or of both alike (`both`)."""

    side: str
    row: int
    account_id: Any
    rule: str | None
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"side": self.side, "row": self.row, "account_id": self.account_id, "rule": self.rule,
                "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Impact:
    """The comparison. Accounts with a row error in either evaluation are listed in `errors` and left out of
    every comparison and total (`compared` counts the rest). A section is None when neither book computes
    what it needs; `missing` names, per side, the outputs used here that its book does not compute (they read
    as empty on that side, so a change that drops an output shows every account losing it)."""

    revision_base: str | None
    revision_change: str | None
    as_of: dt.date
    accounts: int
    compared: int
    tier_migration: TierMigration | None
    changes: dict[str, list[AccountChange] | None]  # entitlements, credit_status, segment
    totals: dict[str, Total | None]  # credit_limit, exposure_on_hold, accounts_on_hold, loyalty_points
    errors: list[ImpactError]
    missing: dict[str, list[str]]

    def entitlement_moves(self) -> dict[str, dict[str, int]]:
        """Per entitlement, how many accounts gain and lose it."""
        moves: dict[str, dict[str, int]] = {}
        for c in self.changes.get("entitlements") or []:
            for e in c.gained:
                moves.setdefault(str(e), {"gained": 0, "lost": 0})["gained"] += 1
            for e in c.lost:
                moves.setdefault(str(e), {"gained": 0, "lost": 0})["lost"] += 1
        return dict(sorted(moves.items()))

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """JSON-ready; `limit` caps each list of changed accounts (the counts stay whole)."""
        changes = {name: None if found is None else
                   {"count": len(found), "accounts": [c.to_dict() for c in found[:limit]]}
                   for name, found in self.changes.items()}
        return {
            "revision_base": self.revision_base, "revision_change": self.revision_change,
            "as_of": self.as_of.isoformat(), "accounts": self.accounts, "compared": self.compared,
            "tier_migration": self.tier_migration.to_dict() if self.tier_migration else None,
            "changes": changes, "entitlement_moves": self.entitlement_moves(),
            "totals": {name: t.to_dict() if t else None for name, t in self.totals.items()},
            "errors": [e.to_dict() for e in self.errors], "missing": self.missing,
        }

    def text(self, lang: str = "en", limit: int = 20) -> str:
        """A readable summary in English or 中文, listing up to `limit` changed accounts per output."""
        return _render(self, _WORDS.get(lang, _WORDS["en"]), limit)

    def __str__(self) -> str:
        return self.text()


def impact(book_a: RuleBook, book_b: RuleBook, portfolio: Any, as_of: dt.date | str | None = None) -> Impact:
    """Evaluate `portfolio` (a DataFrame or list of account dicts) under the base book `book_a` and the changed
    book `book_b` on the same day (`as_of`, default today) and compare the results."""
    frame = to_frame(portfolio)
    day = dt.date.today() if as_of is None else as_of
    ev_a, ev_b = book_a.evaluate(frame, as_of=day), book_b.evaluate(frame, as_of=day)
    ids = _AccountIds(frame, book_a, book_b)
    kept = ev_a.ok & ev_b.ok
    sides = (_Side(book_a, ev_a, kept), _Side(book_b, ev_b, kept))
    names = (TIER, *WATCHED, "credit_limit", "exposure", "loyalty_points")
    missing = {side: [n for n in names if n not in s.book.outputs] for side, s in zip(SIDES, sides, strict=True)}
    return Impact(
        revision_base=book_a.revision, revision_change=book_b.revision, as_of=ev_a.as_of, accounts=len(frame),
        compared=int(kept.sum()),
        tier_migration=_migration(sides, _tier_order(book_a, book_b)),
        changes={name: _changed(name, sides, ids, kept) for name in WATCHED},
        totals={"credit_limit": _total(sides, lambda s: s.sum("credit_limit")),
                "exposure_on_hold": _total(sides, _Side.exposure_on_hold),
                "accounts_on_hold": _total(sides, _Side.accounts_on_hold),
                "loyalty_points": _total(sides, lambda s: s.sum("loyalty_points"))},
        errors=_errors(ev_a.errors, ev_b.errors, ids),
        missing=missing,
    )


class _Side:
    """One evaluation's outputs, restricted to the accounts compared."""

    def __init__(self, book: RuleBook, ev: Evaluation, kept: np.ndarray):
        self.book, self.ev, self.kept = book, ev, kept
        self._columns: dict[str, pd.Series] = {}

    def has(self, name: str) -> bool:
        return name in self.book.outputs

    def column(self, name: str) -> pd.Series:
        """The output over the compared accounts (all empty when this book does not compute it)."""
        if name not in self._columns:
            self._columns[name] = self.ev.frame[name][self.kept].reset_index(drop=True) if self.has(name) \
                else pd.Series([None] * int(self.kept.sum()), dtype=object)
        return self._columns[name]

    def on_hold(self) -> np.ndarray | None:
        if not self.has("credit_status"):
            return None
        return (self.column("credit_status") == HOLD).to_numpy()

    def sum(self, name: str) -> float | None:
        return float(pd.to_numeric(self.column(name), errors="coerce").sum()) if self.has(name) else None

    def exposure_on_hold(self) -> float | None:
        held = self.on_hold()
        if held is None or not self.has("exposure"):
            return None
        return float(pd.to_numeric(self.column("exposure"), errors="coerce")[held].sum())

    def accounts_on_hold(self) -> int | None:
        held = self.on_hold()
        return None if held is None else int(held.sum())


def _total(sides: tuple[_Side, _Side], figure: Callable[[_Side], float | None]) -> Total | None:
    base, change = figure(sides[0]), figure(sides[1])
    return None if base is None and change is None else Total(base, change)


class _AccountIds:
    """The account id of a row, from the column named account_id or any header the dictionary maps to it
    (read only for the rows reported, which are few)."""

    def __init__(self, frame: pd.DataFrame, *books: RuleBook):
        self.column = next((frame[h] for h in frame.columns if h == ACCOUNT_ID or any(
            b.dictionary.field_for_header(str(h)) == ACCOUNT_ID for b in books)), None)
        if isinstance(self.column, pd.DataFrame):  # two headers for the id: the first one
            self.column = self.column.iloc[:, 0]

    def __getitem__(self, row: int) -> Any:
        return None if self.column is None else _plain(self.column.iat[row])


def _tier_order(*books: RuleBook) -> list[Any]:
    """The tiers as a tier table declares them (values: [A, B, C, D]), base book first."""
    order: list[Any] = []
    for book in books:
        rule = book.outputs.get(TIER)
        if isinstance(rule, DecisionTableRule):
            spec = next(o for o in rule.output_specs if o["name"] == TIER)
            order += [v for v in spec.get("values") or [] if v not in order]
    return order


def _migration(sides: tuple[_Side, _Side], order: list[Any]) -> TierMigration | None:
    if not (sides[0].has(TIER) or sides[1].has(TIER)):
        return None
    both = pd.DataFrame({"base": sides[0].column(TIER).astype(object), "change": sides[1].column(TIER).astype(object)})
    pairs: Counter = Counter()
    for (base, change), n in both.value_counts(dropna=False).items():
        pairs[(_plain(base), _plain(change))] += int(n)
    seen = {t for pair in pairs for t in pair}
    labels = [t for t in order if t in seen]
    labels += sorted((t for t in seen if t is not None and t not in labels), key=str)
    labels.append(None)  # "no tier" always has its row and column, so the matrix shape is stable
    counts = [[pairs.get((f, t), 0) for t in labels] for f in labels]
    return TierMigration(labels, counts)


def _changed(name: str, sides: tuple[_Side, _Side], ids: _AccountIds, kept: np.ndarray) -> list[AccountChange] | None:
    if not (sides[0].has(name) or sides[1].has(name)):
        return None
    rows = np.flatnonzero(kept)
    old, new = sides[0].column(name).astype(object), sides[1].column(name).astype(object)
    if name in LISTS:
        # An empty list and no list are both "none"; the same items in another order are the same entitlements.
        pairs = enumerate(zip(old.tolist(), new.tolist(), strict=True))
        candidates = [k for k, (a, b) in pairs if (a or []) != (b or [])]
    else:
        empty = old.isna().to_numpy() & new.isna().to_numpy()
        candidates = np.flatnonzero((old != new).to_numpy() & ~empty).tolist()
    out = []
    for k in candidates:
        before, after = _plain(old.iat[k]), _plain(new.iat[k])
        row = int(rows[k])
        if name not in LISTS:
            out.append(AccountChange(row, ids[row], name, before, after))
            continue
        gained, lost = Counter(after or []) - Counter(before or []), Counter(before or []) - Counter(after or [])
        if gained or lost:
            out.append(AccountChange(row, ids[row], name, before, after, tuple(gained.elements()),
                                     tuple(lost.elements())))
    return out


def _errors(base: list[RowError], change: list[RowError], ids: _AccountIds) -> list[ImpactError]:
    def key(e: RowError) -> tuple:
        return (e.row, e.rule, e.field, e.message)

    in_base, in_change = {key(e) for e in base}, {key(e) for e in change}
    out = [ImpactError("both" if key(e) in in_change else "base", e.row, ids[e.row], e.rule, e.field, e.message)
           for e in base]
    out += [ImpactError("change", e.row, ids[e.row], e.rule, e.field, e.message)
            for e in change if key(e) not in in_base]
    return sorted(out, key=lambda e: (e.row, SIDES.index(e.side) if e.side in SIDES else -1))


def _plain(v: Any) -> Any:
    """A JSON-ready value: null for NaN / NaT / None, Python numbers, dates as ISO text."""
    if isinstance(v, list | tuple | np.ndarray):
        return [_plain(x) for x in v]
    if v is None or v is pd.NaT or (isinstance(v, float | np.floating) and math.isnan(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return int(v)
    return v


# --- text ----------------------------------------------------------------------------------------------------


_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "head": "Impact on {n:,} accounts ({c:,} compared), as of {d}", "migration": "Tier migration (base → change):",
        "none": "(none)", "tier_changed": "Tier changed for {n:,} accounts.",
        "changed": "{f} changed for {n:,} accounts",
        "absent": "{f}: computed by neither book", "more": "  … and {n:,} more",
        "credit_limit": "Total credit limit", "exposure_on_hold": "Exposure on hold",
        "accounts_on_hold": "Accounts on hold", "loyalty_points": "Loyalty points", "errors": "Row errors",
        "missing": "Not computed by the {side} book: {names}", "base": "base", "change": "changed", "both": "both",
        "entitlements": "Entitlements", "credit_status": "Credit status", "segment": "Segment",
        "gained": "gained", "lost": "lost",
    },
    "zh": {
        "head": "影响评估：共 {n:,} 个客户（比较 {c:,} 个），评估日 {d}", "migration": "客户等级迁移（原 → 新）：",
        "none": "（无）", "tier_changed": "{n:,} 个客户等级变化。", "changed": "{f}变化的客户：{n:,} 个",
        "absent": "{f}：两版规则都不计算", "more": "  … 另有 {n:,} 个",
        "credit_limit": "信用额度合计", "exposure_on_hold": "冻结客户敞口", "accounts_on_hold": "冻结客户数",
        "loyalty_points": "积分合计", "errors": "行错误", "missing": "{side}规则不计算：{names}",
        "base": "原", "change": "新", "both": "两版",
        "entitlements": "服务权益", "credit_status": "信用状态", "segment": "客户细分",
        "gained": "获得", "lost": "失去",
    },
}


def _render(imp: Impact, w: dict[str, str], limit: int) -> str:
    lines = [w["head"].format(n=imp.accounts, c=imp.compared, d=imp.as_of.isoformat())]
    for side in SIDES:
        if imp.missing[side]:
            lines.append(w["missing"].format(side=w[side], names=", ".join(imp.missing[side])))
    m = imp.tier_migration
    if m is not None:
        names = [w["none"] if t is None else str(t) for t in m.labels]
        width = max(6, *(len(n) + 1 for n in names), *(len(f"{c:,}") + 1 for row in m.counts for c in row))
        lines.append(w["migration"])
        lines.append(" " * width + "".join(n.rjust(width) for n in names))
        lines += [name.rjust(width) + "".join(f"{c:,}".rjust(width) for c in row)
                  for name, row in zip(names, m.counts, strict=True)]
        lines.append(w["tier_changed"].format(n=m.changed))
    for name, found in imp.changes.items():
        if found is None:
            lines.append(w["absent"].format(f=w[name]))
            continue
        lines.append(w["changed"].format(f=w[name], n=len(found)))
        for c in found[:limit]:
            extra = ""
            if c.field in LISTS:
                extra = f" ({w['gained']} {', '.join(map(str, c.gained)) or '-'}; " \
                        f"{w['lost']} {', '.join(map(str, c.lost)) or '-'})"
            lines.append(f"  {c.account_id if c.account_id is not None else '#' + str(c.row + 1)}: "
                         f"{_show(c.old, w)} → {_show(c.new, w)}{extra}")
        if len(found) > limit:
            lines.append(w["more"].format(n=len(found) - limit))
    for name, t in imp.totals.items():
        if t is None:
            continue
        delta = "" if t.delta is None else f" ({t.delta:+,.2f})".replace(".00)", ")")
        lines.append(f"{w[name]}: {_show(t.base, w)} → {_show(t.change, w)}{delta}")
    if imp.errors:
        lines.append(f"{w['errors']}: {len(imp.errors):,}")
        lines += [f"  [{w[e.side]}] #{e.row + 1} {e.account_id or ''} {e.rule or 'input'}/{e.field or '-'}: "
                  f"{e.message}" for e in imp.errors[:limit]]
        if len(imp.errors) > limit:
            lines.append(w["more"].format(n=len(imp.errors) - limit))
    return "\n".join(lines)


def _show(v: Any, w: dict[str, str]) -> str:
    if v is None:
        return w["none"]
    if isinstance(v, float):
        return f"{v:,.2f}".removesuffix(".00")
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)
