"""Benchmark: events per second through the event engine (durable-rules + expressions), alone and with the SQLite
ledger (WAL, synchronous=FULL), in order, with late arrivals, and repeated ids. Medians of --repeat runs."""

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/events.py` without an installed kamcore
    sys.path.insert(0, str(ROOT))

from kamcore import RuleBook  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402
from kamcore.events import EventLedger  # noqa: E402
from kamcore.events.compiler import Engine  # noqa: E402
from kamcore.events.intake import read_event  # noqa: E402
from kamcore.events.synthetic import end_of, synthetic_events  # noqa: E402

RULES = ROOT / "rules"


def engine_alone(book: RuleBook, events: list[dict]) -> float:
    """Seconds to apply the events through the compiled ruleset, sessions in memory, no database."""
    rules = book.event_rules
    parsed = [read_event(e, i, rules)[0] for i, e in enumerate(events)]
    engine = Engine(rules, "bench")
    sessions = {}
    snapshot = {"points_multiplier": 1.5}
    start = time.perf_counter()
    for event in parsed:
        session = sessions.get(event.account_id)
        if session is None:
            session = sessions[event.account_id] = engine.open(event.account_id)
        engine.apply(session, event, snapshot)
    seconds = time.perf_counter() - start
    engine.close()
    return seconds


def through_ledger(book: RuleBook, accounts, events: list[dict], batch: int, folder: Path, late_share: float = 0.0,
                   repeat_ids: bool = False) -> float:
    """Seconds to submit the events in batches to a fresh ledger file (accounts registered beforehand)."""
    db = folder / f"bench-{time.monotonic_ns()}.db"
    clock = end_of(events)
    ledger = EventLedger(db, book, clock=lambda: clock)
    ledger.register_accounts(accounts)
    ledger.state(accounts["account_id"].iloc[0])  # evaluate the batch book for the portfolio before timing
    order = delayed(events, late_share, batch)
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    if repeat_ids:
        for b in batches:
            ledger.submit(b)
    start = time.perf_counter()
    applied = 0
    for b in batches:
        applied += ledger.submit(b).count("duplicate" if repeat_ids else "applied")
    seconds = time.perf_counter() - start
    assert applied == len(events), (applied, len(events))
    ledger.close()
    return seconds


def delayed(events: list[dict], share: float, batch: int) -> list[dict]:
    """The events with `share` of them arriving 1-3 batches after their time (late: they re-derive an account)."""
    if not share:
        return list(events)
    rng = random.Random(5)
    keyed = [(i + (rng.randint(batch, 3 * batch) if rng.random() < share else 0), i) for i in range(len(events))]
    return [events[i] for _, i in sorted(keyed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    book = RuleBook.load(RULES, revision="bench")
    accounts = synthetic_portfolio(args.accounts, seed=7)
    events = synthetic_events(list(accounts["account_id"]), args.events, seed=13)
    print(f"{args.events:,} events over {args.accounts:,} accounts, median of {args.repeat} runs")

    def report(label: str, run) -> None:
        times = [run() for _ in range(args.repeat)]
        median = statistics.median(times)
        print(f"  {label:<52} {args.events / median:>9,.0f} events/s  ({median:.2f} s)", flush=True)

    report("engine alone (durable-rules + expressions, no SQLite)", lambda: engine_alone(book, events))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for batch in (1, 100, 1000):
            report(f"ledger, in order, batches of {batch}",
                   lambda batch=batch: through_ledger(book, accounts, events, batch, folder))
        report("ledger, 5% late by 1-3 batches, batches of 100",
               lambda: through_ledger(book, accounts, events, 100, folder, late_share=0.05))
        report("ledger, every id a repeat (acknowledged), batches of 100",
               lambda: through_ledger(book, accounts, events, 100, folder, repeat_ids=True))


if __name__ == "__main__":
    main()
