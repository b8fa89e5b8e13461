"""Synthetic account events (orders, payments, overdue invoices, renewals) for the demo, tests and benchmark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import eventtime

KINDS = np.array(["order_placed", "payment_received", "invoice_overdue", "contract_renewed"])
KIND_WEIGHTS = np.array([0.6, 0.3, 0.07, 0.03])


def synthetic_events(account_ids: Sequence[str], n: int, seed: int = 11, start: str = "2025-01-01",
                     days: int = 700) -> list[dict[str, Any]]:
    """n events with unique ids over `days` days from `start`, in time order, spread unevenly over the accounts
    (some order often and build streaks, some fall asleep)."""
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.2, len(account_ids)) + 0.05
    accounts = rng.choice(np.asarray(account_ids, dtype=object), n, p=weights / weights.sum())
    kinds = rng.choice(KINDS, n, p=KIND_WEIGHTS)
    offsets = np.sort(rng.uniform(0, days * 86_400, n))
    amounts = np.round(np.exp(rng.normal(9.5, 1.2, n)), 2)
    origin = eventtime.parse(start)
    events = []
    for i in range(n):
        at = eventtime.iso(origin + int(offsets[i] * 1_000_000))
        event: dict[str, Any] = {"id": f"ev{seed}-{i:08d}", "account_id": str(accounts[i]), "type": str(kinds[i]),
                                 "at": at}
        if kinds[i] in ("order_placed", "payment_received"):
            event["amount"] = float(amounts[i])
        elif kinds[i] == "invoice_overdue":
            event |= {"invoice_no": f"INV-{i}", "days_overdue": int(rng.integers(1, 120)),
                      "amount": float(amounts[i])}
        else:
            event |= {"contract_no": f"K-{i}", "term_months": int(rng.choice([12, 24, 36]))}
        events.append(event)
    return events


def end_of(events: Sequence[dict[str, Any]]) -> dt.datetime:
    """The time of the latest event."""
    return eventtime.to_datetime(max(eventtime.parse(e["at"]) for e in events))
