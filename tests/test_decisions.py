"""The decision log on real SQLite files: stored form, hash chain, tampering, retention, reproduction,
concurrent writers, writers killed mid-write, and the `kam decisions` commands."""

import datetime as dt
import fcntl
import gc
import hashlib
import itertools
import json
import logging
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
import zlib
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from kamcore import RowError, RuleBook, decisions
from kamcore import cli as kam_cli
from kamcore.decisions import (
    DecisionLog,
    DecisionLogError,
    UnknownDecision,
    canonical_json,
    compress,
    decompress,
    log_path,
    table_of,
)
from kamcore.demo import synthetic_portfolio
from kamcore.store import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-23"
RECENCY = """rules:
  - id: recency
    kind: formula
    label: {zh: 距上次下单天数, en: Days since the last order}
    formulas:
      days_since_order: days_between(last_order_date, today())
"""


class Books:
    """The rule book at each revision, loaded from folders: what the rule store does, without git."""

    def __init__(self, folders):
        self.folders = folders
        self.books = {}

    def book(self, rev):
        if rev not in self.books:
            self.books[rev] = RuleBook.load(self.folders[rev], revision=rev)
        return self.books[rev]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """r1: the shipped rules plus a rule that reads today(); r2: the same with tier A limits raised."""
    base = tmp_path_factory.mktemp("books")
    r1, r2 = base / "r1", base / "r2"
    shutil.copytree(ROOT / "rules", r1)
    (r1 / "recency.yaml").write_text(RECENCY, encoding="utf-8")
    shutil.copytree(r1, r2)
    credit = r2 / "credit.yaml"
    text = credit.read_text(encoding="utf-8")
    assert "coalesce(revenue_12m, 0) * credit_share" in text
    raised = text.replace("coalesce(revenue_12m, 0) * credit_share", "coalesce(revenue_12m, 0) * credit_share * 1.2")
    credit.write_text(raised, encoding="utf-8")
    return Books({"r1": r1, "r2": r2})


@pytest.fixture
def log(tmp_path):
    with DecisionLog.open(tmp_path / "data" / "decisions.sqlite3") as opened:
        yield opened


def portfolio(n=60, seed=11):
    frame = synthetic_portfolio(n, seed=seed, null_rate=0.1).astype({"revenue_12m": object})
    frame.loc[4, "revenue_12m"] = "一千万"  # one unreadable cell: a row error that must be kept and reproduced
    return frame


def raw(log):
    """A second, plain connection: how someone with file access would edit the log by hand."""
    return sqlite3.connect(log.path, isolation_level=None)


def write(log, n, actor="alice"):
    return [log.record(actor, "r1", [{"account_id": f"C{i}", "revenue_12m": 1000.0 * i}], [{"tier": "D"}],
                       as_of=AS_OF) for i in range(n)]


# --- the stored form -----------------------------------------------------------------------------------------


