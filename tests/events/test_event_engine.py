"""The compiled form is a real durable-rules ruleset: one durable rule per event rule, streaks as joins that
consume their facts, timers armed by rules and fired as `$timer` facts; the facts a streak may still use are in
durable-rules' working memory."""

import pytest
from durable import engine as durable_engine

from kamcore.events.compiler import TIMER, Engine
from kamcore.events.intake import read_event


def event(rules, **raw):
    found, errors = read_event(raw, 0, rules)
    assert errors == []
    return found


def test_each_rule_is_a_durable_rule_and_streaks_fire_last(book):
    compiled = Engine(book.event_rules, "rev-1")
    assert isinstance(compiled.host, durable_engine.Host)
    definition = compiled.definition
    assert set(definition) == {"order_points", "order_streak", "payment_exposure", "overdue_alert", "overdue_hold",
                               "renewal_bonus", "sleeping_account.arm", "sleeping_account.due", "points_expiry.due"}
    assert definition["order_points"]["all"] == [{"m": {"type": "order_placed"}}]
    streak = definition["order_streak"]
    assert [next(iter(part)) for part in streak["all"]] == ["e0", "e1", "e2"]
    assert streak["pri"] > max(d.get("pri", 0) for k, d in definition.items() if k != "order_streak")
    assert definition["sleeping_account.due"]["all"] == [{"m": {"$and": [{"type": TIMER},
                                                                         {"timer": "sleeping_account"}]}}]


def test_streak_facts_live_in_durable_rules_until_used_or_out_of_the_window(book):
    compiled = Engine(book.event_rules, "rev-1")
    rules = book.event_rules
    session = compiled.open("A1")
    snapshot = {"points_multiplier": 2}
    for i, day in enumerate(["2026-01-01", "2026-01-02"]):
        compiled.apply(session, event(rules, id=f"o{i}", account_id="A1", type="order_placed", at=day, amount=1000),
                       snapshot)
    assert sorted(f["id"] for f in compiled.host.get_facts(compiled.name, "A1")) == ["o0", "o1"]
    lines = compiled.apply(session, event(rules, id="o2", account_id="A1", type="order_placed", at="2026-01-03",
                                          amount=1000), snapshot)
    assert [(ln.rule, ln.amount, ln.detail) for ln in lines if ln.rule == "order_streak"] == [
        ("order_streak", 400, {"events": ["o0", "o1", "o2"]})]
    assert compiled.host.get_facts(compiled.name, "A1") == []
    compiled.apply(session, event(rules, id="o3", account_id="A1", type="order_placed", at="2026-02-01",
                                  amount=1000), snapshot)
    compiled.apply(session, event(rules, id="o4", account_id="A1", type="order_placed", at="2026-03-15",
                                  amount=1000), snapshot)
    assert [f["id"] for f in compiled.host.get_facts(compiled.name, "A1")] == ["o4"]  # o3 is out of any window
    payment = event(rules, id="p1", account_id="A1", type="payment_received", at="2026-03-16", amount=10)
    assert [(ln.rule, ln.amount) for ln in compiled.apply(session, payment, snapshot)] == [
        ("payment_exposure", -10)]
    assert [f["id"] for f in compiled.host.get_facts(compiled.name, "A1")] == ["o4"]  # payments are not kept


def test_timers_fire_only_when_the_callers_clock_says(book):
    compiled = Engine(book.event_rules, "rev-1")
    session = compiled.open("A1")
    compiled.apply(session, event(book.event_rules, id="o1", account_id="A1", type="order_placed", at="2026-01-01",
                                  amount=1000), {"points_multiplier": 1})
    due = session.timers[("sleeping_account", "", "")].due_us
    assert compiled.fire_due(session, due - 1) == []
    fired = compiled.fire_due(session, due)
    assert [(ln.rule, ln.event_id, ln.detail["level"]) for ln in fired] == [("sleeping_account", "o1", "follow_up")]
    assert session.fired_until == due


def test_accounts_beyond_what_durable_rules_holds_are_evicted_and_put_back_unchanged(book):
    # durable-rules' C engine holds at most 1,024 sessions per ruleset; the engine keeps fewer resident
    rules = book.event_rules
    days = ["2026-01-01", "2026-01-05", "2026-01-09", "2026-01-13", "2026-01-17", "2026-01-21", "2026-01-25"]
    events = [event(rules, id=f"{a}-{d}", account_id=a, type="order_placed", at=d, amount=1000)
              for d in days for a in ("A", "B", "C", "D", "E")]

    def run(resident):
        compiled = Engine(rules, "rev-1", resident=resident)
        sessions = {}
        for e in events:
            session = sessions.setdefault(e.account_id, compiled.open(e.account_id))
            compiled.apply(session, e, {"points_multiplier": 1})
        booked = sorted((ln.event_id, ln.rule, ln.amount) for s in sessions.values() for ln in s.lines.values())
        resident_now = len(compiled._resident)
        compiled.close()
        return booked, resident_now

    roomy, _ = run(100)
    tight, held = run(2)
    assert tight == roomy
    assert held == 2
    assert sum(rule == "order_streak" for _, rule, _ in roomy) == 10  # two streaks per account


def test_a_ruleset_holds_no_more_than_1024_sessions_which_is_why_accounts_are_evicted(book):
    compiled = Engine(book.event_rules, "rev-1", resident=2000)
    try:
        with pytest.raises(MemoryError):
            for i in range(1100):
                session = compiled.open(f"X{i}")
                compiled.apply(session, event(book.event_rules, id=f"p{i}", account_id=f"X{i}",
                                              type="payment_received", at="2026-01-01", amount=1), {})
    finally:
        compiled.close()
