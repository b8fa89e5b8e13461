"""A batch through `POST /v1/evaluate`: its text, flag and list outputs are converted once for the answer and the
decision log; both are what converting them separately gives."""

from __future__ import annotations

import json

import numpy as np

from kamcore.decisions import canonical_json, decompress, output_table, table_of
from kamcore.demo import synthetic_portfolio
from server.encoding import dumps, loads, result_rows

AS_OF = "2026-11-23"


def test_a_batch_answers_and_logs_what_separate_conversions_give(app, as_):
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
