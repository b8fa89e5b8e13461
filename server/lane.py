"""The evaluate lane: a plain `POST /v1/evaluate` of a few accounts as JSON, answered without Flask's request
machinery.

Most calls of the service are one account or a few, as JSON, from the Excel add-in or another system. For such a
request, Flask's contexts, routing, hooks and response object cost about 0.4 ms of its ~1.3 ms of CPU
(`bench/wsgi.py`). The lane, a WSGI middleware in front of the app, answers the plain case itself with the view's
own parts:
- the same token check (`TokenStore.principal`, the view's permission);
- the same body reading (`loads`, the view's `json_request`);
- the same evaluation and decision (`decide`);
- the same answer bytes, headers, `Server-Timing` and access-log line.

Everything else goes to the app, so the app stays the one place that says what any other request gets:
- another method, path or media type; a query string; a cookie; a body over LANE_BODY_BYTES or of unknown length;
  no bearer token; a token store that fails: untouched;
- a token that does not resolve to a caller the view allows: with the lane's verdict on it
  (`auth.CHECKED_PRINCIPAL`), so a wrong secret costs one argon2 run, not two;
- a body shorter than its length, not JSON, or not a valid evaluate body: with the body the lane read, for the app
  to read again and say what is wrong;
- a refusal by `decide`, before anything is recorded (more accounts than `max_rows`, a rule book that does not
  load, accounts that cannot be read, the time limit, a decision log busy or failing, or a fault): with the
  refusal (`LaneRefusal`), which the view raises as its own, so the app answers with its problem document,
  status and error log, and nothing is evaluated or waited for twice.
A request handed over after the lane took the clock (`accesslog.LANE_STARTED`) is timed from there, so its
access line and `Server-Timing` count the lane's part (a wait for a busy decision log, say) as the app's own would.
A fault after the decision is recorded is answered here, as the app answers a fault in its view (a 500 problem
document), logged with its traceback: handed over, the request would be recorded twice."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.exceptions import InternalServerError

from . import Services
from .accesslog import LANE_STARTED, server_timing, write_line
from .api.evaluate import REFUSED, Evaluate, LaneRefusal, decide, json_request
from .auth import CHECKED_PRINCIPAL
from .encoding import dumps, loads
from .problems import PROBLEM_JSON

PATH = "/v1/evaluate"
PERMISSION = Evaluate.post.required_permission  # what the view requires of its caller, the lane too
LANE_BODY_BYTES = 64 * 1024  # about 120 accounts as JSON; a larger body goes to the app

log = logging.getLogger(__name__)

# What the app answers for a fault in a view (werkzeug's 500, as problems.py writes an HTTPException).
_INTERNAL_ERROR = dumps({"type": "about:blank", "title": InternalServerError().name, "status": 500,
                         "detail": InternalServerError.description})

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


_FAILED = object()  # the token store failed


class _Noted:
    """What `decide` notes for the access log (in the app, `flask.g` takes these)."""

    revision: str | None = None
    decision_id: str | None = None


class EvaluateLane:
    """WSGI middleware: the plain evaluate request answered here, any other request passed to `app`."""

    def __init__(self, kam: Services, app: WSGIApp, log_lines: bool = True):
        self.kam, self.app, self.log_lines = kam, app, log_lines
        self.body_limit = min(LANE_BODY_BYTES, kam.config.max_body_bytes)
        self.answered = 0  # requests the lane answered itself (the tests ask)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST" \
                or environ.get("QUERY_STRING") or "HTTP_COOKIE" in environ:
            return self.app(environ, start_response)
        # The request's clock starts here, for the app's access line too should the app answer it.
        environ[LANE_STARTED] = started, started_cpu = time.perf_counter(), time.thread_time()
        length = _length(environ.get("CONTENT_LENGTH"))
        content_type = environ.get("CONTENT_TYPE", "")
        if length is None or not 0 < length <= self.body_limit \
                or content_type.partition(";")[0].strip().lower() != "application/json":
            return self.app(environ, start_response)
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self.app(environ, start_response)
        try:
            principal = self.kam.tokens.principal(token)
        except Exception:  # noqa: BLE001 - the token store failing: the app tries again and answers as it does
            principal = _FAILED
        if principal is _FAILED:  # (the app called outside the `except`, so its errors are not chained to it)
            return self.app(environ, start_response)
        environ[CHECKED_PRINCIPAL] = (token, principal)  # the app takes this verdict, not argon2 again
        if principal is None or not principal.may(PERMISSION):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        if len(body) != length:  # the client sent less than it said: the app says what is wrong
            return self._hand_over(environ, body, start_response)
        try:
            accounts, explain, as_of = json_request(loads(body), {})  # (no query string here)
        except Exception:  # noqa: BLE001 - nothing evaluated: the app reads the body again and says what is wrong
            accounts = None
        if accounts is None:
            return self._hand_over(environ, body, start_response)
        note, refused = _Noted(), None
        try:
            answer = dumps(decide(self.kam, principal.name, accounts, explain=explain, as_of=as_of, encoded=True,
                                  note=note))
            status, content_type = "200 OK", "application/json"
        except Exception as e:  # noqa: BLE001
            if note.decision_id is None:  # refused, nothing recorded: the app answers with the refusal
                refused = LaneRefusal(e, note.revision)
            else:  # recorded, so not to be evaluated and recorded again: the app's answer to a fault in its view
                log.exception("the evaluate lane failed after decision %s was recorded", note.decision_id)
                status, content_type, answer = "500 INTERNAL SERVER ERROR", PROBLEM_JSON, _INTERNAL_ERROR
        if refused is not None:
            handed = {**environ, "wsgi.input": io.BytesIO(body), REFUSED: refused}
            # Held by no local while the app runs: the exception's traceback will hold the view's frame, whose
            # callers' frames (this one) stay alive with it, so a local here would make a cycle. The view takes
            # the refusal out of `handed`.
            del refused
            return self.app(handed, start_response)
        ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.thread_time() - started_cpu) * 1000
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(answer))),
                                ("Server-Timing", server_timing(ms, cpu_ms))])
        if self.log_lines:
            write_line("POST", PATH, int(status[:3]), ms, cpu_ms, principal.name, note.decision_id, note.revision,
                       length)
        self.answered += 1
        return [answer]

    def _hand_over(self, environ: dict[str, Any], body: bytes, start_response: StartResponse) -> Iterable[bytes]:
        return self.app({**environ, "wsgi.input": io.BytesIO(body)}, start_response)


def _length(header: str | None) -> int | None:
    """A Content-Length of at most 20 ASCII digits as a number; None for anything else (absent, or not a plain
    count of bytes: the app says what it makes of it)."""
    if not header or len(header) > 20 or not (header.isascii() and header.isdigit()):
        return None
    return int(header)


def install(app: Flask, kam: Services, log_lines: bool) -> EvaluateLane:
    """Put the lane in front of the app's WSGI callable (Flask's way to add middleware)."""
    lane = EvaluateLane(kam, app.wsgi_app, log_lines)
    app.wsgi_app = lane  # type: ignore[method-assign]
    return lane
