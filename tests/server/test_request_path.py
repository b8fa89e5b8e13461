"""What the API's request path does by hand instead of through marshmallow, webargs and flask-smorest wrappers
gives what they give: the same loaded values, the same field errors, the same OpenAPI document."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask, Request
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder

from server import ServiceApp
from server.api.documented import documented
from server.problems import PROBLEM_JSON
from server.schemas import (
    EvaluateQuery,
    EvaluateRequest,
    EvaluateResponse,
    ProblemSchema,
    load_evaluate_query,
    load_evaluate_request,
)

HERE = Path(__file__).resolve().parent

# --- the query string of POST /v1/evaluate -------------------------------------------------------------------

QUERY_KEYS = st.sampled_from(["rev", "explain", "lang", "as_of", "colour", "Explain", "LANG", ""])
QUERY_VALUES = st.sampled_from(["", "true", "True", "1", "0", "no", "YES", "on", "Off", "maybe", "t", "F",
                                "zh", "en", "fr", "EN", "2026-06-30", "2026-02-30", "20260630", "2026-06-30T12:00",
                                "abc1234", "HEAD~1", "中文", " en"]) | st.text(max_size=12)


def webargs_load(pairs: list[tuple[str, str]]) -> tuple[str, Any]:
    """What flask-smorest's `blp.arguments(EvaluateQuery(), location="query")` made of a query string: the
    loaded arguments, or the field messages of its 422."""
    request = Request(EnvironBuilder(query_string=urlencode(pairs)).get_environ())
    try:
        return "ok", FlaskParser().parse(EvaluateQuery(), request, location="query")
    except HTTPException as e:
        assert e.code == 422
        return "errors", e.data["messages"]["query"]


def hand_load(pairs: list[tuple[str, str]]) -> tuple[str, Any]:
    request = Request(EnvironBuilder(query_string=urlencode(pairs)).get_environ())
    try:
        return "ok", load_evaluate_query(request.args)
    except ValidationError as e:
        return "errors", e.messages


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(QUERY_KEYS, QUERY_VALUES), max_size=5))
def test_the_evaluate_query_loads_as_webargs_loads_it(pairs: list[tuple[str, str]]) -> None:
    assert hand_load(pairs) == webargs_load(pairs)


@pytest.mark.parametrize("pairs", [
    [], [("rev", "")], [("rev", "abc"), ("rev", "def")], [("explain", "true"), ("lang", "zh")],
    [("explain", "off"), ("colour", "red")], [("as_of", "2026-06-30")], [("lang", "fr"), ("explain", "maybe")],
    [("as_of", "2026-02-30"), ("rev", "x")], [("explain", "")]])
def test_the_usual_and_the_odd_queries_load_alike(pairs: list[tuple[str, str]]) -> None:
    assert hand_load(pairs) == webargs_load(pairs)


def test_a_bad_query_is_the_same_problem_document_as_before(as_) -> None:
    r = as_["viewer"].post("/v1/evaluate?lang=fr&explain=maybe&rev=x", json={"accounts": [{}]})
    assert r.status_code == 422 and r.mimetype == PROBLEM_JSON
    assert r.json == {"type": "about:blank", "title": "The request is not valid", "status": 422,
                      "detail": "see `errors` for each field",
                      "errors": {"explain": ["Not a valid boolean."], "lang": ["Must be one of: zh, en."]}}
    assert as_["anonymous"].post("/v1/evaluate?lang=fr", json={"accounts": [{}]}).status_code == 401  # auth first


# --- the JSON body of POST /v1/evaluate ----------------------------------------------------------------------

ACCOUNT = st.dictionaries(st.sampled_from(["account_id", "客户编号", "x"]), st.none() | st.integers() | st.text(),
                          max_size=2)
BODY_VALUES = {
    "accounts": st.lists(ACCOUNT | st.none() | st.integers() | st.lists(st.integers(), max_size=1), max_size=4)
    | st.none() | st.text(max_size=3) | st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    "explain": st.booleans() | st.none() | st.sampled_from(["true", "no", "maybe", 1, 0, 2, 1.0, [], {}]),
    "as_of": st.sampled_from(["2026-06-30", "2026-02-30", "", "20260630", 20260630, None]),
    "colour": st.text(max_size=3),
}


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    keys = draw(st.lists(st.sampled_from(sorted(BODY_VALUES)), unique=True))
    body = {key: draw(BODY_VALUES[key]) for key in keys}
    return draw(st.sampled_from([body, body, body, [body], None, "text"]))


def outcome(load: Any, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", load(payload)
    except ValidationError as e:
        return "errors", e.messages


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_the_evaluate_body_loads_as_its_schema_loads_it(payload: Any) -> None:
    assert outcome(load_evaluate_request, payload) == outcome(EvaluateRequest().load, payload)


def test_the_usual_body_loads_by_hand_to_what_the_schema_gives() -> None:
    accounts = [{"account_id": "A1"}, {}]
    for body in ({"accounts": accounts}, {"accounts": accounts, "explain": True}, {"accounts": [], "explain": False}):
        assert load_evaluate_request(body) == EvaluateRequest().load(body)
        assert load_evaluate_request(body)["accounts"] is body["accounts"]  # not copied account by account
    dated = {"accounts": accounts, "as_of": "2026-06-30"}
    assert load_evaluate_request(dated) == {"accounts": accounts, "explain": False, "as_of": dt.date(2026, 6, 30)}


# --- the OpenAPI document ------------------------------------------------------------------------------------

def test_documented_writes_what_the_stacked_decorators_write() -> None:
    app = Flask(__name__)
    app.config.update(API_TITLE="t", API_VERSION="1", OPENAPI_VERSION="3.0.3")
    api = Api(app)
    blp = Blueprint("b", __name__, url_prefix="/b")
    body = {"required": True, "content": {"application/json": {"schema": EvaluateRequest},
                                          "text/csv": {"schema": {"type": "string"}}}}

    @blp.route("/stacked")
    class Stacked(MethodView):
        @blp.arguments(EvaluateQuery(), location="query")
        @blp.doc(requestBody=body)
        @blp.response(200, EvaluateResponse)
        @blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON)
        @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
        def post(self, query):
            """Evaluate.

            At length."""

    @blp.route("/documented")
    class Documented(MethodView):
        @documented(
            blp.arguments(EvaluateQuery(), location="query"),
            blp.doc(requestBody=body),
            blp.response(200, EvaluateResponse),
            blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON),
            blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON))
        def post(self):
            """Evaluate.

            At length."""
            return "called as it is"

    api.register_blueprint(blp)
    paths = api.spec.to_dict()["paths"]
    assert paths["/b/documented"] == paths["/b/stacked"]
    assert paths["/b/documented"]["post"]["parameters"]  # the query is documented
    assert Documented().post() == "called as it is"


def test_the_evaluate_operation_is_documented_as_before(as_) -> None:
    """`/v1/evaluate` in /openapi.json as flask-smorest's stacked decorators wrote it (saved at 15035da; its 503 added
    since), and the schemas it names unchanged."""
    spec = as_["viewer"].get("/openapi.json").json
    before = json.loads((HERE / "openapi_evaluate.json").read_text())
    assert spec["paths"]["/v1/evaluate"] == before["path"]
    assert {name: spec["components"]["schemas"][name] for name in before["schemas"]} == before["schemas"]


# --- Flask's ensure_sync, remembered ---------------------------------------------------------------------------

def test_ensure_sync_answers_as_flask_does() -> None:
    app, flask = ServiceApp(__name__), Flask(__name__)

    def view():
        return "sync"

    async def coroutine_view():
        await asyncio.sleep(0)
        return "async"

    class View(MethodView):
        def get(self):
            return "method"

    for _ in range(2):  # the first call finds out, the second remembers
        assert app.ensure_sync(view) is view
        method = View().get
        assert app.ensure_sync(method) is method
        try:
            expected = flask.ensure_sync(coroutine_view)()
        except RuntimeError as e:  # Flask's async views need `flask[async]` (asgiref)
            with pytest.raises(RuntimeError, match=str(e)[:30]):
                app.ensure_sync(coroutine_view)
        else:
            assert app.ensure_sync(coroutine_view)() == expected == "async"


# --- sessions: an API call with a bearer token opens and saves none -------------------------------------------

def test_an_api_call_without_cookies_sets_no_cookie_and_a_signed_in_session_still_reads(app, as_) -> None:
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": [{}]})
    assert r.status_code == 200 and "Set-Cookie" not in r.headers and "Vary" not in r.headers
    browser = app.test_client()
    page = browser.get("/ui/signin")
    assert "Set-Cookie" in page.headers  # the sign-in form's CSRF token is kept in the session
    assert browser.get("/openapi.json").status_code == 401  # a session, but nobody signed in
