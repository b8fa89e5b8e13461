"""Rule tables in Excel: `GET /v1/rules/<id>/table.xlsx` to edit a decision table or scorecard in Excel, `PUT` it
back as a rule change (checked, tested and committed, or refused with `Sheet!C7` cell addresses)."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from kamcore import ruletable
from kamcore.errors import InputError

from .. import services
from ..auth import authenticate, requires
from ..problems import PROBLEM_JSON, ApiProblem
from ..schemas import ProblemSchema, RuleQuery, Strict
from .evaluate import XLSX
from .rules import if_match

blp = Blueprint("ruletables", __name__, url_prefix="/v1/rules",
                description="Rule tables in Excel: a decision table or scorecard as an xlsx workbook, and back")

IF_MATCH = {"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
            "description": "the revision the table was edited on; without it, the one the workbook was exported at "
                           "(409 when the rule's file changed since)"}


class TableImportQuery(Strict):
    message = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                            metadata={"description": "why the rule changes (the commit message)"})


class TableImportResult(Schema):
    rule_id = fields.String()
    file = fields.String()
    base = fields.String(metadata={"description": "the revision the change was applied to"})
    revision = fields.String(allow_none=True, metadata={"description": "the new head, when committed"})
    change_request = fields.Dict(allow_none=True, metadata={"description": "when approval is required"})
    unchanged = fields.Boolean(metadata={"description": "the table says what the rule says: nothing committed"})


@blp.route("/<rule_id>/table.xlsx")
class RuleTable(MethodView):
    @requires("read")
    @blp.arguments(RuleQuery, location="query")
    @blp.doc(responses={"200": {"description": "the rule table workbook",
                                "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
    @blp.response(200, content_type=XLSX,
                  headers={"ETag": {"description": "the revision exported", "schema": {"type": "string"}}})
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def get(self, query: dict[str, Any], rule_id: str):
        """The decision table or scorecard as an xlsx workbook: one sheet per table (per indicator for a
        scorecard), headers in 中文 / English, hit policy / defaults / weights shown, and the rule id, file and
        base revision in a hidden sheet for the import."""
        store = services().store
        base = store.resolve(query.get("rev") or "HEAD")
        book = store.book(base)
        if rule_id not in book:
            raise ApiProblem(404, "Not found", f"no rule {rule_id!r} at revision {base}")
        try:
            data = ruletable.export_table(book, rule_id, store.read(book.rule(rule_id).file, base), base)
        except InputError as e:
            raise ApiProblem(422, "This rule has no table", str(e)) from None
        response = Response(data, mimetype=XLSX)
        response.headers["Content-Disposition"] = f'attachment; filename="{rule_id}.xlsx"'
        response.headers["ETag"] = f'"{base}"'
        return response

    @requires("edit")
    @blp.arguments(TableImportQuery, location="query")
    @blp.doc(parameters=[IF_MATCH],
             requestBody={"required": True, "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}})
    @blp.response(200, TableImportResult)
    @blp.alt_response(202, schema=TableImportResult)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(415, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(428, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def put(self, query: dict[str, Any], rule_id: str):
        """Import an edited rule table as a rule change with `message`: rebuilt from its sheets, validated and its
        rule tests run, then committed (200), or a change request when approval is required (202). `unchanged`
        when the table says what the rule says. 422 lists every problem as `problems[].text` = `Sheet!C7:
        message`; 409 when the rule's file changed since the table's base, naming those `changes`."""
        if request.mimetype != XLSX:
            raise ApiProblem(415, "Unsupported media type", f"send the workbook as {XLSX}")
        if (request.content_length or 0) > ruletable.MAX_BYTES:
            raise ApiProblem(413, "Payload too large",
                             f"a rule table is at most {ruletable.MAX_BYTES // 1024 // 1024} MiB")
        base = if_match() if request.headers.get("If-Match") else None
        data = request.get_data()
        if len(data) > ruletable.MAX_BYTES:
            raise ApiProblem(413, "Payload too large",
                             f"a rule table is at most {ruletable.MAX_BYTES // 1024 // 1024} MiB")
        store = services().store
        try:
            done = ruletable.import_table(store, data, authenticate().name, query["message"], base,
                                          name=f"{rule_id}.xlsx", rule_id=rule_id)
        except ruletable.TableRefused as e:
            raise ApiProblem(422, "The rule table was refused", str(e),
                             problems=[p.to_dict() for p in e.problems]) from None
        except ruletable.StaleTable as e:
            raise ApiProblem(409, "The rule changed since the table was exported", str(e), base=e.base, head=e.head,
                             changes=[r.to_dict() for r in e.changes]) from None
        except InputError as e:
            raise ApiProblem(422, "The workbook is not this rule's table", str(e)) from None
        if done.change_request is not None:
            return done.to_dict(), 202
        return done.to_dict(), 200, {"ETag": f'"{done.revision or store.head()}"'}
