"""The KAM Rules service: a Flask app over kamcore — JSON API, OpenAPI document and its browsable page."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from inspect import iscoroutinefunction
from types import FunctionType, MethodType
from typing import Any

from flask import Flask, current_app

from kamcore.decisions import DecisionLog, log_path
from kamcore.events import EventLedger, NoEventRules
from kamcore.store import RuleStore

from .auth import TokenStore
from .config import Config
from .live import LiveRules, NotReady

SERVICE_DB = "service.sqlite3"
EVENTS_DB = "events.sqlite3"
PORTFOLIO = "portfolio.csv"  # the current portfolio: what event rules read account state from


@dataclass
class Services:
    """What the views call into, built once per app."""

    config: Config
    store: RuleStore
    rules: LiveRules
    tokens: TokenStore
    decisions: DecisionLog
    events: EventLedger | None = None  # built on first use (see `event_ledger`); None until then
    events_absent: bool = False  # the rule book holds no event rules


class ServiceApp(Flask):
    """Flask, with `ensure_sync` answering from what it found before: Flask asks it of every view, hook and
    flask-smorest wrapper on every request, and asks `inspect` each time (2% of a single-account evaluate under
    cProfile, for an answer that never changes)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._coroutine: dict[FunctionType, bool] = {}  # the app's views and hooks: a fixed, small set

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # A bound method is made afresh per request (a MethodView per request): what it is is its function's.
        code = func.__func__ if type(func) is MethodType else func
        if type(code) is not FunctionType:  # a partial, a callable object: asked each time, as Flask does
            return super().ensure_sync(func)
        coroutine = self._coroutine.get(code)
        if coroutine is None:
            coroutine = self._coroutine[code] = iscoroutinefunction(code)
        return self.async_to_sync(func) if coroutine else func


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Build the app: open (or create from the shipped book) the rule repository and databases under the data
    dir, register the blueprints, error handlers and the OpenAPI document."""
    from . import accesslog, api, apidocs, lane, problems, web, xlwings_protocol
    from .encoding import JSONProvider

    cfg = Config.of(config)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    app = ServiceApp(__name__)
    app.json = JSONProvider(app)
    app.config.update(
        TESTING=cfg.testing,
        MAX_CONTENT_LENGTH=cfg.max_body_bytes,
        API_TITLE="KAM Rules",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={"security": [{"bearer": []}],
                          "info": {"description": "Key-account tiering, entitlements, credit and loyalty rules."}},
    )
    store = RuleStore.open(cfg.data_dir, seed=cfg.rules_seed, require_approval=cfg.require_approval)
    live = LiveRules(store)
    app.extensions["kam"] = Services(cfg, store, live, TokenStore(cfg.data_dir / SERVICE_DB, cfg.token_cache_s,
                                                                  cfg.token_memory_kib),
                                     DecisionLog.open(log_path(cfg.data_dir), durable=cfg.decisions_durable))
    try:
        event_ledger(app.extensions["kam"])  # start the sweep now, not at the first event request
    except NotReady:
        pass  # no rule book loads yet: /readyz says why, events start once one does
    api.register(app)
    xlwings_protocol.register(app)
    problems.register(app)  # after flask-smorest's own handlers, so every error is problem+json
    accesslog.register(app, log_lines=cfg.access_log)
    web.register(app)
    apidocs.register(app)
    if cfg.evaluate_lane:
        lane.install(app, app.extensions["kam"], log_lines=cfg.access_log)
    return app


_EVENTS_LOCK = threading.Lock()


def event_ledger(kam: Services) -> EventLedger | None:
    """The event ledger (None if the rule book has no event rules), built on first use: on the live book, with
    the current portfolio's accounts registered, and a sweep thread firing due timers (points expiry, sleeping
    accounts) unless sweeping is off (`events_sweep_s = 0`). Raises NotReady while no rule book loads."""
    with _EVENTS_LOCK:
        if kam.events is None and not kam.events_absent:
            try:
                kam.events = _new_event_ledger(kam.config, kam.rules)
            except NoEventRules:
                kam.events_absent = True
        return kam.events


def _new_event_ledger(cfg: Config, live: LiveRules) -> EventLedger:
    ledger = EventLedger(cfg.data_dir / EVENTS_DB, live.book())
    portfolio = cfg.data_dir / PORTFOLIO
    if portfolio.exists():
        from kamcore.portfolio import read_table

        ledger.register_accounts(read_table(portfolio))
    if cfg.events_sweep_s > 0:
        def sweep() -> None:
            while not stop.wait(cfg.events_sweep_s):
                ledger.sweep()

        stop = threading.Event()
        threading.Thread(target=sweep, name="kam-events-sweep", daemon=True).start()
    return ledger


def services() -> Services:
    return current_app._get_current_object().extensions["kam"]  # once through the proxy, not per attribute
