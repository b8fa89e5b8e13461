"""A batch through `POST /v1/evaluate`: its text, flag and list outputs are converted once for the answer and the
decision log; both are what converting them separately gives."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
from typing import Any

import numpy as np
import pytest

from kamcore import decisions
from kamcore.decisions import DecisionLog, DecisionLogError, canonical_json, decompress, output_table, table_of
from kamcore.demo import synthetic_portfolio
from server import encoding
from server.api import evaluate
from server.encoding import ROWS_BY_COLUMN, _rows, dumps, loads, result_rows, rows_json
from tests.test_aside import refuse_threads

AS_OF = "2026-11-23"


def json_accounts(n):
    """n synthetic accounts as a client sends them: JSON records, dates as ISO text."""
    return json.loads(synthetic_portfolio(n, seed=21).to_json(orient="records", date_format="iso"))


@pytest.mark.parametrize("n", [0, 1, ROWS_BY_COLUMN - 1, ROWS_BY_COLUMN, 1000])
def test_result_rows_are_each_rows_cells_under_its_keys_in_order(n):
    """Built column by column from many rows, each row is the dict `dict(zip(keys, row))` makes: the same keys
    in the same order, the same cells (1 stays 1, 1.0 stays 1.0, True stays True), a repeated key holding the
    last of its cells where it first stood."""
    keys = ("tier", "score", "flag", "actions", "tier", "row")
    cells = [1, 1.0, True, None, "甲", ["call", "visit"], 2**70, float("nan")]
    columns = [[cells[(r * 3 + c) % len(cells)] for r in range(n)] for c in range(len(keys))]
    expected = [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    rows = _rows(keys, columns, n)
    assert repr(rows) == repr(expected)
    assert [list(r) for r in rows] == [list(r) for r in expected]
    assert all(r["tier"] is cell for r, cell in zip(rows, columns[4], strict=True))  # the cells themselves
    if n >= 2:  # separate dicts, not one shared
        rows[0]["tier"] = "changed"
        assert rows[1]["tier"] is columns[4][1]


def test_result_rows_refuse_columns_of_unequal_length():
    columns = [list(range(ROWS_BY_COLUMN)), list(range(ROWS_BY_COLUMN - 1))]
    with pytest.raises(ValueError, match="not 64"):
        _rows(("a", "b"), columns, ROWS_BY_COLUMN)
    with pytest.raises(ValueError):  # zip(strict=True) for a few rows
        _rows(("a", "b"), [[1, 2], [1]], 2)
    for n in (2, ROWS_BY_COLUMN):  # a column for each key, however many rows
        with pytest.raises(ValueError, match="1 result columns for 2 keys"):
            _rows(("a", "b"), [list(range(n))], n)


@pytest.mark.parametrize("n", [0, 1, ROWS_BY_COLUMN - 1, ROWS_BY_COLUMN, 1000])
def test_rows_json_writes_what_dumps_writes_of_the_rows(n, monkeypatch):
    """A batch's rows written straight from their columns are the JSON of the rows as dicts, byte for byte: the
    same keys in order, 1 as 1 and 1.0 as 1.0, text unescaped; cells msgspec has no form for (a numpy integer,
    a date) as `dumps` writes them. Cells that send `dumps` down the standard library's path (other spacing: an
    integer beyond 64 bits, numpy's float64) are the same values. From ROWS_BY_COLUMN rows no dict is made."""
    keys = ("tier", "score", "flag", "actions", "名称", "row")
    cells = [1, 1.0, True, None, "甲", ["call", "visit"], float("nan"), np.int64(7), dt.date(2026, 11, 23),
             -0.0, 0.1, 1e-7, "a\"b\\c\u2028", {"a": [1, None]}]
    columns = [[cells[(r * 3 + c) % len(cells)] for r in range(n)] for c in range(len(keys))]
    expected = dumps(_rows(keys, columns, n))
    wide = [[2**70 if r % 7 == 0 else np.float64(r / 8) if r % 7 == 1 else cell for r, cell in enumerate(cells)]
            for cells in columns]
    expected_wide = strict_json(dumps(_rows(keys, wide, n)))
    if n >= ROWS_BY_COLUMN:
        monkeypatch.setattr(encoding, "_rows", None)  # not called
    assert rows_json(keys, columns, n) == expected
    assert strict_json(rows_json(keys, wide, n)) == expected_wide


