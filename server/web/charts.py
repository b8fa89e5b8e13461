"""The dashboard's figures from an evaluated portfolio, each as a small table and a Vega-Lite spec (altair)."""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

PARETO_POINTS = 200  # the curve is drawn through this many points whatever the portfolio's size
UTILISATION_BINS = [0, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.2, np.inf]
WATCHED = ("warn", "guarantee_required", "hold")


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return chart.properties(width="container").to_dict()


def pyramid(frame: pd.DataFrame, tiers: list[Any], words: dict[str, str]) -> tuple[list[dict], dict]:
    """Accounts and revenue per tier, the top tier on top."""
    grouped = frame.groupby(frame["tier"].astype(object), dropna=False).agg(
        accounts=("tier", "size"), revenue=("revenue_12m", "sum"))
    table = [{"tier": "—" if pd.isna(t) else t, "accounts": int(grouped.loc[t, "accounts"]) if t in grouped.index
              else 0, "revenue": float(grouped.loc[t, "revenue"]) if t in grouped.index else 0.0} for t in tiers]
    total = sum(r["accounts"] for r in table) or 1
    for r in table:
        r["share"] = r["accounts"] / total
    data = pd.DataFrame(table)
    chart = alt.Chart(data).mark_bar().encode(
        y=alt.Y("tier:N", sort=[r["tier"] for r in table], title=words["Tier"]),
        x=alt.X("accounts:Q", title=words["Accounts"]),
        color=alt.Color("tier:N", legend=None, sort=[r["tier"] for r in table]),
        tooltip=["tier", "accounts", alt.Tooltip("revenue:Q", format=",.0f")]).properties(height=160)
    return table, _spec(chart)


def pareto(revenue: pd.Series, words: dict[str, str]) -> tuple[dict[str, Any], dict]:
    """Cumulative revenue share against account share (largest first) and the share of accounts making 80%."""
    values = np.sort(np.clip(revenue.fillna(0).to_numpy(dtype=float), 0, None))[::-1]
    total = values.sum()
    n = len(values)
    cumulative = np.cumsum(values) / total if total > 0 else np.zeros(n)
    at80 = (int(np.searchsorted(cumulative, 0.8)) + 1) / n if n else 0.0
    picks = np.unique(np.linspace(0, n - 1, min(n, PARETO_POINTS)).astype(int)) if n else np.array([], int)
    points = pd.DataFrame({"accounts": (picks + 1) / n, "revenue": cumulative[picks]})
    line = alt.Chart(points).mark_line().encode(
        x=alt.X("accounts:Q", axis=alt.Axis(format="%"), title=words["Share of accounts"]),
        y=alt.Y("revenue:Q", axis=alt.Axis(format="%"), title=words["Share of revenue"]))
    rule80 = alt.Chart(pd.DataFrame({"y": [0.8]})).mark_rule(color="firebrick", strokeDash=[4, 4]).encode(y="y:Q")
    marker = alt.Chart(pd.DataFrame({"x": [at80]})).mark_rule(color="gray", strokeDash=[2, 2]).encode(x="x:Q")
    table = {"accounts": n, "revenue": float(total), "share_of_accounts_for_80pct": at80,
             "top_decile_share": float(cumulative[max(int(n * 0.1) - 1, 0)]) if n else 0.0}
    return table, _spec(alt.layer(line, rule80, marker).properties(height=220))


def migration(report: dict[str, Any] | None, words: dict[str, str]) -> dict | None:
    """A heat map of the tier migration matrix (from → to)."""
    if not report or not report.get("tier_migration"):
        return None
    m = report["tier_migration"]
    labels = ["—" if v is None else str(v) for v in m["labels"]]
    cells = pd.DataFrame([{"from": labels[i], "to": labels[j], "accounts": c}
                          for i, row in enumerate(m["counts"]) for j, c in enumerate(row)])
    base = alt.Chart(cells).encode(x=alt.X("to:N", sort=labels, title=words["To"]),
                                   y=alt.Y("from:N", sort=labels, title=words["From"]))
    heat = base.mark_rect().encode(color=alt.Color("accounts:Q", scale=alt.Scale(scheme="blues")))
    text = base.mark_text().encode(text="accounts:Q")
    return _spec(alt.layer(heat, text).properties(height=200))


def utilisation(frame: pd.DataFrame, words: dict[str, str]) -> tuple[list[dict], dict]:
    """Accounts per utilisation band, split by credit status."""
    used = frame[frame["utilisation"].notna()]
    bands = pd.cut(used["utilisation"].astype(float), UTILISATION_BINS, right=False,
                   labels=[_band(a, b) for a, b in zip(UTILISATION_BINS, UTILISATION_BINS[1:], strict=False)])
    status = used["credit_status"].astype(object).where(used["credit_status"].notna(), "—")
    counts = used.groupby([bands, status], observed=True).size().reset_index()
    counts.columns = ["band", "status", "accounts"]
    counts["band"] = counts["band"].astype(str)
    order = [_band(a, b) for a, b in zip(UTILISATION_BINS, UTILISATION_BINS[1:], strict=False)]
    chart = alt.Chart(counts).mark_bar().encode(
        x=alt.X("band:N", sort=order, title=words["Utilisation"]), y=alt.Y("accounts:Q", title=words["Accounts"]),
        color=alt.Color("status:N", title=words["Credit status"],
                        scale=alt.Scale(domain=["ok", "warn", "guarantee_required", "hold", "—"],
                                        range=["#4c9a2a", "#e0a100", "#e07000", "#c0392b", "#999999"])),
        tooltip=["band", "status", "accounts"]).properties(height=220)
    return counts.to_dict("records"), _spec(chart)


def _band(a: float, b: float) -> str:
    return f"≥{a:.0%}" if b == np.inf else f"{a:.0%}–{b:.0%}"


def watched(frame: pd.DataFrame, limit: int = 50) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """How many accounts are on warn / guarantee / hold, and the largest exposures among them."""
    on = frame[frame["credit_status"].isin(WATCHED)]
    counts = {s: int((on["credit_status"] == s).sum()) for s in WATCHED}
    columns = [c for c in ("account_id", "account_name", "tier", "credit_status", "utilisation", "exposure",
                           "credit_limit", "dso_days") if c in frame.columns]
    top = on.sort_values("exposure", ascending=False).head(limit)[columns]
    return counts, top.astype(object).where(top.notna(), None).to_dict("records")


def segments(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Accounts and revenue per segment with its countermeasure."""
    segment = frame["segment"].astype(object).where(frame["segment"].notna(), "—")
    grouped = frame.groupby(segment, dropna=False).agg(
        accounts=("segment", "size"), revenue=("revenue_12m", "sum"),
        countermeasure=("countermeasure", lambda s: s.dropna().iloc[0] if s.notna().any() else ""))
    return [{"segment": k, "accounts": int(r.accounts), "revenue": float(r.revenue),
             "countermeasure": r.countermeasure} for k, r in grouped.sort_values("revenue", ascending=False).iterrows()]
