"""The event ledger on real SQLite and real durable-rules: exactly once, per-event errors, event-time order,
timers on an injected clock, account state from the batch rule book, the ledger and alerts as read back."""

import json
import random
import sqlite3

import pytest

from kamcore import RuleBook
from kamcore.events import EventLedger, UnknownAccount
from kamcore.events.synthetic import synthetic_events
from tests.events.conftest import picture

A = {"account_id": "A1", "revenue_12m": 12000000, "gross_profit_12m": 3600000, "dso_days": 45, "credit_score": 80,
     "receivables": 1000000, "open_orders": 200000}
D = {"account_id": "D1", "revenue_12m": 500000, "gross_profit_12m": 50000, "credit_score": 70}


def order(event_id, at, amount, account="A1"):
    return {"id": event_id, "account_id": account, "type": "order_placed", "at": at, "amount": amount}


@pytest.fixture
def ledger(tmp_path, book, clock):
    led = EventLedger(tmp_path / "events.db", book, clock=clock)
    led.register_accounts([A, D])
    yield led
    led.close()


# --- exactly once ---------------------------------------------------------------------------------------------


def test_a_repeated_id_is_acknowledged_and_not_applied_again(ledger):
    first = ledger.submit([order("o1", "2026-01-05", 10000)])
    again = ledger.submit([order("o1", "2026-01-05", 10000), order("o2", "2026-01-06", 3000)])
    assert [o.status for o in first.outcomes] == ["applied"]
    assert [o.status for o in again.outcomes] == ["duplicate", "applied"]
    assert again.outcomes[0].lines == []
    assert ledger.state("A1")["points"] == 20 + 6
    assert ledger.store.event_count() == 2
    assert len([ln for ln in ledger.ledger("A1", measure="points") if ln["event_id"] == "o1"]) == 1


def test_a_repeat_within_one_batch_is_a_duplicate_and_a_reused_id_with_other_content_is_rejected(ledger):
    sub = ledger.submit([order("o1", "2026-01-05", 10000), order("o1", "2026-01-05", 10000),
                         order("o1", "2026-01-05", 99999)])
    assert [o.status for o in sub.outcomes] == ["applied", "duplicate", "rejected"]
    assert sub.outcomes[2].errors[0].field == "id"
    unknown = ledger.submit([order("x1", "2026-01-05", 1, account="NOBODY"), order("x1", "2026-01-05", 1,
                                                                                 account="NOBODY")])
    assert [(o.status, o.errors[0].field) for o in unknown.outcomes] == [("rejected", "account_id")] * 2
    later = ledger.submit([order("o1", "2026-02-01", 5)])
    assert later.outcomes[0].status == "rejected"
    assert "different event" in later.outcomes[0].errors[0].message
    assert ledger.state("A1")["points"] == 20


def test_a_batch_that_fails_midway_commits_nothing_and_can_be_sent_again(ledger, monkeypatch):
    calls = {"n": 0}
    real = ledger.store.add_lines

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger.store, "add_lines", failing)
    with pytest.raises(sqlite3.OperationalError):
        ledger.submit([order("o1", "2026-01-05", 10000), order("o2", "2026-01-06", 10000)])
    monkeypatch.setattr(ledger.store, "add_lines", real)
    assert ledger.store.event_count() == 0
    sub = ledger.submit([order("o1", "2026-01-05", 10000), order("o2", "2026-01-06", 10000)])
    assert sub.count("applied") == 2
    assert ledger.state("A1")["points"] == 40
    assert ledger.verify() == {"A1": [], "D1": []}


# --- per-event errors -----------------------------------------------------------------------------------------


def test_bad_events_get_their_own_errors_and_every_good_event_applies(ledger):
    batch = [
        order("ok1", "2026-01-05", 2000),
        order("neg", "2026-01-05", -5),
        order("who", "2026-01-05", 5, account="NOBODY"),
        {"account_id": "A1", "type": "order_placed", "at": "2026-01-05", "amount": 5},
        {"id": "what", "account_id": "A1", "type": "order_shiped", "at": "2026-01-05"},
        {"id": "when", "account_id": "A1", "type": "order_placed", "at": "yesterday", "amount": 5},
        {"id": "extra", "account_id": "A1", "type": "order_placed", "at": "2026-01-05", "amount": 5, "amout": 1},
        {"id": "text", "account_id": "A1", "type": "order_placed", "at": "2026-01-05", "amount": "5"},
        "not an event",
        order("ok2", "2026-01-06", 3000),
    ]
    sub = ledger.submit(batch)
    assert [o.status for o in sub.outcomes] == ["applied"] + ["rejected"] * 8 + ["applied"]
    fields = [(e.index, e.field) for e in sub.errors]
    assert fields == [(1, "amount"), (2, "account_id"), (3, "id"), (4, "type"), (5, "at"), (6, "amout"),
                      (7, "amount"), (8, None)]
    messages = {e.index: e.message for e in sub.errors}
    assert messages[1] == "must not be negative"
    assert messages[7] == "must be a number, got '5'"
    assert "unknown account 'NOBODY'" in messages[2]
    assert "did you mean 'order_placed'" in messages[4]
    assert "did you mean 'amount'" in messages[6]
    assert ledger.state("A1")["points"] == 4 + 6
    rejected = ledger.store.db.execute("SELECT event, errors FROM rejected ORDER BY id").fetchall()
    assert len(rejected) == 8  # kept with their errors: nothing sent is lost
    assert json.loads(rejected[0][0])["id"] == "neg"


