"""History per rule or file, semantic diffs between revisions, blame per rule element."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import services
from ..auth import requires
from ..encoding import plain
from ..schemas import BlameEntrySchema, DiffQuery, HistoryQuery, RevisionSchema

blp = Blueprint("history", __name__, url_prefix="/v1", description="Who changed which rule, when and why")


@blp.route("/history")
class History(MethodView):
    @requires("read")
    @blp.arguments(HistoryQuery, location="query")
    @blp.response(200, RevisionSchema(many=True))
    def get(self, query: dict[str, Any]):
        """Revisions of the live book, newest first; `?rule=ID` or `?path=FILE` keeps those that changed it."""
        return [r.to_dict() for r in services().store.history(path=query.get("path"), rule_id=query.get("rule"))]


@blp.route("/diff")
class Diff(MethodView):
    @requires("read")
    @blp.arguments(DiffQuery, location="query")
    @blp.response(200)
    def get(self, query: dict[str, Any]):
        """The semantic diff per rule (rows added / removed / changed, thresholds moved, labels) and the raw diff."""
        return plain(services().store.diff(query["from_"], query["to"]).to_dict())


@blp.route("/rules/<rule_id>/blame")
class Blame(MethodView):
    @requires("read")
    @blp.response(200, BlameEntrySchema(many=True))
    def get(self, rule_id: str):
        """For each element of a rule (header, table row, scorecard band…): the revision that last changed it."""
        return [b.to_dict() for b in services().store.blame(rule_id)]
