"""Errors as `application/problem+json` (RFC 9457): a title, a detail, and field-level messages where known."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, json
from werkzeug.exceptions import HTTPException

from kamcore.decisions import AlteredRecord, DecisionLogBusy, DecisionLogError, UnknownDecision
from kamcore.errors import KamError, Problem
from kamcore.rulefile import RuleFileError
from kamcore.store import StaleBase, StoreError, UnknownRevision, ValidationFailed

from .live import NotReady

PROBLEM_JSON = "application/problem+json"


class ApiProblem(Exception):
    """Raised by a view to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str | None = None, **extra: Any):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


def problem_response(status: int, title: str, detail: str | None = None, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kam-rules"'
    return response


def problem_dicts(problems: list[Problem]) -> list[dict[str, Any]]:
    keys = ("message", "file", "line", "col", "rule", "row", "hint", "severity")
    return [{k: getattr(p, k) for k in keys if getattr(p, k) is not None} for p in problems]


def decision_log_problem(e: DecisionLogError) -> tuple[int, str, dict[str, str]]:
    """The status, title and headers a failure of the decision log answers with, in the API and on the pages
    alike. What a request hands the log is checked before it gets there (accounts, decision ids), so apart from an
    unknown or altered decision, what the log refuses is the service's fault, not the request's: 503 to try again
    (`Retry-After`) when the log was busy, else 500 (logged here with its traceback: the answer alone would leave
    no trace of it)."""
    if isinstance(e, UnknownDecision):
        return 404, "Not found", {}
    if isinstance(e, AlteredRecord):
        return 409, "The decision record fails its integrity check", {}
    if isinstance(e, DecisionLogBusy):  # the service's state, not the request's: worth trying again
        return 503, "The decision log is busy / 决策日志繁忙，请稍后重试", {"Retry-After": "1"}
    current_app.logger.error("the decision log failed: %s", e, exc_info=e)
    return 500, "The decision log failed / 决策日志出错", {}


def register(app: Flask) -> None:
    @app.errorhandler(ApiProblem)
    def _api_problem(e: ApiProblem) -> Response:
        return problem_response(e.status, e.title, e.detail, **e.extra)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        data = getattr(e, "data", None) or {}
        messages = data.get("messages")  # webargs/flask-smorest validation: {location: {field: [messages]}}
        if messages:
            errors = {field: msgs for location in messages.values() for field, msgs in location.items()} \
                if all(isinstance(v, dict) for v in messages.values()) else messages
            return problem_response(e.code or 422, "The request is not valid", "see `errors` for each field",
                                    errors=errors)
        return problem_response(e.code or 500, e.name, data.get("message") or e.description)

    @app.errorhandler(ValidationFailed)
    def _invalid(e: ValidationFailed) -> Response:
        return problem_response(422, "The rule change was refused", str(e), problems=problem_dicts(e.problems))

    @app.errorhandler(StaleBase)
    def _stale(e: StaleBase) -> Response:
        return problem_response(409, "The rules changed since your base revision", str(e), base=e.base, head=e.head)

    @app.errorhandler(UnknownRevision)
    def _unknown(e: UnknownRevision) -> Response:
        return problem_response(404, "Not found", str(e))

    @app.errorhandler(StoreError)
    def _store(e: StoreError) -> Response:
        return problem_response(422, "The rule change cannot be made", str(e))

    @app.errorhandler(RuleFileError)
    def _rule_file(e: RuleFileError) -> Response:
        return problem_response(422, "The rule file cannot be edited", str(e))

    @app.errorhandler(NotReady)
    def _not_ready(e: NotReady) -> Response:
        return problem_response(503, "No rule book loads", f"{e}; see /readyz")

    @app.errorhandler(DecisionLogError)
    def _decision_log(e: DecisionLogError) -> Response:
        status, title, headers = decision_log_problem(e)
        response = problem_response(status, title, str(e))
        response.headers.update(headers)
        return response

    @app.errorhandler(KamError)
    def _kam(e: KamError) -> Response:
        return problem_response(422, "The request cannot be processed", str(e))
