"""The OpenAPI document and its browsable page need a caller like every other endpoint but `/healthz`: a bearer
token, or a session signed in through the web pages (a browser cannot send a bearer header when it navigates).
Their static assets stay public, as the sign-in page's do: they hold no data."""

from __future__ import annotations

from flask import Flask, g, redirect, request, session, url_for

from .auth import authenticate
from .problems import ApiProblem

GATED = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui"}
DOCS_BLUEPRINT = "api-docs"  # flask-smorest's, which serves both


def register(app: Flask) -> None:
    def _docs_need_a_caller():
        if request.endpoint not in GATED:
            return None
        if request.headers.get("Authorization"):
            authenticate()  # 401 problem for a bad or revoked token; every role may read the document
            return None
        token = session.get("token")
        principal = app.extensions["kam"].tokens.principal(token) if token else None
        if principal is not None:
            g.principal = principal
            return None
        if request.endpoint == "api-docs.openapi_swagger_ui":
            return redirect(url_for("web.sign_in", next=request.path))
        raise ApiProblem(401, "Unauthorized", "send `Authorization: Bearer <token>`, or sign in at /ui/signin")

    # A hook of the docs' blueprint only (as `Blueprint.before_request` makes one): the API's requests do
    # without the call.
    app.before_request_funcs.setdefault(DOCS_BLUEPRINT, []).append(_docs_need_a_caller)
