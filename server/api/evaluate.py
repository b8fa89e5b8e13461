"""`POST /v1/evaluate`: accounts in (JSON, CSV or xlsx), every good row's outputs and every bad row's errors out."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from flask import Request, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from kamcore.aside import Aside
from kamcore.decisions import (
    DecisionLogBusy,
    DecisionLogError,
    SealedInputs,
    WrittenOutputs,
    seal_inputs,
    write_outputs,
)
from kamcore.errors import InputError
from kamcore.portfolio import read_table
from kamcore.rulebook import RuleBook

from .. import Services, gcpause, services
from ..auth import authenticate, requires
from ..batchbody import read_batch
from ..encoding import Encoded, dumps, json_response, loads, plain, result_columns, result_rows, rows_json
from ..problems import PROBLEM_JSON, ApiProblem
from ..schemas import (
    EvaluateQuery,
    EvaluateRequest,
    EvaluateResponse,
    ProblemSchema,
    load_evaluate_query,
    load_evaluate_request,
)
from .documented import documented

blp = Blueprint("evaluate", __name__, url_prefix="/v1", description="Evaluate accounts against the rule book")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
UPLOADS = {"text/csv": "csv", XLSX: "xlsx"}


# An answer of this many results is encoded while its decision is logged (see evaluate_accounts); fewer are
# encoded after it, on the request's thread (a thread costs ~0.1 ms; encoding 1,000 results, a few ms).
ENCODE_ASIDE_ROWS = 1000


class EvaluationTimeout(Exception):
    """The evaluation passed `evaluate_timeout_s`: stopped between two rules, answered with a 413."""


@blp.route("/evaluate")
class Evaluate(MethodView):
    init_every_request = False  # no state of its own: one instance serves every request

    @requires("read")
    @documented(
        blp.arguments(EvaluateQuery(), location="query"),  # loaded by load_evaluate_query, the same way
        blp.doc(requestBody={"required": True, "content": {
            "application/json": {"schema": EvaluateRequest},
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}}}}),
        blp.response(200, EvaluateResponse),
        blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON),
        blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON),
        blp.alt_response(503, schema=ProblemSchema, content_type=PROBLEM_JSON))
    def post(self):
        """Evaluate accounts. One bad row never fails the others: it is left out of `results` and named in
        `errors`. Keys / headers may be field names or sheet headers in 中文 or English. An xlsx body sent with
        `Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` gets its workbook back with
        the results beside its account table (as `POST /v1/evaluate.xlsx`). More accounts than the service takes
        at once, or an evaluation still running at the time limit, is a 413: split the table. A decision log held
        by another writer past its wait is a 503 with `Retry-After`: nothing was recorded, send it again."""
        req = request._get_current_object()  # the proxy once, not per attribute
        refused = req.environ.pop(REFUSED, None)
        if refused is not None:  # evaluated by the lane already, and refused: the same refusal, answered here
            g.revision = refused.revision
            try:
                raise refusal(refused.error)
            finally:
                del refused  # (the exception's traceback holds this frame: no cycle through it)
        try:
            query = load_evaluate_query(req.args)
        except ValidationError as e:  # as webargs answers a query it cannot load
            raise ApiProblem(422, "The request is not valid", "see `errors` for each field",
                             errors=e.messages) from None
        if req.mimetype == XLSX and req.accept_mimetypes.best == XLSX:
            from .workbooks import scored_workbook

            return scored_workbook(query)
        # A large batch makes many short-lived objects and no garbage cycles: see server/gcpause.py.
        with gcpause.paused((req.content_length or 0) >= gcpause.LARGE_BODY_BYTES):
            accounts, explain, as_of = _accounts(req, query)
            # Encoded here rather than dumped through EvaluateResponse: the answer is built in that shape
            # already, and a 10,000-row batch would be copied dict by dict.
            return json_response(evaluate_accounts(accounts, explain=explain, as_of=as_of, rev=query.get("rev"),
                                                   lang=query["lang"], encoded=True))


def _accounts(req: Request, query: dict[str, Any]) -> tuple[list[dict[str, Any]] | pd.DataFrame, bool, Any]:
    mimetype = req.mimetype
    if mimetype in UPLOADS:
        try:
            book = services().rules.book(query.get("rev"))
            frame = read_table(req.get_data(), UPLOADS[mimetype], book.dictionary, book.inputs)
        except InputError as e:
            raise ApiProblem(422, "The uploaded table cannot be read", str(e)) from None
        accounts = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return accounts, query.get("explain", False), query.get("as_of")
    if mimetype != "application/json":
        raise ApiProblem(415, "Unsupported media type",
                         f"send application/json, text/csv or {XLSX}; got {mimetype or 'nothing'}")
    data = req.get_data()
    try:
        batch = read_batch(data)  # a large body read by Arrow, when it reads the same (None: read it as usual)
        if batch is not None:
            frame, explain, as_of = batch
            return frame, query.get("explain", explain), query.get("as_of", as_of)
        try:
            payload = loads(data)
        except ValueError as e:  # werkzeug's own 400 would not say where
            raise ApiProblem(400, "The body is not valid JSON", str(e)) from None
        return json_request(payload, query)
    except ValidationError as e:
        raise ApiProblem(422, "The request is not valid", "see `errors` for each field", errors=e.messages) from None


def json_request(payload: Any, query: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool, Any]:
    """The accounts, `explain` and `as_of` of a JSON evaluate body, the query's `explain` and `as_of` before the
    body's (read so by the view and by the evaluate lane alike). Raises ValidationError."""
    body = load_evaluate_request(payload)
    return body["accounts"], query.get("explain", body["explain"]), query.get("as_of", body.get("as_of"))


