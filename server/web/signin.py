"""Sign-in with an API token into a session cookie, CSRF checks on every form, and the role gate of each page."""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, abort, g, jsonify, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Request, Response
from itsdangerous import URLSafeTimedSerializer

from ..auth import PERMISSIONS, Principal
from . import blp, i18n

SECRET_FILE = "web-session.key"  # noqa: S105 (a file name, not a secret)
OPEN_ENDPOINTS = {"web.sign_in", "web.static", "web.language"}


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer made once per key rather than on every request
    (making it, with a trial dump of its JSON serializer, cost more than an API request's own work), and a
    request without cookies (an API call with a bearer token) given its empty session without parsing the
    cookies or, at the end, looking up the cookie settings for a session nobody touched."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.environ.get("HTTP_COOKIE") or self.get_signing_serializer(app) is None:
            return super().open_session(app, request)
        return self.session_class()  # what Flask opens when the session cookie is absent

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session or session.accessed or session.modified:
            super().save_session(app, session, response)
        # else: Flask would neither add `Vary: Cookie` nor set or delete a cookie

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        key = (app.secret_key, tuple(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        made = self.__dict__.get("_made")
        if made is None or made[0] != key:
            made = self._made = (key, super().get_signing_serializer(app))
        return made[1]


def install_secret(app: Flask) -> None:
    """Sign session cookies with a key kept in the data dir, so sessions survive a restart (and every worker
    of one data dir agrees on it)."""
    if app.secret_key:
        return
    path = Path(app.extensions["kam"].config.data_dir) / SECRET_FILE
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    app.secret_key = path.read_text().strip()
    app.session_interface = CookieSessions()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _check_csrf() -> None:
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not hmac.compare_digest(sent, session.get("csrf", "\0")):
        abort(400, "the form is out of date or came from another site: reload the page and try again")


@blp.before_request
def _signed_in():
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        _check_csrf()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    from .. import services

    token = session.get("token")
    principal = services().tokens.principal(token) if token else None
    if principal is None:  # never signed in, signed out, or the token was revoked since
        session.pop("token", None)
        if _wants_json():
            return jsonify({"title": "Unauthorized", "detail": "sign in at /ui/signin"}), 401
        return redirect(url_for("web.sign_in", next=request.full_path.rstrip("?")))
    g.principal = principal  # the API's own checks (authenticate) then see the same caller
    return None


@blp.context_processor
def _page_context() -> dict[str, Any]:
    return {"t": i18n.t, "lbl": i18n.label, "lang": i18n.lang(), "csrf_token": csrf_token,
            "me": g.get("principal"), "may": lambda permission: bool(g.get("principal")) and
            g.principal.may(permission)}


def page(permission: str) -> Callable:
    """Decorate a page view: the signed-in role must hold `permission`, else a 403 page."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            principal: Principal = g.principal
            if not principal.may(permission):
                detail = (f"the {principal.role} role may not {permission}; roles that may: "
                          f"{', '.join(sorted(PERMISSIONS[permission]))}")
                if _wants_json():
                    return jsonify({"title": "Forbidden", "detail": detail}), 403
                return render_template("forbidden.html", detail=detail), 403
            return view(*args, **kwargs)

        checked.required_permission = permission  # type: ignore[attr-defined]
        return checked

    return decorate


def _wants_json() -> bool:
    if request.args.get("format") == "json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def show(template: str, data: dict[str, Any], status: int = 200, **view: Any) -> Any:
    """Render the page, or its JSON twin (`?format=json` or `Accept: application/json`): the same data the page
    shows, without the presentation-only `view` values."""
    if _wants_json():
        from ..encoding import plain

        return jsonify(plain(data)), status
    return render_template(template, **data, **view), status


def local_next(target: str | None) -> str:
    """Only a path on this site is followed after sign-in or a language switch (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("web.rule_book")


@blp.route("/signin", methods=["GET", "POST"])
def sign_in():
    from .. import services

    error = None
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        principal = services().tokens.principal(token) if token else None
        if principal is not None:
            session.clear()
            session["token"] = token
            session["csrf"] = secrets.token_urlsafe(24)  # a new session gets a new CSRF token
            return redirect(local_next(request.form.get("next")))
        error = "The token is unknown or revoked."
    return render_template("signin.html", error=error, next=request.args.get("next", "")), (401 if error else 200)


@blp.route("/signout", methods=["POST"])
def sign_out():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("web.sign_in"))


@blp.route("/lang/<code>")
def language(code: str):
    """Switch language; remembered in the session and, for the next sign-in, in a year-long cookie."""
    if code not in i18n.LANGS:
        abort(404)
    session["lang"] = code
    response = redirect(local_next(request.args.get("next")))
    response.set_cookie(i18n.COOKIE, code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return response
