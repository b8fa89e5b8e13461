"""Change requests (four-eyes): list, read, approve, reject; and reverting to an earlier revision."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import services
from ..auth import authenticate, requires
from ..problems import PROBLEM_JSON
from ..schemas import ChangeRequestQuery, ChangeRequestSchema, ProblemSchema, RejectRequest, RevertRequest, WriteResult

blp = Blueprint("changes", __name__, url_prefix="/v1", description="Change requests and reverts")


@blp.route("/changes")
class ChangeRequests(MethodView):
    @requires("read")
    @blp.arguments(ChangeRequestQuery, location="query")
    @blp.response(200, ChangeRequestSchema(many=True))
    def get(self, query: dict[str, Any]):
        """Change requests, newest first (`?status=open|approved|rejected`)."""
        return [c.to_dict() for c in services().store.change_requests(query.get("status"))]


@blp.route("/changes/<cr_id>")
class ChangeRequest(MethodView):
    @requires("read")
    @blp.response(200, ChangeRequestSchema)
    def get(self, cr_id: str):
        """One change request with the files it changes."""
        store = services().store
        cr = store.change_request(cr_id)
        return {**cr.to_dict(), "diff": store_diff(cr_id)}


def store_diff(cr_id: str) -> dict[str, Any]:
    from kamcore.rulediff import diff_books

    store = services().store
    cr = store.change_request(cr_id)
    return diff_books(store.files(cr.base), store.change_request_files(cr_id)).to_dict()


@blp.route("/changes/<cr_id>/approve")
class Approve(MethodView):
    @requires("approve")
    @blp.response(200, WriteResult)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, cr_id: str):
        """Commit a change request. The approver must not be its author; its base must still be the head."""
        revision = services().store.approve(cr_id, authenticate().name)
        return {"revision": revision, "change_request": services().store.change_request(cr_id).to_dict()}


@blp.route("/changes/<cr_id>/reject")
class Reject(MethodView):
    @requires("approve")
    @blp.arguments(RejectRequest)
    @blp.response(200, ChangeRequestSchema)
    def post(self, body: dict[str, Any], cr_id: str):
        """Close a change request without committing it; it stays on record with the reason."""
        return services().store.reject(cr_id, authenticate().name, body["reason"]).to_dict()


@blp.route("/revert")
class Revert(MethodView):
    @requires("approve")
    @blp.arguments(RevertRequest)
    @blp.response(200, WriteResult)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, body: dict[str, Any]):
        """Restore the rule book as it was at `revision`, as a new commit (history is never rewritten)."""
        revision = services().store.revert(body["revision"], authenticate().name, body["message"])
        return {"revision": revision, "change_request": None}