def test_an_unknown_account_cannot_be_read():
    led = EventLedger(":memory:", RuleBook.load("rules/", revision="r"))
    with pytest.raises(UnknownAccount):
        led.state("NOBODY")
    with pytest.raises(UnknownAccount):
        led.ledger("NOBODY")


def test_accounts_without_an_id_are_reported_and_the_rest_registered(tmp_path, book):
    led = EventLedger(tmp_path / "e.db", book)
    errors = led.register_accounts([{"revenue_12m": 5}, {"account_id": "X1"}, {"account_id": "  "}])
    assert [(e.row, e.field) for e in errors] == [(0, "account_id"), (2, "account_id")]
    assert led.store.account_ids() == ["X1"]


# --- event-time order -----------------------------------------------------------------------------------------


def test_events_in_any_order_book_what_they_book_in_event_time_order(open_ledger, portfolio):
    events = synthetic_events(list(portfolio["account_id"]), 600, seed=5)
    in_order = open_ledger("in_order.db")
    in_order.submit(events)
    shuffled = list(events)
    random.Random(1).shuffle(shuffled)
    one_batch = open_ledger("one_batch.db")
    one_batch.submit(shuffled)
    many = open_ledger("many_batches.db")
    for start in range(0, len(shuffled), 37):
        many.submit(shuffled[start:start + 37])
    reference = picture(in_order)
    assert any(k[1] == "order_streak" for a in reference["accounts"].values() for k, _, _ in a["lines"])
    assert picture(one_batch) == reference
    assert picture(many) == reference
    corrections = [ln for a in portfolio["account_id"] for ln in many.ledger(a) if ln["cause"] != ln["event_id"]]
    assert corrections  # late events did re-derive accounts
    assert all(not diffs for diffs in many.verify().values())


def test_a_late_order_moves_the_streak_and_the_correction_names_it(ledger):
    ledger.submit([order("o2", "2026-01-10", 1000), order("o3", "2026-01-20", 1000), order("o4", "2026-02-15", 1000)])
    assert ledger.state("A1")["points"] == 6
    sub = ledger.submit([order("o1", "2026-01-01", 1000)])
    assert sub.outcomes[0].status == "applied"
    lines = ledger.ledger("A1", measure="points")
    late = [ln for ln in lines if ln["cause"] == "o1"]
    assert {(ln["event_id"], ln["rule"], ln["amount"]) for ln in late} == {
        ("o1", "order_points", 2), ("o3", "order_streak", 400)}
    assert all(ln["revision"] == "rev-1" for ln in late)
    # o4 arrives in time and starts a new count
    assert ledger.state("A1")["streaks"] == {"order_streak": 1}
    assert ledger.verify()["A1"] == []


def test_a_late_order_withdraws_a_follow_up_that_was_raised_too_early(ledger, clock):
    ledger.submit([order("o1", "2026-01-01", 1000)])
    clock.set("2026-08-01T00:00:00Z")
    ledger.sweep()
    assert [a["rule"] for a in ledger.alerts("A1")] == ["sleeping_account"]
    ledger.submit([order("o2", "2026-05-01", 1000)])  # the account was not asleep after all
    assert ledger.alerts("A1") == []
    withdrawn = [ln for ln in ledger.ledger("A1", measure="alert") if ln["amount"] < 0]
    assert [(ln["event_id"], ln["cause"]) for ln in withdrawn] == [("o1", "o2")]
    assert ledger.state("A1")["timers"][0]["rule"] == "sleeping_account"
    assert ledger.verify()["A1"] == []


# --- time ------------------------------------------------------------------------------------------------------


def test_points_expire_24_months_after_they_were_earned(ledger, clock):
    ledger.submit([order("o1", "2024-03-31", 10000), order("o2", "2024-06-01", 5000)])
    clock.set("2026-03-30T23:59:59Z")
    assert [ln["rule"] for ln in ledger.sweep() if ln["measure"] == "points"] == []
    assert ledger.state("A1")["points"] == 30
    clock.set("2026-03-31T00:00:00Z")
    expired = [ln for ln in ledger.sweep() if ln["rule"] == "points_expiry"]
    assert [(ln["event_id"], ln["amount"], ln["at"]) for ln in expired] == [("o1", -20, "2026-03-31T00:00:00Z")]
    assert ledger.state("A1")["points"] == 10
    clock.set("2026-06-01T00:00:00Z")
    ledger.sweep()
    assert ledger.state("A1")["points"] == 0
    assert ledger.sweep() == []  # a timer fires once