def strict_json(data: bytes) -> Any:
    """JSON as a strict reader takes it: NaN or Infinity is not JSON."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(data, parse_constant=refuse)


def test_dumps_writes_nan_and_infinity_as_null_on_the_standard_librarys_path_too():
    """An integer beyond 64 bits sends `dumps` to the standard library; NaN and ±infinity are null there as
    orjson writes them, Python's floats and numpy's alike, in nested values and in a default's conversion."""
    value = {"big": 2**70, "nan": float("nan"), "inf": [float("inf"), (np.float64("-inf"), 1.5)],
             "np": np.float32("nan"), "deep": {"x": [{"y": float("nan")}]}, "fine": 0.25}
    assert strict_json(dumps(value)) == {"big": 2**70, "nan": None, "inf": [None, [None, 1.5]], "np": None,
                                         "deep": {"x": [{"y": None}]}, "fine": 0.25}
    del value["big"]  # orjson's own path: the same values
    assert strict_json(dumps(value)) == {"nan": None, "inf": [None, [None, 1.5]], "np": None,
                                         "deep": {"x": [{"y": None}]}, "fine": 0.25}


def test_rows_json_writes_large_floats_as_numbers_of_the_same_value():
    """Floats of 1e16 and more are the one difference: msgspec writes 1e16 where orjson writes 1e+16. Both are
    JSON numbers of the same value."""
    keys = ("a", "row")
    columns = [[1e16, -1.2345678901234568e17, 1.7976931348623157e308] * 30, list(range(90))]
    written = rows_json(keys, columns, 90)
    assert b"1e16" in written
    assert json.loads(written) == json.loads(dumps(_rows(keys, columns, 90)))


def test_rows_json_falls_back_to_dicts_where_a_struct_cannot_stand_for_the_rows():
    """A key twice (the dict keeps the last cell, where the key first stood), a key with a quote, a backslash or
    a control character, and text that is not valid Unicode (refused as `dumps` refuses it) take the dict path;
    unequal columns are refused as `_rows` refuses them."""
    keys = ("tier", "score", "tier", "row")
    columns = [["A"] * 100, [1.5] * 100, ["B"] * 100, list(range(100))]
    assert encoding._row_type(keys) is None
    assert rows_json(keys, columns, 100) == dumps(_rows(keys, columns, 100))
    assert json.loads(rows_json(keys, columns, 100))[7] == {"tier": "B", "score": 1.5, "row": 7}
    odd = ('a"b', "c\\d", "e\nf", "row")  # keys msgspec will not take as a field's name
    assert encoding._row_type(odd) is None
    assert rows_json(odd, columns, 100) == dumps(_rows(odd, columns, 100))
    bad = [["ok"] * 99 + ["\ud800"], list(range(100))]
    with pytest.raises(UnicodeEncodeError):
        dumps(_rows(("name", "row"), bad, 100))
    with pytest.raises(UnicodeEncodeError):
        rows_json(("name", "row"), bad, 100)
    with pytest.raises(ValueError, match="not 100"):
        rows_json(("a", "row"), [[1] * 100, [1] * 99], 100)
    with pytest.raises(ValueError, match="1 result columns for 2 keys"):
        rows_json(("a", "row"), [[1] * 100], 100)


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
    accounts = json_accounts(300)
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


def test_a_batch_is_answered_and_logged_when_no_thread_can_be_started(app, as_, recorded_on, monkeypatch):
    """A process at its limit of threads: the decision is logged and its tables sealed on the request's thread
    instead of beside it, and the batch is answered as it would have been."""
    monkeypatch.setattr(decisions, "SEAL_ASIDE_BYTES", 1)  # every table sealed beside, where a thread can be had
    body = {"accounts": json_accounts(50), "as_of": AS_OF}
    expected = as_["viewer"].post("/v1/evaluate", json=body)
    assert expected.status_code == 200
    started = []
    with monkeypatch.context() as m:
        refuse_threads(m, started)
        r = as_["viewer"].post("/v1/evaluate", json=body)
    assert r.status_code == 200, r.json
    assert started  # threads were asked for, and refused
    how, threads = recorded_on
    assert threads[-1] == threading.current_thread().name
    answer = r.json
    assert answer["results"] == expected.json["results"] and answer["errors"] == expected.json["errors"]
    kam = app.extensions["kam"]
    assert kam.decisions.verify().ok and kam.decisions.verify().records == 2
    assert kam.decisions.reproduce(answer["decision_id"], kam.rules).identical
    stored = kam.decisions._db.execute("SELECT inputs, outputs FROM decisions ORDER BY seq").fetchall()
    assert [decompress(t) for t in stored[1]] == [decompress(t) for t in stored[0]]  # the same tables, byte for byte