def evaluate_accounts(accounts: list[dict[str, Any]] | pd.DataFrame, *, explain: bool = False, as_of: Any = None,
                      rev: str | None = None, lang: str = "en", explain_rules: Collection[str] | None = None,
                      encoded: bool = False) -> dict[str, Any]:
    """`decide` for this request's caller (the API and the other front ends), the decision id and revision noted
    for the access log; a decision log that fails (other than busy) is a 500, logged with its traceback."""
    try:
        return decide(services(), authenticate().name, accounts, explain=explain, as_of=as_of, rev=rev, lang=lang,
                      explain_rules=explain_rules, encoded=encoded, note=g._get_current_object())
    except DecisionLogError as e:
        raise refusal(e)  # noqa: B904 - refusal() sets the cause of what it makes


def refusal(e: Exception) -> Exception:
    """What the app raises for an exception `decide` raised: a decision log that fails (other than busy, a 503 to
    try again) is a 500, logged here with its traceback; anything else as it is."""
    if isinstance(e, DecisionLogError) and not isinstance(e, DecisionLogBusy):
        # The accounts were read and evaluated: the fault is the service's, not theirs.
        current_app.logger.error("the decision could not be logged: %s", e, exc_info=e)
        problem = ApiProblem(500, "The decision could not be logged / 决策未能记录",
                             f"{e}; nothing was answered that the log does not hold")
        problem.__cause__ = e
        return problem
    return e


@dataclass(frozen=True)
class LaneRefusal:
    """What the evaluate lane (lane.py) hands the app, under REFUSED in the request's environ, when `decide`
    refused a request the lane took: the app answers with that refusal rather than evaluating again."""

    error: Exception
    revision: str | None  # of the book, once `decide` has evaluated with it (for the access log), else None


REFUSED = "kam.lane_refusal"  # a client cannot set it: a WSGI server puts headers under HTTP_ keys


def decide(kam: Services, actor: str, accounts: list[dict[str, Any]] | pd.DataFrame, *, explain: bool = False,
           as_of: Any = None, rev: str | None = None, lang: str = "en", explain_rules: Collection[str] | None = None,
           encoded: bool = False, note: Any = None) -> dict[str, Any]:
    """Evaluate, log the decision as `actor`'s, and shape the answer; needs no request context (the evaluate
    lane calls it too). `explain_rules` narrows each trace to those rules. `encoded`: the answer is sent as JSON
    by `dumps`, so a large batch's `results` may come as their JSON already (`Encoded`, which `dumps` writes as
    it is): encoded while the decision log writes on another thread (its compression and SQLite's writing let go
    of the GIL). The answer is given once the decision is logged, as always. `note`: where the revision and the
    decision id are set as soon as they are known (for the access log). Raises ApiProblem (too many accounts,
    out of time, accounts that cannot be read), NotReady, UnknownRevision, StoreError or RuleBookError
    (`rev`), and DecisionLogError when the log refuses."""
    if len(accounts) > kam.config.max_rows:
        raise too_many_rows(len(accounts), kam.config.max_rows)
    book = kam.rules.book(rev)
    # A large batch's input table is sealed for the log while it is evaluated: the engine's numpy and Arrow work
    # lets go of the GIL, and the machine has a second core.
    early = isinstance(accounts, pd.DataFrame) and len(accounts) >= ENCODE_ASIDE_ROWS
    with Aside(seal_inputs, accounts, name="kam-seal-inputs") if early else nullcontext() as sealing:
        return _decide(kam, actor, book, accounts, sealing, explain=explain, as_of=as_of, lang=lang,
                       explain_rules=explain_rules, encoded=encoded, note=note)


