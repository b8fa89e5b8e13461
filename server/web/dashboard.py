"""The portfolio dashboard: tier pyramid, Pareto curve, tier migration between two revisions, credit
utilisation with the accounts on warn / hold, segments with their countermeasures."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from flask import request

from .. import services
from . import blp, charts, i18n, portfolio
from .signin import page, show

WORDS = ("Tier", "Accounts", "Share of accounts", "Share of revenue", "From", "To", "Utilisation", "Credit status")


def _tiers(book: Any) -> list[Any]:
    rule = book.outputs.get("tier")
    specs = getattr(rule, "output_specs", None) or []
    values = next((list(s.get("values") or []) for s in specs if s.get("name") == "tier"), [])
    return values or ["A", "B", "C", "D"]


def _migration(a: pd.DataFrame, b: pd.DataFrame, tiers: list[Any]) -> dict[str, Any]:
    """The same accounts' tiers under two revisions (rows: from, columns: to)."""
    labels = [*tiers, None]
    before = a["tier"].where(a["tier"].isin(tiers), None)
    after = b["tier"].where(b["tier"].isin(tiers), None)
    key = {t: i for i, t in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for (x, y), n in pd.DataFrame({"a": before, "b": after}).value_counts(dropna=False).items():
        counts[key[None if pd.isna(x) else x]][key[None if pd.isna(y) else y]] += int(n)
    changed = sum(c for i, row in enumerate(counts) for j, c in enumerate(row) if i != j)
    return {"labels": labels, "counts": counts, "changed": changed}


NUMBERS = ("revenue_12m", "utilisation", "exposure", "credit_limit", "dso_days")


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Input columns as the sheet gave them (text from a csv) made numbers for the sums and bands."""
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in NUMBERS if c in frame.columns})


@blp.route("/dashboard")
@page("read")
def dashboard():
    started = time.perf_counter()
    store = services().store
    head = services().rules.book().revision
    revisions = [r.to_dict() for r in store.history()[:30]]
    to_rev = store.resolve(request.args.get("to") or head)
    default_from = next((r["parents"][0] for r in revisions if r["id"] == to_rev and r["parents"]), to_rev)
    from_rev = store.resolve(request.args.get("from") or default_from)
    words = {w: i18n.t(w) for w in WORDS}
    data: dict[str, Any] = {"revision": to_rev, "from": from_rev, "to": to_rev, "revisions": revisions,
                            "portfolio": None}
    evaluation = portfolio.evaluated(to_rev)
    if evaluation is None:
        return show("dashboard.html", data, specs={})
    frame = _numbers(evaluation.frame[evaluation.ok])
    book = store.book(to_rev)
    tiers = _tiers(book)
    pyramid, pyramid_spec = charts.pyramid(frame, tiers, words)
    pareto, pareto_spec = charts.pareto(frame["revenue_12m"], words)
    before = portfolio.evaluated(from_rev)
    both = evaluation.ok & before.ok
    migration = _migration(before.frame[both], evaluation.frame[both], tiers)
    utilisation, utilisation_spec = charts.utilisation(frame, words)
    on_watch, watched = charts.watched(frame)
    segments = charts.segments(frame)
    data.update(portfolio={"accounts": len(evaluation.frame), "evaluated": int(evaluation.ok.sum()),
                           "errors": len(evaluation.errors)},
                pyramid=pyramid, pareto=pareto, migration=migration, utilisation=utilisation,
                on_watch=on_watch, watched=watched, segments=segments)
    specs = {"pyramid": pyramid_spec, "pareto": pareto_spec,
             "migration": charts.migration({"tier_migration": migration}, words),
             "utilisation": utilisation_spec}
    data["build_seconds"] = round(time.perf_counter() - started, 3)
    return show("dashboard.html", data, specs=specs)
