"""Excel without an add-in: `GET /v1/cell/<output>` answers one value as bare text for `WEBSERVICE()`, and
`POST /v1/evaluate.csv` takes and gives CSV for Power Query."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from kamcore.errors import InputError
from kamcore.portfolio import read_table
from kamcore.sheetscore import safe_text

from .. import services
from ..auth import requires
from ..problems import PROBLEM_JSON, ApiProblem
from ..schemas import EvaluateQuery, ProblemSchema
from .evaluate import evaluate_accounts

blp = Blueprint("cells", __name__, url_prefix="/v1", description="Excel without an add-in: WEBSERVICE() and CSV")

CELL_PARAMETERS = ("token", "lang", "rev", "as_of")  # query keys that are not account fields
TEXT = "text/plain; charset=utf-8"
CSV = "text/csv; charset=utf-8"
ERRORS_COLUMN = "kam_errors"


@blp.before_request
def _token_from_query() -> None:
    """`WEBSERVICE()` cannot send headers, so the cell endpoint also takes the bearer token as `?token=` (only
    this endpoint; the access log records the path without its query, so the token is not logged)."""
    token = request.args.get("token")
    if request.endpoint == "cells.Cell" and token and "Authorization" not in request.headers:
        principal = services().tokens.principal(token.strip())
        if principal is None:
            raise ApiProblem(401, "Unauthorized", "the token is unknown or revoked")
        g.principal = principal


@blp.route("/cell/<output>")
class Cell(MethodView):
    @requires("read")
    @blp.doc(parameters=[{"name": "token", "in": "query", "schema": {"type": "string"},
                          "description": "the bearer token, for WEBSERVICE() which cannot send headers"}])
    @blp.response(200, content_type="text/plain")
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def get(self, output: str):
        """One output of one account as bare text, e.g.
        `=WEBSERVICE("http://host/v1/cell/tier?revenue_12m="&B2&"&dso_days="&F2&"&token=...")`. Every other query
        parameter is an account field (name or sheet header, 中文 or English); `lang=zh|en` shows coded values
        as labels; lists read `a, b, c`; an empty result is an empty text."""
        book = services().rules.book(request.args.get("rev"))
        if output not in book.outputs:
            raise ApiProblem(404, "Not found", f"no output {output!r}; outputs: {', '.join(book.outputs)}")
        account = {k: v for k, v in request.args.items() if k not in CELL_PARAMETERS}
        lang = request.args.get("lang")
        if lang not in (None, "zh", "en"):
            raise ApiProblem(422, "The request is not valid", "lang must be zh or en")
        answer = evaluate_accounts([account], as_of=request.args.get("as_of"), rev=request.args.get("rev"))
        if answer["errors"]:
            detail = "; ".join(f"{e['field'] or e['rule'] or 'input'}: {e['message']}" for e in answer["errors"])
            raise ApiProblem(422, "The account cannot be evaluated", detail)
        value = answer["results"][0].get(output)
        response = Response(_text(book, output, value, lang), mimetype="text/plain")
        response.headers["X-Rules-Version"] = answer["rules_version"]
        return response


@blp.route("/evaluate.csv")
class EvaluateCsv(MethodView):
    @requires("read")
    @blp.arguments(EvaluateQuery, location="query")
    @blp.doc(requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})
    @blp.response(200, content_type="text/csv")
    @blp.alt_response(415, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, query: dict[str, Any]):
        """CSV in (UTF-8 or GBK, a title row or a totals row allowed), CSV out: every input row in order with
        every output appended (labels with `lang=zh|en` given explicitly, else codes) and a `kam_errors` column
        naming what was wrong with a bad row. Text a spreadsheet would take for a formula is prefixed with `'`."""
        if request.mimetype != "text/csv":
            raise ApiProblem(415, "Unsupported media type", "send the table as text/csv")
        try:
            frame = read_table(request.get_data(), "csv", services().rules.book(query.get("rev")).dictionary)
        except InputError as e:
            raise ApiProblem(422, "The uploaded table cannot be read", str(e)) from None
        accounts = frame.astype(object).where(frame.notna(), None).to_dict("records")
        answer = evaluate_accounts(accounts, as_of=query.get("as_of"), rev=query.get("rev"))
        book = services().rules.book(answer["rules_version"])
        lang = request.args.get("lang")
        outputs = list(book.outputs)
        by_row = {r["row"]: r for r in answer["results"]}
        errors: dict[int, list[str]] = {}
        for e in answer["errors"]:
            errors.setdefault(e["row"], []).append(f"{e['field'] or e['rule'] or 'input'}: {e['message']}")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        header = [*frame.columns, *(_header(book, o, lang) for o in outputs), ERRORS_COLUMN]
        writer.writerow([safe_text(h) for h in header])
        for i, account in enumerate(accounts):
            result = by_row.get(i, {})
            cells = [*account.values(), *(_text(book, o, result.get(o), lang) for o in outputs),
                     "; ".join(errors.get(i, []))]
            writer.writerow([safe_text(_plain(c)) for c in cells])
        response = Response(out.getvalue().encode("utf-8-sig"), mimetype="text/csv")
        response.headers["X-Rules-Version"] = answer["rules_version"]
        response.headers["X-Decision-Id"] = answer["decision_id"]
        return response


def _header(book: Any, name: str, lang: str | None) -> str:
    if not lang:
        return name
    return book.dictionary.label(name, lang) or book.outputs[name].outputs[name].label.get(lang) or name


def _text(book: Any, name: str, value: Any, lang: str | None) -> str:
    """A result as a cell's text: codes as labels in `lang`, lists joined, whole numbers without `.0`."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_text(book, name, v, lang) for v in value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and lang:
        return str(book.dictionary.value_label(name, value, lang))
    return str(value)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10] if getattr(value, "hour", 0) == 0 else value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