def _decide(kam: Services, actor: str, book: RuleBook, accounts: list[dict[str, Any]] | pd.DataFrame,
            sealing: Aside[SealedInputs] | None, *, explain: bool, as_of: Any, lang: str,
            explain_rules: Collection[str] | None, encoded: bool, note: Any) -> dict[str, Any]:
    """`decide` with the book chosen, and the accounts' input table being sealed (`sealing`) if it is."""
    deadline = time.monotonic() + kam.config.evaluate_timeout_s

    def check_time(_rule: str) -> None:
        if time.monotonic() > deadline:
            raise EvaluationTimeout

    try:
        evaluation = book.evaluate(accounts, as_of=as_of, progress=check_time)
    except EvaluationTimeout:
        raise ApiProblem(413, "Too many accounts to evaluate in time / 账户过多，无法按时完成评估",
                         f"{len(accounts)} accounts were not evaluated within the limit of "
                         f"{kam.config.evaluate_timeout_s:g} s (`evaluate_timeout_s`): split the table into "
                         "smaller requests") from None
    except InputError as e:
        raise ApiProblem(422, "The accounts cannot be read", str(e)) from None
    shared: dict[str, list[Any]] = {}  # output columns converted once, for the answer and the log
    good = np.flatnonzero(evaluation.ok)
    # A large batch's answer is encoded while its decision is logged; without traces to add, straight from its
    # columns (rows_json: no dict per row).
    aside = encoded and len(good) >= ENCODE_ASIDE_ROWS
    columns = result_columns(evaluation, good, shared) if aside and not explain else None
    results = result_rows(evaluation, good, shared) if columns is None else []
    if explain:
        for result in results:
            trace = evaluation.explain(result["row"], explain_rules)
            result["trace"] = plain(trace.to_dict())
            result["explanation"] = trace.text(lang)
    errors = [_row_error(e) for e in evaluation.errors]
    warnings = [_row_error(e) for e in evaluation.warnings]
    if note is not None:
        note.revision = book.revision

    def record(outputs: WrittenOutputs | None = None) -> str:
        return kam.decisions.record_evaluation(actor, evaluation, shared, outputs=outputs,
                                               inputs=sealing.result() if sealing is not None else None)

    if aside:
        # The log's outputs are written here first: then the log's thread has little left that holds the GIL
        # (compressing, hashing, SQLite), and is done while the answer is encoded rather than waiting for it.
        recording = Aside(record, write_outputs(evaluation, shared), name="kam-decision")
        try:  # the cells only read, by both threads
            results = Encoded(dumps(results) if columns is None else rows_json(*columns))
        finally:  # logged (or refused) before anything is answered, a failure to encode too; the access log
            decision_id = recording.result()  # names it
            if note is not None:
                note.decision_id = decision_id
    else:
        decision_id = record()
        if note is not None:
            note.decision_id = decision_id
    return {"decision_id": decision_id, "rules_version": book.revision, "as_of": evaluation.as_of,
            "results": results, "errors": errors, "warnings": warnings}


def within_row_limit(count: int) -> None:
    """413 when a request carries more accounts than the service takes at once (`max_rows`)."""
    limit = services().config.max_rows
    if count > limit:
        raise too_many_rows(count, limit)


def too_many_rows(count: int, limit: int) -> ApiProblem:
    return ApiProblem(413, "Too many accounts", f"{count} accounts in one request; the limit is {limit}: "
                                                "split the table into several requests")


def _row_error(e: Any) -> dict[str, Any]:
    return {"row": e.row, "field": e.field, "rule": e.rule, "message": e.message, "severity": e.severity}
