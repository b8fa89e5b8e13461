"""The decision page for auditors: inputs, outputs and trace of a recorded decision, reproduce, chain status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import request, url_for

from .. import services
from ..encoding import plain, records
from . import blp, i18n
from .signin import page, show

TRACED = 20  # accounts explained on the page; the rest are in the inputs / outputs tables


@blp.route("/decisions", methods=["GET", "POST"])
@page("audit")
def decision():
    decision_id = (request.values.get("id") or "").strip()
    check = services().decisions.verify()
    data: dict[str, Any] = {
        "chain": {"ok": check.ok, "records": check.records, "first_problem": str(check.first) if check.first else None},
        "decision": None, "traces": [], "reproduction": None, "id": decision_id,
        "api": url_for("decisions.Verify")}
    if not decision_id:
        return show("decisions.html", data)
    d = services().decisions.get(decision_id)  # 404 / 409 pages: web/errors.py
    data["decision"] = {"decision_id": d.id, "time": d.time.isoformat(), "actor": d.actor, "rules_version": d.revision,
                        "as_of": d.as_of.isoformat(), "input_digest": d.input_digest, "inputs": records(d.inputs),
                        "outputs": records(d.outputs), "errors": [plain(asdict(e)) for e in d.errors],
                        "hash": d.hash, "prev_hash": d.prev_hash}
    data["api"] = url_for("decisions.Decision", decision_id=d.id)
    book = services().store.book(d.revision)
    shown = d.inputs.head(TRACED)
    evaluation = book.evaluate(shown.to_dict("records"), as_of=d.as_of)
    data["traces"] = [{"row": i, "text": evaluation.explain(i).text(i18n.lang()), "trace": plain(
        evaluation.explain(i).to_dict())} for i in range(len(shown))]
    if request.method == "POST":  # the reproduce button
        result = services().decisions.reproduce(d.id, services().store)
        data["reproduction"] = plain({"identical": result.identical, "accounts": result.accounts,
                                      "rules_version": result.revision,
                                      "differences": [asdict(x) for x in result.differences]})
    return show("decisions.html", data)