def test_a_sleeping_account_raises_a_follow_up_and_an_order_starts_the_count_again(ledger, clock):
    ledger.submit([order("o1", "2026-01-01", 1000, account="D1")])
    clock.set("2026-06-29T23:59:59Z")
    assert ledger.sweep() == []
    ledger.submit([order("o2", "2026-06-29", 1000, account="D1")])
    clock.set("2026-12-25T00:00:00Z")
    assert ledger.sweep() == []
    clock.set("2026-12-26T00:00:00Z")
    raised = ledger.sweep()
    assert [(ln["account_id"], ln["event_id"], ln["rule"]) for ln in raised] == [("D1", "o2", "sleeping_account")]
    alerts = ledger.alerts(level="follow_up")
    assert [(a["account_id"], a["at"]) for a in alerts] == [("D1", "2026-12-26T00:00:00Z")]
    assert alerts[0]["message"]["en"].startswith("No order in 180 days")


def test_timers_due_before_an_event_fire_before_it_even_without_a_sweep(ledger):
    ledger.submit([order("o1", "2026-01-01", 1000), order("o2", "2026-09-01", 1000)])
    assert [(a["event_id"], a["at"]) for a in ledger.alerts("A1")] == [("o1", "2026-06-30T00:00:00Z")]


# --- account state -----------------------------------------------------------------------------------------------


def test_state_takes_tier_multiplier_limit_and_status_from_the_batch_book(ledger):
    ledger.submit([
        order("o1", "2026-01-05", 100000),
        {"id": "p1", "account_id": "A1", "type": "payment_received", "at": "2026-01-20", "amount": 40000},
        {"id": "d1", "account_id": "A1", "type": "invoice_overdue", "at": "2026-02-20", "invoice_no": "I-1",
         "days_overdue": 45},
    ])
    state = ledger.state("A1")
    assert (state["tier"], state["points_multiplier"], state["credit_limit"]) == ("A", 2, 6000000)
    assert state["exposure_rules"] == 1200000 and state["exposure_events"] == 60000
    assert state["exposure"] == 1260000 and state["utilisation"] == pytest.approx(0.21)
    assert (state["credit_status"], state["credit_status_rules"]) == ("ok", "ok")
    assert [a["level"] for a in state["alerts"]] == ["credit_alert"]
    assert state["revision"] == "rev-1"
    ledger.submit([{"id": "d2", "account_id": "A1", "type": "invoice_overdue", "at": "2026-03-25",
                    "invoice_no": "I-1", "days_overdue": 62}])
    assert ledger.state("A1")["credit_status"] == "hold"
    assert [a["rule"] for a in ledger.alerts(level="hold")] == ["overdue_hold"]


def test_a_new_account_row_changes_the_tier_used_from_then_on(ledger):
    ledger.submit([order("o1", "2026-01-05", 10000, account="D1")])
    ledger.register_accounts([D | {"revenue_12m": 12000000, "gross_profit_12m": 3600000, "dso_days": 45}])
    ledger.submit([order("o2", "2026-01-06", 10000, account="D1")])
    points = {ln["event_id"]: ln["amount"] for ln in ledger.ledger("D1", measure="points")}
    assert points == {"o1": 10, "o2": 20}
    assert ledger.state("D1")["tier"] == "A"


def test_every_ledger_line_names_event_rule_and_revision_and_a_new_book_its_own(tmp_path, book, clock):
    led = EventLedger(tmp_path / "e.db", book, clock=clock)
    led.register_accounts([A])
    led.submit([order("o1", "2026-01-05", 10000)])
    text = (tmp_path / "events.yaml")
    text.write_text((book.files[[f.path for f in book.files].index("events.yaml")].text)
                    .replace("floor(amount / 1000 * points_multiplier)", "floor(amount / 500 * points_multiplier)"),
                    encoding="utf-8")
    files = {f.path: f.text for f in book.files} | {"events.yaml": text.read_text(encoding="utf-8")}
    led.use_book(RuleBook.from_files(files, revision="rev-2"))
    led.submit([order("o2", "2026-01-06", 10000)])
    lines = led.ledger("A1", measure="points")
    assert [(ln["event_id"], ln["rule"], ln["revision"], ln["amount"]) for ln in lines] == [
        ("o1", "order_points", "rev-1", 20), ("o2", "order_points", "rev-2", 40)]
    assert all(ln["line"] and ln["written_at"] and ln["cause"] for ln in lines)
    led.close()


def test_a_book_loaded_from_a_folder_is_named_by_the_digest_of_its_files(tmp_path, clock):
    led = EventLedger(tmp_path / "e.db", RuleBook.load("rules/"), clock=clock)
    assert led.revision.startswith("sha256:")
    led.close()


def test_the_ledger_pages_by_line_number(ledger):
    ledger.submit([order(f"o{i}", f"2026-01-{i + 1:02d}", 1000) for i in range(6)])
    first = ledger.ledger("A1", limit=5)
    rest = ledger.ledger("A1", after_line=first[-1]["line"])
    assert len(first) == 5 and first[-1]["line"] < rest[0]["line"]
    assert len(first) + len(rest) == len(ledger.ledger("A1"))
