"""The evaluate lane (server/lane.py) answers a plain evaluate exactly as the app does, and hands every other
request to the app: each request below is sent through the lane and straight to the app (the same app, rules
and decision log), and the two answers are compared byte for byte, but for the decision id and the timing."""

from __future__ import annotations

import fcntl
import gc
import io
import json
import logging
import os
import sqlite3
import weakref

import flask
import pytest
from argon2 import PasswordHasher
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Response

from kamcore import decisions
from kamcore.demo import synthetic_portfolio
from kamcore.rulebook import RuleBook
from server import auth
from server import lane as lane_module
from server.api import evaluate
from server.lane import LANE_BODY_BYTES, EvaluateLane

from .conftest import clients, make_app

AS_OF = "2026-11-23"


def json_accounts(n, seed=5):
    return json.loads(synthetic_portfolio(n, seed=seed).to_json(orient="records", date_format="iso"))


@pytest.fixture(scope="module")
def lane_app(tmp_path_factory):
    return make_app(tmp_path_factory.mktemp("lane"))


@pytest.fixture(scope="module")
def tokens(lane_app):
    store = lane_app.extensions["kam"].tokens
    return {role: store.create(f"{role}-user", role) for role in ("viewer", "auditor", "admin")}


def lane_of(app) -> EvaluateLane:
    assert isinstance(app.wsgi_app, EvaluateLane)
    return app.wsgi_app


def both(app, *args, **kwargs):
    """The answer through the lane, whether the lane answered it itself, and the app's own answer."""
    lane = lane_of(app)
    before = lane.answered
    via_lane = run(app, args[0]) if args and isinstance(args[0], dict) else \
        Client(app, use_cookies=False).open(*args, **kwargs)
    answered = lane.answered - before
    assert answered in (0, 1)
    direct = run(lane.app, args[0]) if args and isinstance(args[0], dict) else \
        Client(lane.app, use_cookies=False).open(*args, **kwargs)
    return via_lane, bool(answered), direct


def run(app, environ):
    """`app`'s answer to exactly `environ` (the test client would make its own of it), its body read afresh."""
    environ = {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}
    body, status, headers = run_wsgi_app(app, environ)
    return Response(b"".join(body), status=status, headers=headers)


def same_answer(a, b):
    assert a.status == b.status
    assert sorted((k, v) for k, v in a.headers.items() if k != "Server-Timing") == \
        sorted((k, v) for k, v in b.headers.items() if k != "Server-Timing")
    if a.content_type == "application/json" and a.status_code == 200:
        one, other = a.json, b.json
        assert one["decision_id"] != other["decision_id"]  # each recorded its own decision
        assert one | {"decision_id": None} == other | {"decision_id": None}
        assert a.data.replace(one["decision_id"].encode(), b"") == b.data.replace(other["decision_id"].encode(), b"")
    else:
        assert a.data == b.data


def chinese_keys(app, account):
    dictionary = app.extensions["kam"].rules.book().dictionary
    return {(dictionary.label(k, "zh") or k): v for k, v in account.items()}


def test_the_lane_answers_a_plain_evaluate_as_the_app_does(lane_app, tokens):
    one, three = json_accounts(1), json_accounts(3)
    bad = [*three[:1], {**three[1], "revenue_12m": "a lot"}, three[2]]
    cases = {
        "one account": {"accounts": one},
        "one account, as_of": {"accounts": one, "as_of": AS_OF},
        "three, explained": {"accounts": three, "explain": True, "as_of": AS_OF},
        "one bad row of three": {"accounts": bad, "as_of": AS_OF},
        "chinese headers": {"accounts": [chinese_keys(lane_app, three[2])], "as_of": AS_OF},
        "no accounts": {"accounts": []},
    }
    for name, body in cases.items():
        via_lane, answered, direct = both(lane_app, "/v1/evaluate", method="POST", json=body,
                                          headers={"Authorization": f"Bearer {tokens['viewer']}"})
        assert answered, name
        assert via_lane.status_code == 200, (name, via_lane.json)
        same_answer(via_lane, direct)
        if name == "one bad row of three":
            assert [r["row"] for r in via_lane.json["results"]] == [0, 2]
            assert [(e["row"], e["field"]) for e in via_lane.json["errors"]] == [(1, "revenue_12m")]
        if name == "chinese headers":
            assert via_lane.json["results"][0]["tier"] and not via_lane.json["errors"]
        if name == "three, explained":
            assert all(r["explanation"] for r in via_lane.json["results"])
    # any role may evaluate; a media type in capitals or with a charset is still JSON; so is `bearer`
    for content_type, scheme in (("application/json; charset=utf-8", "Bearer"), ("Application/JSON", "bearer")):
        via_lane, answered, direct = both(lane_app, "/v1/evaluate", method="POST",
                                          data=json.dumps({"accounts": one}),
                                          headers={"Authorization": f"{scheme} {tokens['auditor']}",
                                                   "Content-Type": content_type})
        assert answered and via_lane.status_code == 200, content_type
        same_answer(via_lane, direct)


