"""`POST /v1/evaluate.xlsx`: a workbook in, the same workbook back with result columns beside its account table."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from kamcore.errors import InputError
from kamcore.sheetscore import NOTE_RULES
from kamcore.workbook import score_workbook

from .. import services
from ..auth import requires
from ..problems import PROBLEM_JSON, ApiProblem
from ..schemas import EvaluateQuery, ProblemSchema
from .evaluate import XLSX, evaluate_accounts

blp = Blueprint("workbooks", __name__, url_prefix="/v1", description="Score an xlsx workbook in place")


@blp.route("/evaluate.xlsx")
class EvaluateWorkbook(MethodView):
    @requires("read")
    @blp.arguments(EvaluateQuery, location="query")
    @blp.doc(requestBody={"required": True, "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}},
             responses={"200": {"description": "the same workbook with the results beside its account table",
                                "content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
    @blp.response(200, content_type=XLSX)
    @blp.alt_response(415, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, query: dict[str, Any]):
        """The uploaded workbook with tier, segment, credit status, credit limit, entitlements, points and next
        actions beside its account table (headers in `lang`), tier and credit colours, the tier explanation as a
        note on each tier cell, a `规则版本 / Rules version` cell; a bad row keeps its place with its message.
        Every other sheet, formula and format is kept. Headers `X-Rules-Version`, `X-Decision-Id`."""
        if request.mimetype != XLSX:
            raise ApiProblem(415, "Unsupported media type", f"send the workbook as {XLSX}")
        return scored_workbook(query)


def scored_workbook(query: dict[str, Any]) -> Response:
    lang = query["lang"]
    book = services().rules.book(query.get("rev"))

    def evaluate(accounts: list[dict[str, Any]]) -> dict[str, Any]:
        return evaluate_accounts(accounts, explain=True, explain_rules=NOTE_RULES, as_of=query.get("as_of"),
                                 rev=query.get("rev"), lang=lang)

    try:
        result = score_workbook(request.get_data(), book, evaluate, lang)
    except InputError as e:
        raise ApiProblem(422, "The workbook cannot be scored", str(e)) from None
    response = Response(result.data, mimetype=XLSX)
    response.headers["Content-Disposition"] = 'attachment; filename="scored.xlsx"'
    response.headers["X-Rules-Version"] = result.scored.revision or ""
    response.headers["X-Decision-Id"] = result.scored.decision_id or ""
    response.headers["X-Accounts-Scored"] = str(result.scored.scored)
    response.headers["X-Accounts-With-Errors"] = str(len({e["row"] for e in result.scored.errors}))
    return response