@pytest.mark.parametrize("error", [DecisionLogError("the head marker is missing"), OSError("the disk is full")])
def test_a_decision_the_log_refuses_fails_the_batch_either_way(app, as_, recorded_on, monkeypatch, error, caplog):
    """No answer the log does not hold: a batch whose decision cannot be logged fails as the service's fault
    (500: a problem document naming the log's refusal, or an unexpected error), with nothing recorded."""
    how, threads = recorded_on
    kam = app.extensions["kam"]
    append = kam.decisions._append

    def refuse(fields):
        threads.append(threading.current_thread().name)
        append(fields)  # the record is written in the transaction, which the refusal then rolls back
        raise error

    monkeypatch.setattr(kam.decisions, "_append", refuse)
    accounts = json_accounts(20)
    if isinstance(error, OSError):  # the test client hands an unexpected error to the test as it is
        with pytest.raises(OSError, match="the disk is full"):
            as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
    else:
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
        assert r.status_code == 500 and r.content_type == "application/problem+json"
        assert r.json["detail"].startswith("the head marker is missing; nothing was answered")
        logged = [rec for rec in caplog.records if rec.getMessage().startswith("the decision could not be logged")]
        assert logged and logged[0].exc_info  # the service's log keeps the trace
    assert threads[-1] == ("kam-decision" if how == "aside" else threading.current_thread().name)
    assert kam.decisions.verify().records == 0


@pytest.mark.parametrize("explain", [False, True])
def test_an_answer_that_cannot_be_encoded_still_waits_for_its_decision_and_names_it(new_app, monkeypatch, caplog,
                                                                                    explain):
    """A large batch's results are encoded while its decision is logged (from their columns, or as rows with
    their traces): should encoding fail, the request still waits for the log, so no thread outlives it and the
    access log names the decision that was recorded."""
    app, as_ = new_app(testing=False, access_log=True)  # an unexpected error answered 500, as in service
    monkeypatch.setattr(evaluate, "ENCODE_ASIDE_ROWS", 1)
    kam = app.extensions["kam"]
    record = DecisionLog.record_evaluation

    def slow(self, *args, **kwargs):
        time.sleep(0.3)  # still logging when the encoding fails
        return record(self, *args, **kwargs)

    def refuse(*value):
        raise MemoryError("no room for the answer")

    monkeypatch.setattr(DecisionLog, "record_evaluation", slow)
    monkeypatch.setattr(evaluate, "dumps", refuse)  # rows with traces (explain)
    monkeypatch.setattr(evaluate, "rows_json", refuse)  # rows straight from their columns
    accounts = json_accounts(20)
    with caplog.at_level(logging.INFO, logger="kam.access"):
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF, "explain": explain})
    assert r.status_code == 500
    assert not [t for t in threading.enumerate() if t.name == "kam-decision"]
    assert kam.decisions.verify().records == 1  # logged before the failure was answered, not after
    (recorded,) = kam.decisions._db.execute("SELECT id FROM decisions").fetchone()
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "kam.access"]
    assert line["decision_id"] == recorded and line["status"] == 500


def test_the_other_front_ends_get_results_as_rows_however_many(app, as_, monkeypatch):
    """Only the JSON API sends its answer through `dumps`; the cells, workbook and xlwings front ends read the
    rows, so theirs are never given encoded, whatever the batch's size."""
    monkeypatch.setattr(evaluate, "ENCODE_ASIDE_ROWS", 1)
    accounts = json_accounts(5)
    with app.test_request_context(headers={"Authorization": f"Bearer {as_['viewer'].token}"}):
        answer = evaluate.evaluate_accounts(accounts, as_of=AS_OF)
        encoded = evaluate.evaluate_accounts(accounts, as_of=AS_OF, encoded=True)
    assert type(answer["results"]) is list and len(answer["results"]) == 5
    assert json.loads(dumps(encoded)) | {"decision_id": None} == json.loads(dumps(answer)) | {"decision_id": None}


