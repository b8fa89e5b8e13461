"""The web pages for sales ops and auditors: server-rendered Jinja over the same store and API code."""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, url_for

blp = Blueprint("web", __name__, url_prefix="/ui", template_folder="templates", static_folder="static",
                static_url_path="/static")


def register(app: Flask) -> None:
    """Mount the pages under `/ui` (and send `/` there); the session key lives in the data dir."""
    # Each module adds its routes to `blp` when imported.
    from . import changes, dashboard, decisions, editor, errors, evaluate, history, rulebook, signin  # noqa: F401

    signin.install_secret(app)
    app.register_blueprint(blp)
    app.add_url_rule("/", "home", lambda: redirect(url_for("web.rule_book")))
