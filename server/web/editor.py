"""The decision-table / scorecard editor: the grid page, per-cell checks, the impact preview and saving."""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, render_template, request, url_for

from kamcore.rulegrid import CellError, Layout, file_text
from kamcore.store import StaleBase, ValidationFailed

from .. import services
from ..auth import authenticate
from ..encoding import plain
from ..problems import ApiProblem, problem_dicts
from . import blp, portfolio
from .rulebook import rule_document
from .signin import page, show

PREVIEW_ACCOUNTS = 50  # changed accounts listed per output in the preview (the counts stay whole)


def _layout(rule_id: str, base: str, indicator: str | None) -> tuple[Any, dict[str, Any], Layout]:
    rule, _source, doc = rule_document(rule_id, base)
    try:
        return rule, doc, Layout.of(rule, doc, indicator)
    except ValueError as e:
        raise ApiProblem(422, "This rule has no grid", str(e)) from None


def _editor(rule_id: str, base: str, indicator: str | None, rows: list[dict[str, Any]] | None = None,
            message: str = "", stale: dict[str, Any] | None = None, refused: str | None = None, status: int = 200):
    rule, doc, layout = _layout(rule_id, base, indicator)
    data = {"rule": rule.describe(), "base": base, "head": services().store.head(), "kind": layout.kind,
            "columns": list(layout.columns), "inputs": list(layout.inputs), "outputs": list(layout.outputs),
            "indicator": layout.indicator, "indicators": [i["name"] for i in doc.get("indicators") or []],
            "rows": rows if rows is not None else layout.rows(doc), "message": message, "stale": stale,
            "refused": refused,
            "require_approval": services().store.require_approval,
            "api": url_for("rules.Rule", rule_id=rule_id)}
    book = services().store.book(base)
    labels = {n: f.label for n, f in book.dictionary.fields.items()}
    labels |= {n: r.outputs[n].label for n, r in book.outputs.items()}
    return show("editor.html", data, status=status, labels=labels)


@blp.route("/rules/<rule_id>/edit")
@page("edit")
def editor(rule_id: str):
    return _editor(rule_id, services().store.head(), request.args.get("indicator"))


def _proposal(rule_id: str, body: dict[str, Any]) -> tuple[str, str, str, Layout]:
    """(base, file, new file text, layout) of the grid in a request; CellError for a cell that is no value."""
    store = services().store
    base = store.resolve(str(body.get("base") or "HEAD"))
    rule, doc, layout = _layout(rule_id, base, body.get("indicator"))
    rows = body.get("rows")
    if not isinstance(rows, list):
        raise ApiProblem(422, "No rows", "send the grid's rows")
    new_doc = layout.document(doc, rows)
    text = file_text(store.read(rule.file, base), rule_id, new_doc)
    return base, rule.file, text, layout


@blp.route("/rules/<rule_id>/check", methods=["POST"])
@page("edit")
def check(rule_id: str):
    """Validate the grid as typed (the store's validate, as `POST /v1/rules/validate`): messages per cell."""
    body = request.get_json(silent=True) or {}
    try:
        base, file, text, layout = _proposal(rule_id, body)
    except CellError as e:
        return {"ok": False, "cells": [{"row": r, "column": c, "message": m} for r, c, m in e.cells], "problems": []}
    try:
        services().store.validate({file: text}, base)
    except ValidationFailed as e:
        cells, others = [], []
        for problem, shown in zip(e.problems, problem_dicts(e.problems), strict=True):
            where = layout.cell_of(problem, text, file, rule_id) if problem.is_error else None
            if where is None:
                others.append(shown)
            else:
                cells.append({"row": where[0], "column": where[1], "message": problem.message})
        return {"ok": False, "cells": cells, "problems": others}
    return {"ok": True, "cells": [], "problems": []}


@blp.route("/rules/<rule_id>/impact", methods=["POST"])
@page("edit")
def impact(rule_id: str):
    """What the grid would change on the current portfolio: the HTML of the preview plus the figures."""
    body = request.get_json(silent=True) or {}
    frame = portfolio.current()
    if frame is None:
        return {"html": render_template("_impact.html", impact=None), "impact": None}
    try:
        base, file, text, _layout_ = _proposal(rule_id, body)
        report = plain(services().store.impact({file: text}, frame, base).to_dict(limit=PREVIEW_ACCOUNTS))
    except CellError as e:
        return {"html": render_template("error_inline.html", detail=e.message), "impact": None}, 422
    except ValidationFailed as e:
        return {"html": render_template("error_inline.html", detail=str(e)), "impact": None}, 422
    return {"html": render_template("_impact.html", impact=report), "impact": report}


@blp.route("/rules/<rule_id>/save", methods=["POST"])
@page("edit")
def save(rule_id: str):
    form = request.form
    message = form.get("message", "").strip()
    indicator = form.get("indicator") or None
    try:
        rows = json.loads(form["rows"])
    except (KeyError, json.JSONDecodeError):
        raise ApiProblem(422, "The grid did not arrive", "reload the editor and try again") from None
    base = services().store.resolve(form.get("base") or "HEAD")
    if not message:
        return _editor(rule_id, base, indicator, rows, message, refused="a change needs a message", status=422)
    body = {"base": base, "indicator": indicator, "rows": rows}
    try:
        base, file, text, _layout_ = _proposal(rule_id, body)
        store, author = services().store, authenticate().name
        if store.require_approval:
            cr = store.propose({file: text}, base, author, message)
            return redirect(url_for("web.change_request", cr_id=cr.id))
        revision = store.commit({file: text}, base, author, message)
    except StaleBase as e:
        # Never overwrite: show what changed meanwhile and let the editor put these rows on top of it.
        other = services().store.diff(e.base, e.head)
        stale = {"base": e.base, "head": e.head, "diff": plain(other.to_dict()),
                 "revisions": [r.to_dict() for r in services().store.history()
                               if r.id != e.base][:10]}
        return _editor(rule_id, base, indicator, rows, message, stale=stale, status=409)
    except (CellError, ValidationFailed) as e:
        return _editor(rule_id, base, indicator, rows, message, refused=str(e), status=422)
    return redirect(url_for("web.revision", rev=revision))

