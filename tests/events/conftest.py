"""Shared pieces of the event tests: the shipped rule book, a clock the test moves, accounts, and a comparable
picture of a whole ledger."""

import datetime as dt
from pathlib import Path

import pytest

from kamcore import RuleBook
from kamcore.demo import synthetic_portfolio
from kamcore.events import EventLedger

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
SUBMITTER = Path(__file__).with_name("submitter.py")


class Clock:
    """An injected clock: time moves only when the test says so."""

    def __init__(self, start: str = "2026-03-01T00:00:00Z"):
        self.now = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, when: str) -> None:
        self.now = dt.datetime.fromisoformat(when.replace("Z", "+00:00")).replace(tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def book():
    return RuleBook.load(RULES, revision="rev-1")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture(scope="session")
def portfolio():
    return synthetic_portfolio(40, seed=3)


@pytest.fixture
def open_ledger(tmp_path, book, clock, portfolio):
    """Open (or reopen) a ledger on a database file in tmp_path, with the synthetic portfolio registered."""
    opened = []

    def opener(name: str = "events.db", register: bool = True, ledger_book=None) -> EventLedger:
        ledger = EventLedger(tmp_path / name, ledger_book or book, clock=clock)
        if register:
            assert ledger.register_accounts(portfolio) == []
        opened.append(ledger)
        return ledger

    yield opener
    for ledger in opened:
        ledger.close()


def picture(ledger: EventLedger) -> dict:
    """Everything a reader of the ledger can see, without line numbers and write times: each account's state and
    net ledger lines, and the open alerts."""
    accounts = {}
    for account_id in ledger.store.account_ids():
        net = sorted((k, round(line.amount, 6), line.at_us) for k, line in ledger.store.net_lines(account_id).items()
                     if abs(line.amount) > 1e-9)
        accounts[account_id] = {"state": ledger.state(account_id), "lines": net}
    return {"accounts": accounts, "alerts": sorted(map(repr, ledger.alerts(limit=10_000)))}
