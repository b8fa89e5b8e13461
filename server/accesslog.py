"""Per request: a `Server-Timing` header, and one JSON line on the `kam.access` logger (who, what, status, time,
decision and revision, and which worker process answered).

Both give the request's time twice: `app` (`ms`), from the first hook to the last on the clock, and `cpu`
(`cpu_ms`), the CPU its thread used meanwhile. Far apart, the request waited (for the decision log's turn, for
the interpreter lock held by other requests); close, it computed. Work a request hands to a thread of its own
(a large batch's decision log) is counted in `app`, not in `cpu`."""

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
        context = g._get_current_object()
        context.started, context.started_cpu = time.perf_counter(), time.thread_time()

    worker = os.getpid()

    @app.after_request
    def _line(response: Response) -> Response:
        context = g._get_current_object()  # the proxies once each, not per attribute
        ms = (time.perf_counter() - context.get("started", time.perf_counter())) * 1000
        cpu_ms = (time.thread_time() - context.get("started_cpu", time.thread_time())) * 1000
        response.headers["Server-Timing"] = f"app;dur={ms:.2f}, cpu;dur={cpu_ms:.2f}"
        if not log_lines:
            return response
        req = request._get_current_object()
        principal = context.get("principal")
        record = {
            "method": req.method,
            "path": req.path,
            "status": response.status_code,
            "ms": round(ms, 2),
            "cpu_ms": round(cpu_ms, 2),
            "actor": principal.name if principal else None,
            "decision_id": context.get("decision_id"),
            "revision": context.get("revision"),
            "bytes_in": req.content_length,
            "worker": worker,
        }
        log.info(orjson.dumps(record).decode())
        return response
