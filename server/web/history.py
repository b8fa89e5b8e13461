"""History pages: revisions overall or per rule, one revision's semantic and raw diff, blame, revert."""

from __future__ import annotations

from flask import redirect, request, url_for

from .. import services
from ..encoding import plain
from ..problems import ApiProblem
from . import blp
from .signin import page, show


@blp.route("/history")
@page("read")
def history():
    rule = request.args.get("rule") or None
    revisions = [r.to_dict() for r in services().store.history(rule_id=rule)]
    data = {"rule": rule, "revisions": revisions,
            "api": url_for("history.History", **({"rule": rule} if rule else {}))}
    return show("history.html", data)


@blp.route("/revisions/<rev>")
@page("read")
def revision(rev: str):
    store = services().store
    found = store.history(rev=store.resolve(rev))[0]
    parent = found.parents[0] if found.parents else None
    diff = plain(store.diff(parent, found.id).to_dict()) if parent else None
    data = {"revision": found.to_dict(), "parent": parent, "diff": diff, "head": store.head(),
            "api": url_for("history.Diff", **{"from": parent, "to": found.id}) if parent else None}
    return show("revision.html", data)


@blp.route("/rules/<rule_id>/blame")
@page("read")
def blame(rule_id: str):
    if rule_id not in services().rules.book():
        raise ApiProblem(404, "Not found", f"no rule {rule_id!r}")
    data = {"rule": rule_id, "blame": [b.to_dict() for b in services().store.blame(rule_id)],
            "api": url_for("history.Blame", rule_id=rule_id)}
    return show("blame.html", data)


@blp.route("/revert", methods=["POST"])
@page("approve")
def revert():
    from ..auth import authenticate

    rev = request.form.get("revision", "")
    message = request.form.get("message", "").strip() or f"Revert to {rev[:10]}"
    new = services().store.revert(rev, authenticate().name, message)
    return redirect(url_for("web.revision", rev=new))
