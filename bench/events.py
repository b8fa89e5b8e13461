"""Benchmark: events per second through the event engine (durable-rules + expressions), alone and with the SQLite
ledger (WAL, synchronous=FULL), in order, with late arrivals, and repeated ids; and through the API of a real
`kam serve` (POST /v1/events, batches of 100, one keep-alive client). Medians of --repeat runs."""

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


def through_api(accounts, events: list[dict], batch: int, folder: Path) -> float:
    """Seconds to post the events in batches to a fresh `kam serve` (its start-up not counted)."""
    import http.client
    import json
    import os
    import shutil
    import socket
    import subprocess

    data = folder / f"api-{time.monotonic_ns()}"
    kam = str(Path(sys.executable).with_name("kam"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, KAM_ACCESS_LOG="false", KAM_EVENTS_SWEEP_S="0")
    server = subprocess.Popen([kam, "serve", "--data", str(data), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        token = subprocess.run([kam, "token", "create", "--name", "bench", "--role", "editor", "--data", str(data)],
                               check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)

        def post(path: str, body: dict) -> None:
            conn.request("POST", path, body=json.dumps(body, default=str).encode(), headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status} {payload[:200]!r}")

        rows = json.loads(accounts.to_json(orient="records", date_format="iso"))
        post("/v1/accounts", {"accounts": rows})
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            post("/v1/events", {"events": events[i:i + batch]})
        return time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(data, ignore_errors=True)


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
        report("API: POST /v1/events to kam serve, batches of 100", lambda: through_api(accounts, events, 100, folder))


if __name__ == "__main__":
    main()
