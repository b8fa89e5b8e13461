"""Account events: submit a batch (each applied exactly once), read an account's ledger, state and open alerts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from kamcore.events import UnknownAccount

from .. import event_ledger, services
from ..auth import requires
from ..encoding import plain
from ..problems import PROBLEM_JSON, ApiProblem
from ..schemas import ProblemSchema, Strict
from .evaluate import _row_error

blp = Blueprint("events", __name__, url_prefix="/v1", description="Orders, payments, overdue invoices, renewals")

MAX_EVENTS = 10_000


class EventBatch(Strict):
    events = fields.List(fields.Dict(keys=fields.String()), required=True,
                         validate=validate.Length(max=MAX_EVENTS),
                         metadata={"description": "each {id, account_id, type, at, …fields of its type}"})


class AccountRows(Strict):
    accounts = fields.List(fields.Dict(keys=fields.String()), required=True,
                           metadata={"description": "account rows (with account_id) the event rules read"})


class LedgerQuery(Strict):
    measure = fields.String(validate=validate.OneOf(["points", "exposure"]))
    after_line = fields.Integer(load_default=0, validate=validate.Range(min=0))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10_000))


class AlertQuery(Strict):
    account_id = fields.String()
    level = fields.String()
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=10_000))


def ledger() -> Any:
    """The event ledger, applying events with the live rule book (switched when a commit goes live)."""
    kam = services()
    events = event_ledger(kam)
    if events is None:
        raise ApiProblem(404, "No event rules", "the rule book holds no `kind: event_rules` file")
    book = kam.rules.book()
    if events.book is not book and events.book.revision != book.revision:
        events.use_book(book)
    return events


@blp.route("/events")
class Events(MethodView):
    @requires("edit")
    @blp.arguments(EventBatch)
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, body: dict[str, Any]):
        """Apply a batch of events. A repeated event id is acknowledged, not applied again; a bad event gets its own
        errors and every good one is still applied."""
        return plain(ledger().submit(body["events"]).to_dict())


@blp.route("/accounts")
class Accounts(MethodView):
    @requires("edit")
    @blp.arguments(AccountRows)
    @blp.response(200)
    def post(self, body: dict[str, Any]):
        """Register or update the account rows the event rules read (tier, multiplier, limit come from them)."""
        errors = ledger().register_accounts(body["accounts"])
        return {"registered": len(body["accounts"]) - len({e.row for e in errors}),
                "errors": [_row_error(e) for e in errors]}


@blp.route("/accounts/<account_id>/ledger")
class Ledger(MethodView):
    @requires("read")
    @blp.arguments(LedgerQuery, location="query")
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def get(self, query: dict[str, Any], account_id: str):
        """The account's ledger lines, each naming its event, rule and rules revision."""
        try:
            return plain(ledger().ledger(account_id, query.get("measure"), query["after_line"], query["limit"]))
        except UnknownAccount as e:
            raise ApiProblem(404, "Not found", str(e)) from None


@blp.route("/accounts/<account_id>/state")
class State(MethodView):
    @requires("read")
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def get(self, account_id: str):
        """Points, exposure, utilisation, credit status, open alerts, streaks and timers of one account."""
        try:
            return plain(ledger().state(account_id))
        except UnknownAccount as e:
            raise ApiProblem(404, "Not found", str(e)) from None


@blp.route("/alerts")
class Alerts(MethodView):
    @requires("read")
    @blp.arguments(AlertQuery, location="query")
    @blp.response(200)
    def get(self, query: dict[str, Any]):
        """Open credit alerts, holds and follow-ups, newest first."""
        return plain(ledger().alerts(query.get("account_id"), query.get("level"), query["limit"]))
