"""Per request: a `Server-Timing` header, and one JSON line on the `kam.access` logger (who, what, status, time,
decision and revision, and which worker process answered)."""

from __future__ import annotations

import logging
import os
import time

import orjson
from flask import Flask, Response, g, request

log = logging.getLogger("kam.access")


def register(app: Flask, log_lines: bool = True) -> None:
    @app.before_request
    def _start() -> None:
        g._get_current_object().started = time.perf_counter()

    worker = os.getpid()

    @app.after_request
    def _line(response: Response) -> Response:
        context = g._get_current_object()  # the proxies once each, not per attribute
        ms = (time.perf_counter() - context.get("started", time.perf_counter())) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.2f}"
        if not log_lines:
            return response
        req = request._get_current_object()
        principal = context.get("principal")
        record = {
            "method": req.method,
            "path": req.path,
            "status": response.status_code,
            "ms": round(ms, 2),
            "actor": principal.name if principal else None,
            "decision_id": context.get("decision_id"),
            "revision": context.get("revision"),
            "bytes_in": req.content_length,
            "worker": worker,
        }
        log.info(orjson.dumps(record).decode())
        return response
