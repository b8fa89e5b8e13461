"""Event rule tests (`kind: event_tests` files beside the rules): an account, its events, and the ledger lines,
state and per-event errors expected, run through a real event ledger on an in-memory SQLite database."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from ..errors import Problem
from ..yamlsource import Positions
from . import eventtime
from .ledger import EventLedger
from .schema import EventCase, EventTestsFile

if TYPE_CHECKING:
    from ..rulebook import RuleBook
    from ..ruletests import TestResult

DEFAULT_ACCOUNT = "T1"


def run_file(book: RuleBook, data: Any, positions: Positions) -> tuple[list[TestResult], list[Problem]]:
    """Run every case of one event-tests file; cases that cannot be read come back as problems."""
    results: list[TestResult] = []
    problems: list[Problem] = []
    if book.event_rules is None:
        return [], [positions.problem(("kind",), "event tests need event rules: the rule book has no "
                                                  "`kind: event_rules` file")]
    try:
        doc = EventTestsFile().load(data)
    except ValidationError:
        return [], [positions.problem((), "an event-tests file holds `kind: event_tests` and `tests:`, a list of "
                                          "test cases")]
    from ..ruletests import checked_cases

    for case, line in checked_cases(doc["tests"], positions, EventCase, problems):
        results.append(_run_case(book, case, positions.file, line))
    return results, problems


def _run_case(book: RuleBook, case: dict[str, Any], file: str, line: int | None) -> TestResult:
    from ..ruletests import TestResult

    result = TestResult(case["name"], file, line)
    account = {"account_id": DEFAULT_ACCOUNT} | case["account"]
    events = [{"account_id": account["account_id"]} | e for e in case["events"]]
    try:
        sweep = eventtime.parse(case["sweep"]) if case.get("sweep") is not None else None
    except ValueError as e:
        result.failures.append(f"sweep: {e}")
        return result
    now = eventtime.to_datetime(sweep if sweep is not None else _latest(events))
    ledger = EventLedger(":memory:", book, clock=lambda: now)
    try:
        ledger.register_accounts([account])
        submission = ledger.submit(events)
        if sweep is not None:
            ledger.sweep(now)
        expect = case["expect"]
        _check_errors(result, submission.errors, expect.get("errors"))
        if "ledger" in expect:
            net = [ln for ln in ledger.store.net_lines(account["account_id"]).values() if abs(ln.amount) > 1e-9]
            _check_lines(result, net, expect["ledger"])
        if "state" in expect:
            state = ledger.state(account["account_id"])
            for name, want in expect["state"].items():
                if name not in state:
                    result.failures.append(f"state has no {name!r} (it has {', '.join(state)})")
                elif not _same(state[name], want):
                    result.failures.append(f"state {name} expected {want!r}, got {state[name]!r}")
    except Exception as e:  # a case that crashes the engine is a failing case, with the reason
        result.failures.append(f"failed: {type(e).__name__}: {e}")
    finally:
        ledger.close()
    return result


def _latest(events: list[dict[str, Any]]) -> int:
    times = []
    for e in events:
        try:
            times.append(eventtime.parse(e.get("at")))
        except ValueError:
            continue
    return max(times, default=eventtime.parse(dt.date(2026, 1, 1)))


def _check_errors(result: TestResult, errors: list, wanted: list[dict[str, Any]] | None) -> None:
    for want in wanted or []:
        if not any(e.index == want["event"] and want.get("field", e.field) == e.field for e in errors):
            result.failures.append(f"expected an error for event {want['event']}"
                                   + (f" field {want['field']}" if "field" in want else "")
                                   + f", got {[str(e) for e in errors] or 'none'}")
    if wanted is None:
        result.failures.extend(f"unexpected error: {e}" for e in errors)


def _check_lines(result: TestResult, lines: list, wanted: list[dict[str, Any]]) -> None:
    """Every expected line is found once, and no other line was booked."""
    left = list(lines)
    for want in wanted:
        match = next((ln for ln in left if _line_matches(ln, want)), None)
        if match is None:
            result.failures.append(f"expected a ledger line {want}, got {[_shown(ln) for ln in left] or 'none'}")
        else:
            left.remove(match)
    result.failures.extend(f"unexpected ledger line {_shown(ln)}" for ln in left)


def _line_matches(line: Any, want: dict[str, Any]) -> bool:
    got = {"event": line.event_id, "rule": line.rule, "measure": line.measure, "amount": line.amount,
           "level": line.detail.get("level")}
    return all(_same(got[k], v) for k, v in want.items())


def _shown(line: Any) -> dict[str, Any]:
    shown = {"event": line.event_id, "rule": line.rule, "measure": line.measure, "amount": line.amount}
    if line.measure == "alert":
        shown["level"] = line.detail.get("level")
    return shown


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, int | float) and not isinstance(want, bool) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, dt.date):
        return str(got)[:10] == want.isoformat()
    return got == want
