"""Errors inside the pages read as a page (or as problem+json for a JSON twin), in the reader's language."""

from __future__ import annotations

from flask import make_response, render_template
from werkzeug.exceptions import HTTPException

from kamcore.decisions import DecisionLogError
from kamcore.errors import KamError

from ..problems import ApiProblem, decision_log_problem
from . import blp
from .signin import _wants_json


def _page(status: int, title: str, detail: str):
    if _wants_json():
        from ..problems import problem_response

        return problem_response(status, title, detail)
    return render_template("error.html", title=title, detail=detail), status


@blp.errorhandler(ApiProblem)
def _api_problem(e: ApiProblem):
    return _page(e.status, e.title, e.detail or "")


@blp.errorhandler(HTTPException)
def _http(e: HTTPException):
    return _page(e.code or 500, e.name, e.description or "")


@blp.errorhandler(DecisionLogError)
def _decision_log(e: DecisionLogError):
    status, title, headers = decision_log_problem(e)  # as the API answers (a KamError's 422 would blame the reader)
    response = make_response(_page(status, title, str(e)))
    response.headers.update(headers)
    return response


@blp.errorhandler(KamError)
def _kam(e: KamError):
    from kamcore.store import UnknownRevision

    return _page(404 if isinstance(e, UnknownRevision) else 422, type(e).__name__, str(e))
