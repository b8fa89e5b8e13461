"""The JSON API (`/v1/...`), its OpenAPI document at `/openapi.json` and the browsable page at `/docs`."""

from __future__ import annotations

import http

from flask import Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path

from ..problems import PROBLEM_JSON
from ..schemas import ProblemSchema
from . import cells, changes, decisions, evaluate, events, history, meta, rules, ruletables, workbooks


class ServiceApi(Api):
    """flask-smorest's Api, with every error documented as what the service sends: a problem+json document."""

    ERROR_SCHEMA = ProblemSchema

    def _register_responses(self) -> None:
        # flask-smorest documents its error components (the 422 of every argument check, the `default` of
        # every operation) as application/json with its own error shape; ours are RFC 9457 problems.
        problem = {PROBLEM_JSON: {"schema": ProblemSchema}}
        for status in http.HTTPStatus:
            response = {"description": status.phrase, **({"content": problem} if status >= 400 else {})}
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME,
                                      {"description": "A problem (401, 403, 404, 413, 415…)", "content": problem},
                                      lazy=True)


def register(app: Flask) -> Api:
    api = ServiceApi(app, spec_kwargs={"servers": [{"url": "/"}]})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for module in (meta, evaluate, rules, ruletables, changes, history, decisions, events, workbooks, cells):
        api.register_blueprint(module.blp)

    @app.get("/docs/assets/<path:name>")
    def _swagger_assets(name: str):  # the Swagger UI files ship in a wheel: no CDN, works offline
        return send_from_directory(swagger_ui_path, name, max_age=86400)

    return api
