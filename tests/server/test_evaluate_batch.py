"""A batch through `POST /v1/evaluate`: its text, flag and list outputs are converted once for the answer and the
decision log; both are what converting them separately gives."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from kamcore.decisions import DecisionLog, DecisionLogError, canonical_json, decompress, output_table, table_of
from kamcore.demo import synthetic_portfolio
from server.api import evaluate
from server.encoding import dumps, loads, result_rows

AS_OF = "2026-11-23"


@pytest.fixture(params=["aside", "inline"])
def recorded_on(request, monkeypatch):
    """Which thread logs a batch's decision: beside the answer's encoding (as a large batch's is), or after it
    on the request's thread (as a small one's is). Yields the names of the threads that logged decisions."""
    monkeypatch.setattr(evaluate, "ENCODE_ASIDE_ROWS", 1 if request.param == "aside" else 10**9)
    threads = []
    record = DecisionLog.record_evaluation

    def watched(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return record(self, *args, **kwargs)

    monkeypatch.setattr(DecisionLog, "record_evaluation", watched)
    return request.param, threads


def test_a_batch_answers_and_logs_what_separate_conversions_give(app, as_, recorded_on):
    accounts = json.loads(synthetic_portfolio(300, seed=21).to_json(orient="records", date_format="iso"))
    accounts[1]["credit_score"] = "abc"  # unreadable: a row error, left out of results, every output null in the log
    accounts[2]["revenue_12m"] = 0  # a null margin
    accounts[3]["account_name"] = "华瑞科技（上海）有限公司"
    accounts[4]["industry"] = None
    accounts[5]["ref"] = 2**70  # beyond 64 bits
    accounts[6]["ref"] = 1.5
    body = json.dumps({"accounts": accounts, "as_of": AS_OF}).encode()
    r = as_["viewer"].post("/v1/evaluate", data=body, content_type="application/json")
    assert r.status_code == 200, r.json
    answer = r.json
    kam = app.extensions["kam"]
    ev = kam.rules.book(None).evaluate(loads(body)["accounts"], as_of=AS_OF)  # the accounts as the service read them
    assert not ev.ok.all()
    expected = result_rows(ev, np.flatnonzero(ev.ok))  # converted on its own, nothing shared
    assert json.loads(dumps(expected)) == answer["results"]
    assert b'"results":' + dumps(expected) + b',"errors":' in r.data  # byte for byte
    inputs, outputs = kam.decisions._db.execute("SELECT inputs, outputs FROM decisions WHERE id = ?",
                                                (answer["decision_id"],)).fetchone()
    assert decompress(inputs) == canonical_json(table_of(ev.input, "inputs"))
    errors = [{"row": e.row, "rule": e.rule, "field": e.field, "message": e.message, "severity": e.severity}
              for e in ev.errors]
    assert decompress(outputs) == canonical_json({"errors": errors, "outputs": output_table(ev)})
    assert kam.decisions.verify().ok
    assert kam.decisions.reproduce(answer["decision_id"], kam.rules).identical
    how, threads = recorded_on
    assert threads == ["kam-decision" if how == "aside" else threading.current_thread().name]


@pytest.mark.parametrize(("error", "status"), [(DecisionLogError("the disk is full"), 422),
                                             (OSError("the disk is full"), 500)])
def test_a_decision_the_log_refuses_fails_the_batch_either_way(app, as_, recorded_on, monkeypatch, error, status):
    how, threads = recorded_on
    kam = app.extensions["kam"]

    def refuse(*args, **kwargs):
        threads.append(threading.current_thread().name)
        raise error

    monkeypatch.setattr(kam.decisions, "_record", refuse)
    accounts = json.loads(synthetic_portfolio(20, seed=21).to_json(orient="records", date_format="iso"))
    if status == 500:  # the test client hands an unexpected error to the test as it is
        with pytest.raises(OSError, match="the disk is full"):
            as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
    else:
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
        assert r.status_code == status, r.json
        assert r.content_type == "application/problem+json" and r.json["detail"] == "the disk is full"
    assert threads[-1] == ("kam-decision" if how == "aside" else threading.current_thread().name)
    assert kam.decisions.verify().records == 0