def test_the_lane_hands_every_other_request_to_the_app(lane_app, tokens):
    one = json_accounts(1)
    bearer = {"Authorization": f"Bearer {tokens['viewer']}"}
    body = json.dumps({"accounts": one}).encode()
    large = {"accounts": json_accounts(150)}
    assert len(json.dumps(large)) > LANE_BODY_BYTES
    cases = {
        "no token": dict(json={"accounts": one}),
        "unknown token": dict(json={"accounts": one}, headers={"Authorization": "Bearer kam_0_nope"}),
        "not bearer": dict(json={"accounts": one}, headers={"Authorization": f"Basic {tokens['viewer']}"}),
        "not JSON": dict(data=b'{"accounts": [', headers={**bearer, "Content-Type": "application/json"}),
        "no list of accounts": dict(json={"accounts": {"a": 1}}, headers=bearer),
        "an account not an object": dict(json={"accounts": [1, *one]}, headers=bearer),
        "an unknown key": dict(json={"accounts": one, "colour": "red"}, headers=bearer),
        "a bad as_of": dict(json={"accounts": one, "as_of": "2026-02-30"}, headers=bearer),
        "a query string": dict(json={"accounts": one}, headers=bearer, query_string={"lang": "zh"}),
        "CSV": dict(data="revenue_12m\n1000\n", headers={**bearer, "Content-Type": "text/csv"}),
        "text/plain": dict(data=body, headers={**bearer, "Content-Type": "text/plain"}),
        "a cookie": dict(json={"accounts": one}, headers={**bearer, "Cookie": "session=x"}),
        "too large for the lane": dict(json=large, headers=bearer),
    }
    for name, kwargs in cases.items():
        via_lane, answered, direct = both(lane_app, "/v1/evaluate", method="POST", **kwargs)
        assert not answered, name
        same_answer(via_lane, direct)
        expected = 200 if name in ("a query string", "CSV", "a cookie", "too large for the lane") \
            else 401 if "token" in name or name == "not bearer" else 400 if name == "not JSON" \
            else 415 if name == "text/plain" else 422
        assert via_lane.status_code == expected, (name, via_lane.status_code, via_lane.data[:300])
    # a body of unknown length (a WSGI server that passes a chunked body on as it comes; waitress gives its length)
    environ = EnvironBuilder("/v1/evaluate", method="POST", data=body,
                             headers={**bearer, "Content-Type": "application/json"}).get_environ()
    del environ["CONTENT_LENGTH"]
    environ |= {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    via_lane, answered, direct = both(lane_app, environ)
    assert not answered and via_lane.status_code == 200
    same_answer(via_lane, direct)
    # a length that is not a plain count of bytes (waitress refuses these itself; other servers may not)
    for length in ("\u00b2", "1" * 5000):  # (int() refuses over 4,300 digits)
        environ = EnvironBuilder("/v1/evaluate", method="POST", data=body,
                                 headers={**bearer, "Content-Type": "application/json"}).get_environ()
        environ["CONTENT_LENGTH"] = length
        via_lane, answered, direct = both(lane_app, environ)
        assert not answered, length
        same_answer(via_lane, direct)
    for method, path in (("GET", "/v1/evaluate"), ("POST", "/v1/evaluate/"), ("POST", "/v1/evaluate.csv")):
        via_lane, answered, direct = both(lane_app, path, method=method, json={"accounts": one}, headers=bearer)
        assert not answered and via_lane.status_code in (404, 405, 415, 308), (method, path, via_lane.status)
        same_answer(via_lane, direct)


def test_a_role_the_view_refuses_is_the_apps_to_refuse(new_app, monkeypatch):
    app, as_ = new_app()
    monkeypatch.setitem(auth.PERMISSIONS, lane_module.PERMISSION, frozenset({"admin"}))
    for role, status in (("viewer", 403), ("admin", 200)):
        via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(1)},
                                          headers={"Authorization": f"Bearer {as_[role].token}"})
        assert answered == (status == 200) and via_lane.status_code == status, role
        same_answer(via_lane, direct)


