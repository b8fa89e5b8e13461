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
        g.started = time.perf_counter()

    worker = os.getpid()

    @app.after_request
    def _line(response: Response) -> Response:
        ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.2f}"
        if not log_lines:
            return response
        principal = g.get("principal")
        record = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(ms, 2),
            "actor": principal.name if principal else None,
            "decision_id": g.get("decision_id"),
            "revision": g.get("revision"),
            "bytes_in": request.content_length,
            "worker": worker,
        }
        log.info(orjson.dumps(record).decode())
        return response
