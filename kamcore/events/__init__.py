"""Event rules: account events (orders, payments, overdue invoices, renewals) applied exactly once through
durable-rules rulesets compiled from `kind: event_rules` YAML, with a points and exposure ledger in SQLite."""

from .intake import Event, EventError
from .ledger import EventLedger, EventOutcome, NoEventRules, Submission, UnknownAccount, revision_of
from .rules import EventRules

__all__ = [
    "Event",
    "EventError",
    "EventLedger",
    "EventOutcome",
    "EventRules",
    "NoEventRules",
    "Submission",
    "UnknownAccount",
    "revision_of",
]