def test_more_accounts_than_max_rows_is_the_apps_413(new_app):
    app, as_ = new_app(max_rows=2)
    token = as_["viewer"].token
    via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(3)},
                                      headers={"Authorization": f"Bearer {token}"})
    assert not answered and via_lane.status_code == 413
    same_answer(via_lane, direct)
    assert app.extensions["kam"].decisions.verify().records == 0


def test_a_lane_decision_is_recorded_once_under_its_caller_and_reproduces(lane_app, tokens):
    kam = lane_app.extensions["kam"]
    before = kam.decisions.verify().records
    r = Client(lane_app).post("/v1/evaluate", json={"accounts": json_accounts(2), "as_of": AS_OF},
                              headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert r.status_code == 200 and kam.decisions.verify().records == before + 1
    decision = kam.decisions.get(r.json["decision_id"])
    assert (decision.actor, decision.revision, str(decision.as_of)) == ("viewer-user", r.json["rules_version"], AS_OF)
    audit = {"Authorization": f"Bearer {tokens['auditor']}"}
    again = Client(lane_app).post(f"/v1/decisions/{decision.id}/reproduce", headers=audit)
    assert again.status_code == 200 and again.json["identical"], again.json


def test_the_lane_logs_its_line_and_times_the_request(new_app, caplog):
    app, as_ = new_app(access_log=True)
    with caplog.at_level(logging.INFO, logger="kam.access"):
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": json_accounts(1)})
    assert r.status_code == 200 and lane_of(app).answered == 1
    ms, cpu = [float(part.split("=")[1]) for part in r.headers["Server-Timing"].split(", ")]
    assert r.headers["Server-Timing"].startswith("app;dur=") and 0 < cpu <= ms + 0.02
    (line,) = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "kam.access"]
    assert line | {"ms": None, "cpu_ms": None, "worker": None} == {
        "method": "POST", "path": "/v1/evaluate", "status": 200, "ms": None, "cpu_ms": None, "actor": "viewer-user",
        "decision_id": r.json["decision_id"], "revision": r.json["rules_version"],
        "bytes_in": int(r.request.headers["Content-Length"]), "worker": None}


class Counted:
    """Counts the calls of a real function (which it calls): how often a request evaluated or wrote."""

    def __init__(self, monkeypatch, owner, name):
        self.calls, real = 0, getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_a_refusal_by_decide_is_the_apps_answer_without_evaluating_again(new_app, monkeypatch):
    """Refused in `decide` (here: the time limit), the request is answered by the app with that refusal: its
    problem document, and one evaluation, not a second one by the app."""
    app, as_ = new_app(evaluate_timeout_s=0)
    evaluations = Counted(monkeypatch, RuleBook, "evaluate")
    via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(2)},
                                      headers={"Authorization": f"Bearer {as_['viewer'].token}"})
    assert not answered and via_lane.status_code == 413 and "evaluate_timeout_s" in via_lane.json["detail"]
    assert evaluations.calls == 2  # once through the lane, once straight to the app
    same_answer(via_lane, direct)


def test_a_busy_decision_log_is_waited_for_once(new_app, monkeypatch, caplog):
    """The log held by another writer past the wait: a 503 to try again, after one wait, not the lane's and then
    the app's; the access line names the revision, as the app's own does."""
    monkeypatch.setattr(decisions, "BUSY_TIMEOUT_S", 0.3)
    app, as_ = new_app(access_log=True)
    kam = app.extensions["kam"]
    writes = Counted(monkeypatch, kam.decisions, "record_evaluation")
    fd = os.open(f"{kam.decisions.path}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a worker stopped mid-write would hold it
        with caplog.at_level(logging.INFO, logger="kam.access"):
            via_lane, answered, direct = both(app, "/v1/evaluate", method="POST",
                                              json={"accounts": json_accounts(1)},
                                              headers={"Authorization": f"Bearer {as_['viewer'].token}"})
    finally:
        os.close(fd)
    assert not answered and via_lane.status_code == 503 and via_lane.headers["Retry-After"] == "1"
    assert writes.calls == 2  # once through the lane, once straight to the app
    same_answer(via_lane, direct)
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "kam.access"]
    assert [(x["status"], x["revision"]) for x in lines] == [(503, kam.rules.book().revision)] * 2
    # Each waited for the log, the lane's wait counted in the app's line and header as the app's own is.
    assert all(x["ms"] >= 300 for x in lines), lines
    assert float(via_lane.headers["Server-Timing"].split(";dur=")[1].split(",")[0]) >= 300
    assert kam.decisions.verify().records == 0