def test_a_decision_log_held_past_the_wait_answers_503_to_try_again(app, as_, monkeypatch):
    """Another writer holding the log's lock past `BUSY_TIMEOUT_S` is the service's state, not a fault of the
    request: 503 with Retry-After, nothing recorded; once the lock is free, the same request is answered."""
    monkeypatch.setattr(decisions, "BUSY_TIMEOUT_S", 0.3)
    kam = app.extensions["kam"]
    accounts = json_accounts(3)
    fd = os.open(f"{kam.decisions.path}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a worker stopped mid-write would hold it
        r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
    finally:
        os.close(fd)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.content_type == "application/problem+json" and "another writer has held" in r.json["detail"]
    assert kam.decisions.verify().records == 0
    r = as_["viewer"].post("/v1/evaluate", json={"accounts": accounts, "as_of": AS_OF})
    assert r.status_code == 200 and kam.decisions.verify().records == 1


def arrow_body(n: int) -> bytes:
    """A body of n accounts large enough to be read by Arrow (a DataFrame, as a client's large batch is)."""
    from server import batchbody

    data = json.dumps({"accounts": json_accounts(n), "as_of": AS_OF}).encode()
    assert batchbody.read_batch(data) is not None
    return data


@pytest.mark.parametrize("threads", ["threads", "no threads"])
def test_a_large_batchs_inputs_are_sealed_while_it_is_evaluated_and_logged_as_before(app, as_, monkeypatch,
                                                                                      threads):
    """A batch read into a DataFrame has its input table sealed for the log beside its evaluation, and its outputs
    written before its answer is, and the log holds what it held before; where no thread can be started, sealed on
    the request's thread."""
    monkeypatch.setattr(evaluate, "ENCODE_ASIDE_ROWS", 100)
    sealed_on = []
    seal = evaluate.seal_inputs

    def watched(accounts):
        sealed_on.append(threading.current_thread().name)
        return seal(accounts)

    monkeypatch.setattr(evaluate, "seal_inputs", watched)
    data = arrow_body(600)
    taken = []
    record = DecisionLog.record_evaluation
    monkeypatch.setattr(DecisionLog, "record_evaluation",
                        lambda self, *args, **kw: taken.append(kw) or record(self, *args, **kw))
    if threads == "no threads":
        refuse_threads(monkeypatch)
    r = as_["viewer"].post("/v1/evaluate", data=data, content_type="application/json")
    assert r.status_code == 200, r.json
    assert sealed_on == ["kam-seal-inputs" if threads == "threads" else threading.current_thread().name]
    # handed to the log: the inputs sealed, the outputs written (on the request's thread, before the answer is)
    assert taken and taken[0]["inputs"] is not None and taken[0]["outputs"] is not None
    kam = app.extensions["kam"]
    ev = kam.rules.book(None).evaluate(loads(data)["accounts"], as_of=AS_OF)
    (inputs,) = kam.decisions._db.execute("SELECT inputs FROM decisions WHERE id = ?",
                                          (r.json["decision_id"],)).fetchone()
    assert decompress(inputs) == canonical_json(table_of(ev.input, "inputs"))
    assert kam.decisions.verify().ok
    assert kam.decisions.reproduce(r.json["decision_id"], kam.rules).identical


def test_a_large_batch_out_of_time_is_refused_once_its_inputs_are_sealed(new_app, monkeypatch):
    """An evaluation over its limit while the inputs are sealed beside it: the usual 413, nothing logged, and no
    sealing thread left behind."""
    app, as_ = new_app(evaluate_timeout_s=0)
    monkeypatch.setattr(evaluate, "ENCODE_ASIDE_ROWS", 100)
    r = as_["viewer"].post("/v1/evaluate", data=arrow_body(600), content_type="application/json")
    assert r.status_code == 413 and "evaluate_timeout_s" in r.json["detail"]
    assert not [t for t in threading.enumerate() if t.name == "kam-seal-inputs"]
    assert app.extensions["kam"].decisions.verify().records == 0
