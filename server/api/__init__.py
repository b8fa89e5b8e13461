"""The JSON API (`/v1/...`), its OpenAPI document at `/openapi.json` and the browsable page at `/docs`."""

from __future__ import annotations

from flask import Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path

from . import cells, changes, decisions, evaluate, history, meta, rules, workbooks


def register(app: Flask) -> Api:
    api = Api(app, spec_kwargs={"servers": [{"url": "/"}]})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for module in (meta, evaluate, rules, changes, history, decisions, workbooks, cells):
        api.register_blueprint(module.blp)

    @app.get("/docs/assets/<path:name>")
    def _swagger_assets(name: str):  # the Swagger UI files ship in a wheel: no CDN, works offline
        return send_from_directory(swagger_ui_path, name, max_age=86400)

    return api