def test_a_failing_decision_log_is_the_apps_500(new_app, monkeypatch, caplog):
    app, as_ = new_app()
    kam = app.extensions["kam"]
    with sqlite3.connect(kam.decisions.path) as db:  # the chain's head marker gone, behind the service's back
        db.execute("DELETE FROM head")
    writes = Counted(monkeypatch, kam.decisions, "record_evaluation")
    with caplog.at_level(logging.ERROR):
        via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(1)},
                                          headers={"Authorization": f"Bearer {as_['viewer'].token}"})
    assert not answered and via_lane.status_code == 500 and "head marker" in via_lane.json["detail"]
    assert writes.calls == 2
    same_answer(via_lane, direct)
    logged = [rec for rec in caplog.records if rec.getMessage().startswith("the decision could not be logged")]
    assert len(logged) == 2 and all(rec.exc_info for rec in logged)  # one per request, with its traceback


def test_a_fault_in_decide_is_the_apps_500_without_evaluating_again(new_app, monkeypatch):
    app, as_ = new_app(testing=False)  # an unexpected error answered 500, as in service
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("a bug")

    monkeypatch.setattr(lane_module, "decide", broken)
    monkeypatch.setattr(evaluate, "decide", broken)
    via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(1)},
                                      headers={"Authorization": f"Bearer {as_['viewer'].token}"})
    assert not answered and via_lane.status_code == 500
    assert len(calls) == 2  # the lane's, and the app's own when called straight
    same_answer(via_lane, direct)
    assert app.extensions["kam"].decisions.verify().records == 0


@pytest.mark.parametrize("error", [MemoryError, ValueError])
def test_a_fault_after_recording_is_answered_as_the_apps_500_and_recorded_once(new_app, tmp_path, monkeypatch, caplog,
                                                                                error):
    """Recorded already, the request is not handed over (that would record a second decision): it is answered
    with the problem document the app gives a fault in its view, and the access line names the decision."""
    app, as_ = new_app(testing=False, access_log=True)
    flask_as = clients(make_app(tmp_path / "flask only", testing=False, evaluate_lane=False))

    def refuse(*args, **kwargs):
        raise error("no room for the answer")

    monkeypatch.setattr(lane_module, "dumps", refuse)
    monkeypatch.setattr(evaluate, "json_response", refuse)
    body = {"accounts": json_accounts(1)}
    with caplog.at_level(logging.INFO):
        r = as_["viewer"].post("/v1/evaluate", json=body)
    assert lane_of(app).answered == 1
    same_answer(r, flask_as["viewer"].post("/v1/evaluate", json=body))
    assert r.status_code == 500 and r.content_type == "application/problem+json"
    kam = app.extensions["kam"]
    assert kam.decisions.verify().records == 1
    (recorded,) = kam.decisions._db.execute("SELECT id FROM decisions").fetchone()
    (line,) = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "kam.access"]
    assert line["decision_id"] == recorded and line["status"] == 500
    (logged,) = [rec for rec in caplog.records if rec.name == "server.lane"]
    assert recorded in logged.getMessage() and logged.exc_info


def test_a_wrong_secret_is_checked_once(new_app, monkeypatch):
    """A real token id with a wrong secret: argon2 runs once, in the lane; the app takes its verdict (401)."""
    app, as_ = new_app()
    token = as_["viewer"].token
    checks = Counted(monkeypatch, PasswordHasher, "verify")
    via_lane, answered, direct = both(app, "/v1/evaluate", method="POST", json={"accounts": json_accounts(1)},
                                      headers={"Authorization": f"Bearer {token[:-4]}abcd"})
    assert not answered and via_lane.status_code == 401
    assert checks.calls == 2  # once through the lane, once straight to the app
    same_answer(via_lane, direct)