def test_values_round_trip_exactly(log):
    account = {
        "account_id": "C1", "account_name": "华瑞科技", "day": dt.date(2024, 2, 29),
        "moment": dt.datetime(2024, 1, 31, 8, 30, 15, 250),
        "aware": dt.datetime(2024, 1, 31, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        "stamp": pd.Timestamp("2024-03-01 12:00:00"), "nanos": pd.Timestamp("2024-03-01 12:00:00.000000001"),
        "np_day": np.datetime64("2024-05-06"), "nan": float("nan"), "inf": float("inf"), "minus_inf": -math.inf,
        "none": None, "nat": pd.NaT, "na": pd.NA, "np_int": np.int64(2**40), "np_float": np.float32(0.5),
        "np_bool": np.bool_(True), "big": 10**30, "ratio": 0.1 + 0.2, "negative_zero": -0.0,
        "tags": ["战略", "VIP", [1, 2.5, None]], "pair": (1, "二"), "array": np.array([1, 2]),
        "money": Decimal("1234.50"), "looks_like_a_tag": {"$date": "not a date"},
        "nested": {"b": 1, "a": [dt.date(2020, 1, 1)]},
    }
    decision_id = log.record("王经理", "r1", [account], {"tier": "A"}, as_of=AS_OF)
    got = log.get(decision_id).inputs.to_dict("records")[0]
    assert list(got) == list(account)
    assert got["account_name"] == "华瑞科技" and got["day"] == dt.date(2024, 2, 29) and type(got["day"]) is dt.date
    assert got["moment"] == account["moment"] and got["aware"] == account["aware"]
    assert got["aware"].utcoffset() == dt.timedelta(hours=8)
    assert got["stamp"] == account["stamp"] and got["nanos"] == account["nanos"]
    assert got["nanos"].nanosecond == 1
    assert got["np_day"] == dt.datetime(2024, 5, 6)
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["minus_inf"] == -math.inf
    assert got["none"] is None and got["nat"] is None and got["na"] is None
    assert got["np_int"] == 2**40 and type(got["np_int"]) is int
    assert got["np_float"] == 0.5 and type(got["np_float"]) is float
    assert got["np_bool"] is True
    assert got["big"] == 10**30 and got["ratio"] == 0.1 + 0.2
    assert math.copysign(1, got["negative_zero"]) == -1
    assert got["tags"] == ["战略", "VIP", [1, 2.5, None]] and got["pair"] == [1, "二"] and got["array"] == [1, 2]
    assert got["money"] == Decimal("1234.50") and str(got["money"]) == "1234.50"
    assert got["looks_like_a_tag"] == {"$date": "not a date"}
    assert got["nested"] == {"a": [dt.date(2020, 1, 1)], "b": 1}


def test_chinese_text_is_stored_as_utf8_not_escaped():
    assert canonical_json(table_of([{"客户名称": "华瑞科技"}])) == \
        '{"columns":["客户名称"],"rows":1,"values":[["华瑞科技"]]}'.encode()


def test_a_dataframe_keeps_its_column_order_duplicate_headers_and_types(log):
    frame = pd.DataFrame([[3000000.0, "C1", None], [np.nan, "C2", 2500000.0]],
                         columns=["近12个月销售额", "account_id", "Revenue (12m)"])
    frame = pd.concat([frame, frame[["近12个月销售额"]]], axis=1)  # the same header twice
    frame["last_order_date"] = pd.to_datetime(["2026-01-02", None])
    frame["order_count_12m"] = np.array([3, 2**53 + 1], dtype=np.int64)
    frame["vip"] = [True, False]
    frame["credit_score"] = [70.5, 80.0]
    got = log.get(log.record("bob", "r1", frame, frame[["account_id"]], as_of=AS_OF)).inputs
    assert list(got.columns) == ["近12个月销售额", "account_id", "Revenue (12m)", "近12个月销售额", "last_order_date",
                                 "order_count_12m", "vip", "credit_score"]
    assert [type(v) for v in got["order_count_12m"]] == [int, int] and got["order_count_12m"][1] == 2**53 + 1
    assert got["vip"].tolist() == [True, False] and got["credit_score"].tolist() == [70.5, 80.0]
    assert got.iloc[:, 0].tolist()[0] == 3000000.0 and math.isnan(got.iloc[:, 0].tolist()[1])
    assert got.iloc[:, 2].tolist()[0] is None or math.isnan(got.iloc[:, 2].tolist()[0])
    assert got["last_order_date"].tolist() == [dt.datetime(2026, 1, 2), None]


def test_missing_keys_of_a_list_of_dicts_read_back_as_null(log):
    got = log.get(log.record("bob", "r1", [{"a": 1}, {"b": "x"}], [{}, {}], as_of=AS_OF))
    assert got.inputs.to_dict("records") == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
    assert len(got.outputs) == 2 and list(got.outputs.columns) == []


def test_input_digest_is_sha256_of_the_canonical_inputs(log):
    inputs = [{"account_id": "C1", "extra": {"b": 2, "a": 1}, "revenue_12m": np.float64(5e6)}]
    first = log.get(log.record("alice", "r1", inputs, [{"tier": "B"}], as_of=AS_OF))
    assert first.input_digest == hashlib.sha256(canonical_json(table_of(inputs))).hexdigest()
    reordered = [{"account_id": "C1", "extra": {"a": 1, "b": 2}, "revenue_12m": 5e6}]
    assert log.get(log.record("bob", "r2", reordered, [], as_of=AS_OF)).input_digest == first.input_digest
    changed = [{"account_id": "C1", "extra": {"a": 1, "b": 2}, "revenue_12m": 5e6 + 1}]
    assert log.get(log.record("bob", "r1", changed, [], as_of=AS_OF)).input_digest != first.input_digest


def test_tables_are_stored_compressed(log):
    frame = synthetic_portfolio(100)
    decision_id = log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
    blob, = raw(log).execute("SELECT inputs FROM decisions WHERE id = ?", (decision_id,)).fetchone()
    assert blob[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    canonical = decompress(blob)
    assert canonical == canonical_json(table_of(frame))
    assert len(blob) < len(canonical) / 2


def test_records_stored_with_zlib_before_zstd_still_read_and_verify(log):
    decision_id = log.record("alice", "r1", [{"account_id": "C1", "客户": "华瑞"}], [{"tier": "A"}], as_of=AS_OF)
    db = raw(log)
    blobs = db.execute("SELECT inputs, outputs FROM decisions WHERE id = ?", (decision_id,)).fetchone()
    db.execute("UPDATE decisions SET inputs = ?, outputs = ? WHERE id = ?",
               (*(zlib.compress(decompress(b), 3) for b in blobs), decision_id))
    db.commit()
    got = log.get(decision_id)
    assert got.inputs.to_dict("records") == [{"account_id": "C1", "客户": "华瑞"}]
    assert got.outputs.to_dict("records") == [{"tier": "A"}]
    assert log.verify().ok


def test_a_value_that_cannot_be_recorded_is_named_by_row_and_column(log):
    with pytest.raises(DecisionLogError, match=r"inputs: row 1, column 'tags': cannot record set value"):
        log.record("alice", "r1", [{"tags": ["a"]}, {"tags": {"a"}}], [], as_of=AS_OF)
    with pytest.raises(DecisionLogError, match=r"inputs: row 2, column 'tags': cannot record object value"):
        log.record("alice", "r1", [{"tags": ["a"]}, {"tags": []}, {"tags": ["b", [object()]]}], [], as_of=AS_OF)
    with pytest.raises(DecisionLogError, match=r"inputs: column name 1: cannot record frozenset"):
        log.record("alice", "r1", [{"a": 1, frozenset("b"): 2}], [], as_of=AS_OF)
    with pytest.raises(DecisionLogError, match=r"outputs: row 0, column 'delay': cannot record Timedelta"):
        log.record("alice", "r1", [{}], pd.DataFrame({"delay": pd.to_timedelta(["1 day"])}), as_of=AS_OF)
    with pytest.raises(DecisionLogError, match="must be a DataFrame or a list"):
        log.record("alice", "r1", "C1", [], as_of=AS_OF)
    assert log.verify().records == 0  # nothing half-written


def test_a_decision_needs_an_actor_and_a_revision(log):
    with pytest.raises(DecisionLogError, match="actor"):
        log.record(" ", "r1", [], [], as_of=AS_OF)
    with pytest.raises(DecisionLogError, match="revision"):
        log.record("alice", None, [], [], as_of=AS_OF)


def test_a_decision_keeps_who_when_which_revision_and_as_of(log, books):
    before = dt.datetime.now(dt.UTC)
    ev = books.book("r1").evaluate(portfolio(), as_of="2025-06-30")
    first = log.get(log.record_evaluation("王经理", ev))
    second = log.get(log.record_evaluation("bob", ev))
    assert (first.actor, first.revision, first.as_of, first.seq) == ("王经理", "r1", dt.date(2025, 6, 30), 1)
    assert before <= first.time <= second.time <= dt.datetime.now(dt.UTC)
    assert first.prev_hash == decisions.GENESIS and second.prev_hash == first.hash != second.hash
    assert list(first.outputs.columns) == ev.output_names and len(first.outputs) == 60
    assert [(e.row, e.field) for e in first.errors] == [(4, "revenue_12m")]
    assert isinstance(first.errors[0], RowError)


def test_evaluations_without_a_revision_are_refused(log):
    ev = RuleBook.load(ROOT / "rules").evaluate(portfolio(), as_of=AS_OF)
    with pytest.raises(DecisionLogError, match="no revision"):
        log.record_evaluation("alice", ev)


def test_an_unknown_id_is_reported(log):
    write(log, 1)
    with pytest.raises(UnknownDecision, match="no decision nope"):
        log.get("nope")


# --- verify: the hash chain ---------------------------------------------------------------------------------


def test_an_untouched_log_verifies(log):
    ids = write(log, 5)
    result = log.verify()
    assert result.ok and bool(result) and result.first is None
    assert (result.records, result.head_seq, result.head_hash) == (5, 5, log.get(ids[-1]).hash)
    assert str(result).startswith("chain intact: 5 records; head 5 ")


def test_editing_one_field_by_hand_is_detected_and_named(log):
    ids = write(log, 6)
    raw(log).execute("UPDATE decisions SET actor = 'mallory' WHERE id = ?", (ids[2],))
    result = log.verify()
    assert not result.ok
    assert (result.first.seq, result.first.decision_id) == (3, ids[2])
    assert "record 3" in str(result.first) and "does not match its hash" in str(result.first)
    assert len(result.findings) == 1  # the records after it are still sound
    with pytest.raises(DecisionLogError, match="it was altered"):
        log.get(ids[2])


def test_editing_stored_outputs_is_detected(log):
    ids = write(log, 4)
    db = raw(log)
    blob, = db.execute("SELECT outputs FROM decisions WHERE id = ?", (ids[1],)).fetchone()
    doc = json.loads(decompress(blob))
    doc["outputs"]["values"][0] = ["A"]  # tier D -> A
    db.execute("UPDATE decisions SET outputs = ? WHERE id = ?", (compress(canonical_json(doc)), ids[1]))
    first = log.verify().first
    assert (first.seq, first.decision_id) == (2, ids[1])
    assert "outputs that do not match their digest" in first.message


def test_an_edit_with_its_hash_recomputed_breaks_the_link(log):
    ids = write(log, 5)
    db = raw(log)
    db.execute("UPDATE decisions SET actor = 'mallory', revision = 'r2' WHERE id = ?", (ids[2],))
    names = ("seq", "id", "kind", "time", "actor", "revision", "as_of", "input_digest", "output_digest",
             "checkpoint", "prev_hash")
    row = dict(zip(names, db.execute(f"SELECT {', '.join(names)} FROM decisions WHERE id = ?", (ids[2],)).fetchone(),
                   strict=True))
    db.execute("UPDATE decisions SET hash = ? WHERE id = ?", (decisions._record_hash(row), ids[2]))
    first = log.verify().first
    assert (first.seq, first.decision_id) == (3, ids[2])
    assert "record 4 does not link to it" in first.message


@pytest.mark.parametrize("position, message", [(1, "record 1 was removed from the start"),
                                               (3, "record 3 was removed (between record 2 and record 4)"),
                                               (5, "record 5 was removed from the end")])
def test_deleting_one_record_is_detected(log, position, message):
    ids = write(log, 5)
    raw(log).execute("DELETE FROM decisions WHERE id = ?", (ids[position - 1],))
    result = log.verify()
    assert [(f.seq, f.message.split(" (no checkpoint")[0]) for f in result.findings] == [(position, message)]


def test_a_deleted_last_record_stays_detected_after_more_writes(log):
    ids = write(log, 3)
    raw(log).execute("DELETE FROM decisions WHERE id = ?", (ids[-1],))
    write(log, 2)  # new records link to the true head, so the gap cannot be papered over
    assert [f.seq for f in log.verify().findings] == [3]


def test_records_inserted_behind_the_logs_back_are_detected(log):
    write(log, 2)
    db = raw(log)
    db.execute("INSERT INTO decisions (seq, id, kind, time, actor, prev_hash, hash) "
               "SELECT seq + 1, 'forged', kind, time, actor, hash, hash FROM decisions WHERE seq = 2")
    assert log.verify().first.seq == 3


def test_a_removed_head_marker_is_detected_and_stops_writes(log):
    write(log, 2)
    raw(log).execute("DELETE FROM head")
    assert "head marker is missing" in log.verify().first.message
    with pytest.raises(DecisionLogError, match="head marker is missing"):
        write(log, 1)


# --- retention ----------------------------------------------------------------------------------------------


def test_pruning_keeps_the_chain_verifiable(log):
    ids = write(log, 8)
    cutoff = log.get(ids[5]).time
    pruned = log.prune(before=cutoff, actor="auditor")
    assert (pruned.decisions, pruned.through) == (5, 5)
    result = log.verify()
    assert result.ok, result
    assert (result.records, result.pruned_through, result.head_seq) == (4, 5, 9)
    assert "records 1..5 pruned" in str(result)
    with pytest.raises(UnknownDecision):
        log.get(ids[0])
    assert log.get(ids[5]).seq == 6
    checkpoint = raw(log).execute("SELECT actor, checkpoint FROM decisions WHERE kind = 'checkpoint'").fetchone()
    assert checkpoint[0] == "auditor"
    assert json.loads(checkpoint[1])["through_hash"] == log.get(ids[5]).prev_hash
    with pytest.raises(UnknownDecision, match="checkpoint"):
        log.get(pruned.checkpoint_id)
    write(log, 2)
    assert log.verify().ok


def test_tampering_with_what_is_left_after_pruning_is_detected(tmp_path):
    def pruned_log(name):
        opened = DecisionLog.open(tmp_path / name / "decisions.sqlite3")
        ids = write(opened, 6)
        opened.prune(before=opened.get(ids[3]).time)
        return opened, ids

    log, ids = pruned_log("a")
    raw(log).execute("DELETE FROM decisions WHERE id = ?", (ids[3],))  # the oldest record left
    assert [(f.seq, "removed from the start" in f.message) for f in log.verify().findings] == [(4, True)]

    log, ids = pruned_log("b")
    raw(log).execute("UPDATE decisions SET checkpoint = replace(checkpoint, '\"through\":3', '\"through\":2')")
    findings = log.verify().findings
    assert [f.seq for f in findings] == [1, 7]  # what the checkpoint vouched for is unvouched; it was altered
    assert findings[0].message.endswith("(no checkpoint covers them; checkpoint record 7 was altered)")
    assert "record 7 (checkpoint" in findings[1].message

    log, ids = pruned_log("c")
    raw(log).execute("UPDATE decisions SET actor = 'mallory' WHERE id = ?", (ids[4],))
    assert log.verify().first.seq == 5

    log, ids = pruned_log("d")
    raw(log).execute("DELETE FROM decisions WHERE kind = 'checkpoint'")
    assert [f.message for f in log.verify().findings] == [
        "records 1..3 were removed from the start (no checkpoint covers them)", "record 7 was removed from the end"]


def test_pruning_again_and_pruning_everything(log):
    write(log, 3)
    assert log.prune(keep_days=1) == decisions.Pruned(0, None, None)  # all fresh: nothing to do, nothing written
    assert log.verify().records == 3
    assert log.prune(keep_days=0).decisions == 3
    write(log, 2)
    assert log.prune(before=dt.datetime.now() + dt.timedelta(minutes=1)).decisions == 2  # local time, naive
    result = log.verify()
    assert result.ok, result
    assert (result.records, result.pruned_through, result.head_seq) == (1, 6, 7)
    write(log, 1)
    assert log.verify().ok


def test_pruning_while_another_thread_writes(log):
    writer = threading.Thread(target=write, args=(log, 60, "writer"))
    writer.start()
    pruned = 0
    while writer.is_alive():
        pruned += log.prune(keep_days=0).decisions
    writer.join()
    result = log.verify()
    assert result.ok, result
    assert pruned + sum(1 for _ in raw(log).execute("SELECT 1 FROM decisions WHERE kind = 'decision'")) == 60


def test_pruning_refuses_a_log_that_does_not_verify(log):
    ids = write(log, 4)
    raw(log).execute("UPDATE decisions SET actor = 'mallory' WHERE id = ?", (ids[0],))
    with pytest.raises(DecisionLogError, match="does not verify"):
        log.prune(keep_days=0)
    assert log.verify().records == 4


def test_pruning_needs_one_cutoff(log):
    for kwargs in ({}, {"keep_days": 1, "before": dt.date.today()}, {"keep_days": -1}, {"before": "2024"}):
        with pytest.raises(DecisionLogError):
            log.prune(**kwargs)


# --- reproduce ----------------------------------------------------------------------------------------------


def test_a_decision_reproduces_identically_at_its_revision_and_as_of(log, books):
    ev = books.book("r1").evaluate(portfolio(), as_of="2025-06-30")
    decision_id = log.record_evaluation("alice", ev)
    result = log.reproduce(decision_id, books)
    assert result.identical, [str(d) for d in result.differences]
    assert (result.revision, result.as_of, result.accounts) == ("r1", dt.date(2025, 6, 30), 60)
    assert str(result).endswith("outputs identical")
    # as_of matters: the same inputs today give other day counts, so it was the stored as_of that was used
    today = books.book("r1").evaluate(portfolio()).frame["days_since_order"]
    assert not today.equals(ev.frame["days_since_order"])


def test_rules_changed_under_a_revision_show_as_differences(log, books):
    frame = portfolio()
    old, new = (books.book(rev).evaluate(frame, as_of=AS_OF) for rev in ("r1", "r2"))
    # a decision that claims r1 but was computed with the r2 rules
    decision_id = log.record("alice", "r1", frame, new.frame[new.output_names], new.errors, AS_OF)
    result = log.reproduce(decision_id, books)
    assert not result.identical
    changed = (old.frame["credit_limit"] != new.frame["credit_limit"]) & old.frame["credit_limit"].notna()
    assert changed.sum() > 0
    limits = [d for d in result.differences if d.field == "credit_limit"]
    assert [d.row for d in limits] == list(np.flatnonzero(changed))
    d = limits[0]
    assert (d.recorded, d.reproduced) == (new.frame["credit_limit"][d.row], old.frame["credit_limit"][d.row])
    assert str(d) == f"row {d.row}: credit_limit: recorded {d.recorded!r}, reproduced {d.reproduced!r}"
    # only the credit limit and what is computed from it may differ
    assert {x.field for x in result.differences} <= {"credit_limit", "utilisation", "credit_status", "credit_actions",
                                                     "next_actions", "action_reasons"}


def test_row_errors_are_part_of_what_is_reproduced(log, books):
    frame = portfolio()
    ev = books.book("r1").evaluate(frame, as_of=AS_OF)
    decision_id = log.record("alice", "r1", frame, ev.frame[ev.output_names], errors=[], as_of=AS_OF)
    result = log.reproduce(decision_id, books)
    assert [(d.row, d.field, d.recorded) for d in result.differences] == [(4, "error revenue_12m", None)]
    assert "一千万" in result.differences[0].reproduced


def test_plain_values_from_outputs_compare_equal_to_the_frame(log, books):
    accounts = portfolio(8).drop(index=4).reset_index(drop=True).to_dict("records")
    ev = books.book("r1").evaluate(accounts, as_of=AS_OF)
    outputs = [ev.outputs(i) for i in range(len(accounts))]  # ints where the frame holds floats, None for NaN
    assert log.reproduce(log.record("alice", "r1", accounts, outputs, as_of=AS_OF), books).identical


def test_a_recorded_output_the_book_does_not_have_is_a_difference(log, books):
    decision_id = log.record("alice", "r1", [{"revenue_12m": 1}], [{"tier": "D", "bonus": 5}], as_of=AS_OF)
    differences = log.reproduce(decision_id, books).differences
    assert [(d.row, d.field) for d in differences] == [(None, "bonus")]


def test_a_store_giving_another_revision_is_refused(log, books):
    decision_id = log.record("alice", "r1", [{"revenue_12m": 1}], [{"tier": "D"}], as_of=AS_OF)

    class Wrong:
        def book(self, rev):
            return books.book("r2")

    with pytest.raises(DecisionLogError, match="asked for the rule book at r1, got r2"):
        log.reproduce(decision_id, Wrong())


# --- concurrent writers and killed writers -------------------------------------------------------------------


def assert_linear(path, n):
    with DecisionLog.open(path) as opened:
        result = opened.verify()
    assert result.ok, result
    assert result.records == result.head_seq == n
    seqs = [s for (s,) in sqlite3.connect(path).execute("SELECT seq FROM decisions ORDER BY seq")]
    assert seqs == list(range(1, n + 1))


def test_threads_sharing_one_log_keep_the_chain_linear(log):
    threads = [threading.Thread(target=write, args=(log, 25, f"t{k}")) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_linear(log.path, 100)


def test_threads_with_their_own_connections_keep_the_chain_linear(tmp_path):
    path = tmp_path / "decisions.sqlite3"

    def writer(k):
        with DecisionLog.open(path) as own:
            write(own, 20, f"t{k}")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_linear(path, 80)


WRITER = """
import sys
from kamcore import decisions
from kamcore.decisions import DecisionLog
from kamcore.demo import synthetic_portfolio
from kamcore.store import DATA_DIR

path, count, gate, wal_limit, every = sys.argv[1], int(sys.argv[2]), sys.argv[4] == "gate", sys.argv[5], sys.argv[6]
if wal_limit != "-":
    decisions.WAL_LIMIT_BYTES = int(wal_limit)
if every != "-":
    decisions.CHECKPOINT_EVERY_S = float(every)
frame = synthetic_portfolio(100, seed=int(sys.argv[3]))
outputs = frame[["account_id", "revenue_12m"]]
ids = []
with DecisionLog.open(path, durable=count < 0) as log:
    print("ready", flush=True)
    if gate:
        sys.stdin.readline()
    i = 0
    while count < 0 or i < count:
        batch = frame if i % 2 else frame.iloc[:1]
        ids.append(log.record(f"writer {sys.argv[3]}", "r1", batch, outputs.iloc[:len(batch)], as_of="2026-11-23"))
        i += 1
print("\\n".join(ids))
"""


def start_writer(path, count, seed, gate=False, wal_limit=None, every=None):
    """A writer process: `count` decisions (< 0: until killed, each flushed to disk), after a line on its stdin
    if `gate`; `wal_limit` and `every` set its checkpointer's WAL limit and pace."""
    args = [str(path), str(count), str(seed), "gate" if gate else "-", str(wal_limit or "-"), str(every or "-")]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, *args], stdin=subprocess.PIPE if gate else None,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_processes_writing_at_once_keep_the_chain_linear(tmp_path):
    path = tmp_path / "decisions.sqlite3"
    writers = [start_writer(path, 30, seed) for seed in range(3)]
    for proc in writers:
        assert proc.wait(timeout=120) == 0
        proc.stdout.close()
    assert_linear(path, 90)


def test_two_processes_writing_many_decisions_keep_every_id_in_one_linear_chain(tmp_path):
    path = tmp_path / "decisions.sqlite3"
    # A small WAL limit and a quick pace: the checkpoints that hold every writer off run often, in both processes.
    writers = [start_writer(path, 500, seed, gate=True, wal_limit=128 * 1024, every=0.01) for seed in (1, 2)]
    for proc in writers:  # both let go at once
        proc.stdin.write("go\n")
        proc.stdin.flush()
    ids = []
    for proc in writers:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        ids += out.split()
    assert len(ids) == len(set(ids)) == 1000
    assert_linear(path, 1000)
    db = sqlite3.connect(path)
    assert {i for (i,) in db.execute("SELECT id FROM decisions")} == set(ids)
    actors = [a for (a,) in db.execute("SELECT actor FROM decisions ORDER BY seq")]
    assert sum(a != b for a, b in itertools.pairwise(actors)) > 1  # they did write at the same time
    db.close()
    assert Path(f"{path}-wal").stat().st_size < 1024 * 1024  # emptied as the writers closed the log


def test_writers_killed_mid_write_leave_the_chain_intact(tmp_path):
    path = tmp_path / "decisions.sqlite3"
    rng = random.Random(6)
    seen = 0
    for kill in range(8):
        writers = [start_writer(path, -1, seed) for seed in (kill, kill + 100)]  # two, racing for the lock
        time.sleep(rng.uniform(0.02, 0.4))
        for proc in writers:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
            assert proc.returncode == -signal.SIGKILL
        with DecisionLog.open(path) as opened:
            result = opened.verify()
        assert result.ok, f"after kill {kill}: {result}"
        assert result.records == result.head_seq >= seen
        seen = result.records
    assert seen > 0
    with DecisionLog.open(path) as opened:  # and the log takes new writes where the killed ones stopped
        write(opened, 3)
    assert_linear(path, seen + 3)


# --- the lock file and the checkpoints ---------------------------------------------------------------------


def writes_in_background(action):
    """`action` started in a thread; the event is set once it is done."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (action(), done.set()))
    thread.start()
    return thread, done


def test_every_write_takes_the_lock_file_beside_the_log(log):
    lock = Path(f"{log.path}.lock")
    assert lock.is_file()
    write(log, 3)
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a writer of another process holds it
        for action in (lambda: write(log, 1), lambda: log.prune(before=dt.datetime.now(dt.UTC) + dt.timedelta(1))):
            thread, done = writes_in_background(action)
            assert not done.wait(0.3)  # it waits for the lock file (without it, done in milliseconds)
            fcntl.flock(fd, fcntl.LOCK_UN)
            thread.join(30)
            assert done.is_set()
            fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)
    result = log.verify()
    assert result.ok and result.pruned_through == 4 and result.head_seq == 5


def test_a_writer_that_takes_only_sqlites_lock_is_still_waited_for(log):
    write(log, 2)
    older = raw(log)  # as an older KAM Rules writes: SQLite's lock, no lock file
    older.execute("BEGIN IMMEDIATE")
    # An emptying checkpoint gives up at once rather than wait with every writer held off, and says so.
    frames, copied = log.checkpoint(empty=True)
    assert frames > 0
    thread, done = writes_in_background(lambda: write(log, 1))
    assert not done.wait(0.3)
    older.execute("ROLLBACK")
    thread.join(30)
    assert done.is_set()
    assert log.checkpoint(empty=True) == (0, 0)
    assert_linear(log.path, 3)


def test_without_its_lock_file_the_log_takes_turns_by_sqlites_lock(tmp_path, caplog):
    path = tmp_path / "decisions.sqlite3"
    Path(f"{path}.lock").symlink_to(tmp_path / "missing" / "lock")  # cannot be created or opened
    with caplog.at_level(logging.WARNING, logger="kamcore.decisions"):
        opened = DecisionLog.open(path)
    assert "decisions.sqlite3.lock" in caplog.text and "SQLite's lock alone" in caplog.text
    with opened:
        threads = [threading.Thread(target=write, args=(opened, 20, f"t{k}")) for k in range(3)]
        for t in threads:
            t.start()
        writer = start_writer(path, 20, 7)  # and a process, which cannot open it either
        for t in threads:
            t.join()
        assert writer.wait(timeout=120) == 0
        writer.stdout.close()
    assert_linear(path, 80)


@pytest.mark.parametrize(("durable", "synchronous"), [(True, 2), (False, 1)])
def test_durable_logs_flush_every_decision_and_no_log_checkpoints_in_a_write(tmp_path, durable, synchronous):
    with DecisionLog.open(tmp_path / "decisions.sqlite3", durable=durable) as opened:
        assert opened._db.execute("PRAGMA synchronous").fetchone()[0] == synchronous  # 2: FULL, 1: NORMAL
        assert opened._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        write(opened, 2)
        assert opened.verify().ok


def test_the_checkpoint_thread_keeps_the_wal_bounded_and_close_empties_it(tmp_path, monkeypatch):
    monkeypatch.setattr(decisions, "WAL_LIMIT_BYTES", 256 * 1024)
    monkeypatch.setattr(decisions, "CHECKPOINT_EVERY_S", 0.01)
    path = tmp_path / "decisions.sqlite3"
    before = set(threading.enumerate())
    opened = DecisionLog.open(path, durable=False)
    started = set(threading.enumerate()) - before
    assert len(started) == 1 and all(t.daemon for t in started)
    reader = sqlite3.connect(path)  # another connection: SQLite's own checkpoint as the last one closes stays out
    assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone() == (0,)
    wal = Path(f"{path}-wal")
    largest = 0
    for _ in range(150):  # some 30 MB of WAL if nothing checkpointed it
        write(opened, 10)
        largest = max(largest, wal.stat().st_size)
    assert largest < 8 * 1024 * 1024
    opened.close()
    assert not any(t.is_alive() for t in started)
    assert wal.stat().st_size == 0  # every frame in the log file
    assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone() == (1500,)
    reader.close()
    opened.close()  # closing again does nothing
    assert_linear(path, 1500)


def test_a_checkpoint_past_the_wal_limit_starts_the_wal_over(tmp_path, monkeypatch):
    monkeypatch.setattr(decisions, "WAL_LIMIT_BYTES", 64 * 1024)
    monkeypatch.setattr(decisions, "CHECKPOINT_EVERY_S", 3600)  # the thread stays out of it
    with DecisionLog.open(tmp_path / "decisions.sqlite3", durable=False) as opened:
        wal = Path(f"{opened.path}-wal")
        write(opened, 40)
        assert wal.stat().st_size > 4 * 64 * 1024
        frames, copied = opened.checkpoint()
        assert frames == copied > 0
        write(opened, 1)  # starts at the WAL's beginning, and cuts the file back to the limit
        assert wal.stat().st_size <= 64 * 1024
        again, copied = opened.checkpoint()
        assert again == copied < frames  # only the last write was left to copy
        assert opened.verify().ok


def test_a_log_dropped_without_close_stops_its_thread(tmp_path):
    before = set(threading.enumerate())
    opened = DecisionLog.open(tmp_path / "decisions.sqlite3")
    write(opened, 1)
    (started,) = set(threading.enumerate()) - before
    del opened
    gc.collect()
    started.join(30)
    assert not started.is_alive()


# --- opening ------------------------------------------------------------------------------------------------


def test_the_log_uses_wal_and_a_schema_version(log):
    db = raw(log)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == decisions.SCHEMA_VERSION


def test_a_log_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "decisions.sqlite3"
    DecisionLog.open(path).close()
    sqlite3.connect(path).execute(f"PRAGMA user_version = {decisions.SCHEMA_VERSION + 1}")
    with pytest.raises(DecisionLogError, match="newer KAM Rules"):
        DecisionLog.open(path)


def test_files_that_are_not_decision_logs_are_refused(tmp_path):
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE accounts (id TEXT)")
    with pytest.raises(DecisionLogError, match="not a decision log"):
        DecisionLog.open(other)
    text = tmp_path / "notes.sqlite3"
    text.write_text("not a database " * 100, encoding="utf-8")
    with pytest.raises(DecisionLogError, match="cannot open as a decision log"):
        DecisionLog.open(text)
    with pytest.raises(DecisionLogError, match="no decision log at"):
        DecisionLog.open(tmp_path / "missing.sqlite3", create=False)
    assert not (tmp_path / "missing.sqlite3").exists()


# --- the `kam decisions` commands ---------------------------------------------------------------------------


def kam(*args):
    return CliRunner().invoke(kam_cli.main, [str(a) for a in args], catch_exceptions=False)


def test_kam_decisions_verify_on_an_intact_log(tmp_path):
    with DecisionLog.open(log_path(tmp_path)) as opened:
        write(opened, 3)
    result = kam("decisions", "verify", "--data", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{log_path(tmp_path)}: chain intact: 3 records; head 3 ")


def test_kam_decisions_verify_uses_the_default_data_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with DecisionLog.open(Path(DATA_DIR) / "decisions.sqlite3") as opened:
        write(opened, 1)
    result = kam("decisions", "verify")
    assert result.exit_code == 0, result.output
    assert "chain intact: 1 record;" in result.stdout


def test_kam_decisions_verify_names_the_tampered_record_and_exits_1(tmp_path):
    with DecisionLog.open(log_path(tmp_path)) as opened:
        ids = write(opened, 4)
    db = sqlite3.connect(log_path(tmp_path), isolation_level=None)
    db.execute("UPDATE decisions SET as_of = '2020-01-01' WHERE id = ?", (ids[1],))
    db.execute("DELETE FROM decisions WHERE id = ?", (ids[3],))
    result = kam("decisions", "verify", "--data", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{log_path(tmp_path)}: record 2 (decision {ids[1]}) does not match its hash: it was altered",
        f"{log_path(tmp_path)}: record 4 was removed from the end"]
    assert "chain broken: record 2 " in result.stdout and "(and 1 more)" in result.stdout


def test_kam_decisions_verify_without_a_log_exits_1_and_creates_nothing(tmp_path):
    result = kam("decisions", "verify", "--data", tmp_path / "nothing")
    assert result.exit_code == 1
    assert "no decision log at" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_kam_decisions_reproduce_reports_identical_or_each_difference(tmp_path, monkeypatch, books):
    # The rule store is a separate component; here the same rule books come from folders (see the next test
    # for the real store).
    monkeypatch.setattr(kam_cli, "_rule_store", lambda data_dir: books)
    frame = portfolio()
    with DecisionLog.open(log_path(tmp_path)) as opened:
        same = opened.record_evaluation("alice", books.book("r1").evaluate(frame, as_of=AS_OF))
        new = books.book("r2").evaluate(frame, as_of=AS_OF)
        wrong = opened.record("alice", "r1", frame, new.frame[new.output_names], new.errors, AS_OF)
    result = kam("decisions", "reproduce", same, "--data", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"decision {same} (60 accounts, revision r1, as of {AS_OF}): outputs identical"
    result = kam("decisions", "reproduce", wrong, "--data", tmp_path)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-1].endswith(f"{len(lines) - 1} difference(s)")
    assert any(line.startswith("row ") and ": credit_limit: recorded " in line for line in lines)
    result = kam("decisions", "reproduce", "nope", "--data", tmp_path)
    assert result.exit_code == 1 and "no decision nope" in result.stderr


def test_kam_decisions_reproduce_with_the_rule_store(tmp_path):
    store_module = pytest.importorskip("kamcore.store")
    store = store_module.RuleStore.open(tmp_path, seed=ROOT / "rules")
    with DecisionLog.open(log_path(tmp_path)) as opened:
        decision_id = opened.record_evaluation("alice", store.book("HEAD").evaluate(portfolio(), as_of=AS_OF))
    result = kam("decisions", "reproduce", decision_id, "--data", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("outputs identical")


# --- the benchmark, for correctness only --------------------------------------------------------------------


def test_the_benchmark_runs_and_verifies_what_it_wrote(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "decisions.py"), "--decisions", "5", "--runs", "1",
                           "--latency", "16", "--against", str(ROOT), "--dir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100 accounts per decision" in done.stdout and "decisions/s" in done.stdout
    assert "verified" in done.stdout
    assert "2 process(es) x 4 thread(s), against: p50" in done.stdout and "this / against: p50" in done.stdout


def test_a_writer_waits_for_a_stalled_lock_holder_no_longer_than_the_busy_timeout(log, monkeypatch):
    """A holder of the lock file that stalls (a worker stopped mid-write) makes writers fail as SQLite's own lock
    did after its busy timeout, naming the lock, instead of hanging the service; once released, writes go on."""
    monkeypatch.setattr(decisions, "BUSY_TIMEOUT_S", 0.5)
    write(log, 1)
    fd = os.open(Path(f"{log.path}.lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(decisions.DecisionLogBusy, match=r"\.lock: another writer has held the decision log"):
            write(log, 1)
        assert log.get(decisions_in(log)[0])  # the log is not left holding its own lock: reads go on
    finally:
        os.close(fd)
    write(log, 1)
    assert_linear(log.path, 2)


def decisions_in(log):
    return [row[0] for row in raw(log).execute("SELECT id FROM decisions ORDER BY seq")]


def test_a_log_that_fails_to_start_leaves_no_connection_open(tmp_path, monkeypatch):
    opened = []
    real = decisions._connect
    monkeypatch.setattr(decisions, "_connect", lambda path: opened.append(real(path)) or opened[-1])

    def no_thread(self):
        raise RuntimeError("can't start new thread")
    monkeypatch.setattr(decisions.threading.Thread, "start", no_thread)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        DecisionLog.open(tmp_path / "d.sqlite3")
    assert opened
    for db in opened:
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            db.execute("SELECT 1")


def test_the_checkpoint_thread_outlives_an_unexpected_error(log, monkeypatch):
    """Nothing else checkpoints (auto-checkpoints are off): a failure of any kind is logged and tried again."""
    monkeypatch.setattr(decisions, "CHECKPOINT_EVERY_S", 0.01)
    rounds = []

    def flaky(self, empty=False):
        rounds.append(empty)
        if len(rounds) == 1:
            raise RuntimeError("not an SQLite error")
        return (0, 0)
    monkeypatch.setattr(DecisionLog, "checkpoint", flaky)
    log._stop.set()
    log._checkpointer.join(10)
    log._stop = threading.Event()
    log._checkpointer = threading.Thread(target=decisions._checkpoints, args=(weakref.ref(log), log._stop),
                                         daemon=True)
    log._checkpointer.start()
    deadline = time.monotonic() + 30
    while len(rounds) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(rounds) >= 3 and log._checkpointer.is_alive()
