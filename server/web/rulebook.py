"""The rule book page: every rule by area with labels, description and last change; one rule in full."""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app, url_for

from kamcore import rulefile, yamlsource

from .. import services
from ..encoding import plain
from ..problems import ApiProblem
from . import blp
from .signin import page, show

AREAS = ("tiering", "segments", "entitlements", "credit", "loyalty", "actions", "events")
EDITABLE = ("decision_table", "scorecard")
_lock = threading.Lock()


def last_changes(revision: str) -> dict[str, dict[str, Any]]:
    """Rule id → the revision that last changed it, read once per head (walking history costs ~0.1 s a rule)."""
    cache = current_app.extensions.setdefault("kam_web_last_change", {})
    with _lock:
        if revision in cache:
            return cache[revision]
    store = services().store
    found = {}
    for rule in store.book(revision).rules:
        history = store.history(rule_id=rule.id, rev=revision)
        if history:
            found[rule.id] = history[0].to_dict()
    with _lock:
        cache.clear()
        cache[revision] = found
    return found


@blp.route("/rules")
@page("read")
def rule_book():
    book = services().rules.book()
    changed = last_changes(book.revision)
    areas: dict[str, list[dict[str, Any]]] = {}
    for rule in book.rules:
        areas.setdefault(rule.area or "other", []).append({**rule.describe(), "last_change": changed.get(rule.id)})
    order = sorted(areas, key=lambda a: AREAS.index(a) if a in AREAS else len(AREAS))
    data = {"revision": book.revision, "areas": [{"area": a, "rules": areas[a]} for a in order],
            "api": url_for("rules.Rules")}
    return show("rulebook.html", data, editable=EDITABLE)


def rule_document(rule_id: str, revision: str) -> tuple[Any, str, dict[str, Any]]:
    """(the rule, its YAML source, the rule as data) at `revision`."""
    book = services().store.book(revision)
    if rule_id not in book:
        raise ApiProblem(404, "Not found", f"no rule {rule_id!r} at revision {revision[:10]}")
    rule = book.rule(rule_id)
    source = rulefile.rule_source(services().store.read(rule.file, revision), rule_id)
    data, _ = yamlsource.load(source, rule.file)
    return rule, source, plain(data[0])


@blp.route("/rules/<rule_id>")
@page("read")
def rule_page(rule_id: str):
    revision = services().rules.book().revision
    rule, source, doc = rule_document(rule_id, revision)
    data = {**rule.describe(), "revision": revision, "rule": doc, "source": source,
            "last_change": last_changes(revision).get(rule_id), "api": url_for("rules.Rule", rule_id=rule_id)}
    return show("rule.html", data, editable=rule.kind in EDITABLE)