def test_the_app_takes_the_lanes_verdict_only_for_the_token_it_checked(new_app):
    """The app's `authenticate` takes the lane's verdict for the token the lane checked, and no other."""
    app, as_ = new_app()
    admin = auth.Principal("t0", "someone", "admin")
    body = json.dumps({"accounts": json_accounts(1)}).encode()
    for token, verdict, status in (("kam_0_forged", ("kam_0_other", admin), 401),
                                   ("kam_0_forged", ("kam_0_forged", admin), 200)):
        environ = EnvironBuilder("/v1/evaluate", method="POST", data=body,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"}).get_environ()
        environ[auth.CHECKED_PRINCIPAL] = verdict
        assert run(lane_of(app).app, environ).status_code == status  # (the second: the key is trusted as is)


def test_a_refused_request_is_freed_at_once(new_app):
    """No reference cycle through the refusal (its traceback holds the frames that hold it): the request is freed
    when answered, not at the next garbage collection."""
    app, as_ = new_app(evaluate_timeout_s=0)
    seen = []
    app.before_request_funcs.setdefault(None, []).insert(
        0, lambda: seen.append(weakref.ref(flask.request._get_current_object())))
    environ = EnvironBuilder("/v1/evaluate", method="POST", data=json.dumps({"accounts": json_accounts(1)}),
                             headers={"Authorization": f"Bearer {as_['viewer'].token}",
                                      "Content-Type": "application/json"}).get_environ()
    gc.collect()
    gc.disable()
    try:
        for through in (lane_of(app).app, app):  # the app alone (the control), then through the lane
            seen.clear()
            assert run(through, environ).status_code == 413
            assert len(seen) == 1 and seen[0]() is None, through
    finally:
        gc.enable()
    assert lane_of(app).answered == 0


def test_a_token_store_that_fails_is_the_apps_to_answer(new_app, monkeypatch):
    app, as_ = new_app()
    token = as_["viewer"].token
    tokens = app.extensions["kam"].tokens
    principal, failures = tokens.principal, []

    def locked_once(token):
        if not failures:
            failures.append(token)
            raise sqlite3.OperationalError("database is locked")
        return principal(token)

    monkeypatch.setattr(tokens, "principal", locked_once)
    r = Client(app).post("/v1/evaluate", json={"accounts": json_accounts(1)},
                         headers={"Authorization": f"Bearer {token}"})
    assert failures and r.status_code == 200 and lane_of(app).answered == 0  # the app's answer


def test_a_body_shorter_than_its_length_is_the_apps_400(new_app):
    app, as_ = new_app()
    body = json.dumps({"accounts": json_accounts(1)}).encode()
    environ = EnvironBuilder("/v1/evaluate", method="POST", data=body,
                             headers={"Authorization": f"Bearer {as_['viewer'].token}",
                                      "Content-Type": "application/json"}).get_environ()
    environ["CONTENT_LENGTH"] = str(len(body) + 50)  # the client sent less than it said (waitress would wait)
    via_lane, answered, direct = both(app, environ)
    assert not answered and via_lane.status_code == 400
    same_answer(via_lane, direct)
    assert app.extensions["kam"].decisions.verify().records == 0


def test_a_body_limit_below_the_lanes_holds(new_app):
    app, as_ = new_app(max_body_bytes=500)
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": json_accounts(2)})
    assert r.status_code == 413 and lane_of(app).answered == 0


def test_without_the_access_log_the_lane_writes_no_line(new_app, caplog):
    app, as_ = new_app(access_log=False)
    with caplog.at_level(logging.INFO, logger="kam.access"):
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": json_accounts(1)})
    assert r.status_code == 200 and lane_of(app).answered == 1
    assert not [rec for rec in caplog.records if rec.name == "kam.access"]
    assert r.headers["Server-Timing"].startswith("app;dur=")


def test_the_lane_is_off_when_configured_so(new_app):
    app, as_ = new_app(evaluate_lane=False)
    assert not isinstance(app.wsgi_app, EvaluateLane)
    assert as_["viewer"].post("/v1/evaluate", json={"accounts": json_accounts(1)}).status_code == 200
