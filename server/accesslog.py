"""Per request: a `Server-Timing` header, and one JSON line on the `kam.access` logger (who, what, status, time,
decision and revision, and which worker process answered); written by the app's hooks, and by the evaluate
lane (lane.py) for the requests it answers.

Both give the request's time twice: `app` (`ms`), from the first hook (or from where the lane took the request)
to the last on the clock, and `cpu` (`cpu_ms`), the CPU its thread used meanwhile. Far apart, the request waited
(for the decision log's turn, for the interpreter lock held by other requests); close, it computed. Work a request
hands to a thread of its own (a large batch's decision log) is counted in `app`, not in `cpu`."""

from __future__ import annotations

import logging
import os
import time

import orjson
from flask import Flask, Response, g, request

log = logging.getLogger("kam.access")

# The environ key under which the evaluate lane (lane.py) gives the clock and CPU time it started a request at,
# when it hands the request to the app: the app's line then times the lane's part too. (A client cannot set it: a
# WSGI server puts headers under HTTP_ keys.)
LANE_STARTED = "kam.lane_started"


def register(app: Flask, log_lines: bool = True) -> None:
    @app.before_request
    def _start() -> None:
        context = g._get_current_object()
        context.started, context.started_cpu = request._get_current_object().environ.get(LANE_STARTED) \
            or (time.perf_counter(), time.thread_time())

    @app.after_request
    def _line(response: Response) -> Response:
        context = g._get_current_object()  # the proxies once each, not per attribute
        ms = (time.perf_counter() - context.get("started", time.perf_counter())) * 1000
        cpu_ms = (time.thread_time() - context.get("started_cpu", time.thread_time())) * 1000
        response.headers["Server-Timing"] = server_timing(ms, cpu_ms)
        if log_lines:
            req = request._get_current_object()
            principal = context.get("principal")
            write_line(req.method, req.path, response.status_code, ms, cpu_ms, principal.name if principal else None,
                       context.get("decision_id"), context.get("revision"), req.content_length)
        return response


def server_timing(ms: float, cpu_ms: float) -> str:
    """The `Server-Timing` header's value: the request's time on the clock and its thread's CPU time."""
    return f"app;dur={ms:.2f}, cpu;dur={cpu_ms:.2f}"


def write_line(method: str, path: str, status: int, ms: float, cpu_ms: float, actor: str | None,
               decision_id: str | None, revision: str | None, bytes_in: int | None) -> None:
    """One request's JSON line on the `kam.access` logger."""
    record = {
        "method": method,
        "path": path,
        "status": status,
        "ms": round(ms, 2),
        "cpu_ms": round(cpu_ms, 2),
        "actor": actor,
        "decision_id": decision_id,
        "revision": revision,
        "bytes_in": bytes_in,
        "worker": os.getpid(),  # which worker process answered (`kam serve --workers N`)
    }
    log.info(orjson.dumps(record).decode())
