"""Change requests (four-eyes): the list, one request with its diff, approve / reject for approvers."""

from __future__ import annotations

from flask import redirect, request, url_for

from .. import services
from ..api.changes import store_diff
from ..auth import authenticate
from ..encoding import plain
from ..problems import ApiProblem
from . import blp
from .signin import page, show


@blp.route("/changes")
@page("read")
def change_requests():
    status = request.args.get("status") or None
    data = {"status": status, "changes": [c.to_dict() for c in services().store.change_requests(status)],
            "require_approval": services().store.require_approval, "api": url_for("changes.ChangeRequests")}
    return show("changes.html", data)


@blp.route("/changes/<cr_id>")
@page("read")
def change_request(cr_id: str):
    cr = services().store.change_request(cr_id)
    data = {"change": cr.to_dict(), "diff": plain(store_diff(cr_id)), "head": services().store.head(),
            "api": url_for("changes.ChangeRequest", cr_id=cr_id)}
    return show("change.html", data)


@blp.route("/changes/<cr_id>/review", methods=["POST"])
@page("approve")
def review(cr_id: str):
    store, me = services().store, authenticate().name
    if request.form.get("decision") == "approve":
        store.approve(cr_id, me)
    elif request.form.get("decision") == "reject":
        reason = request.form.get("reason", "").strip()
        if not reason:
            raise ApiProblem(422, "A reason is needed", "say why the change is rejected")
        store.reject(cr_id, me, reason)
    else:
        raise ApiProblem(422, "Approve or reject?", "the form names neither")
    return redirect(url_for("web.change_request", cr_id=cr_id))
