"""A worker's first large batch, rehearsed before it takes requests.

A worker's first 10,000-account batches took 40-90 ms longer than later ones (first batches of 193-291 ms of server
time where later ones took ~145; bench/http.py reports them as "the first three"): the memory such a batch needs
was faulted in for the first time, and Arrow's reader, its kernels, the answer's row type and the log's
compressors were set up on first use. `rehearse` sends a batch of demo accounts through the same path as a
request (`decide`: read by Arrow, evaluated, answered and logged) once as the worker starts, on a thread of its own
as a request is. Its decision goes to a scratch log in a temporary directory, deleted after: nothing is recorded in
the service's log, and nothing is answered. It costs ~0.5 s of start-up, and the worker holds from the start the
~100 MB that its first batch would have left it holding. Measured over HTTP, fresh `kam serve` in turn, three
with and three without: first batches of 152, 172, 176 ms against 229, 193, 291 ms.
`KAM_REHEARSAL_ROWS=0` turns it off."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path

from flask import Flask

from kamcore.aside import Aside
from kamcore.decisions import DecisionLog
from kamcore.demo import synthetic_portfolio

from . import gcpause
from .api.evaluate import decide
from .batchbody import read_batch
from .encoding import dumps

log = logging.getLogger(__name__)


def rehearse(app: Flask, rows: int) -> float | None:
    """Send a batch of `rows` demo accounts (at most `max_rows`) through `decide` as a large JSON request would go;
    the seconds it took, or None when `rows` is 0 or the rehearsal failed (logged as a warning with its traceback:
    the service starts all the same)."""
    kam = app.extensions["kam"]
    rows = min(rows, kam.config.max_rows)  # never a batch the service would refuse (after making it)
    if rows <= 0:
        return None
    started = time.perf_counter()
    try:
        accounts = json.loads(synthetic_portfolio(rows, seed=0).to_json(orient="records", date_format="iso"))
        body = json.dumps({"accounts": accounts}).encode()
        with tempfile.TemporaryDirectory(prefix="kam-rehearsal-") as scratch, \
                DecisionLog.open(Path(scratch) / "decisions.sqlite3", durable=kam.config.decisions_durable) as log_:
            rehearsal = dataclasses.replace(kam, decisions=log_)

            def request() -> None:  # as the view answers a large JSON body (server/api/evaluate.py)
                with gcpause.paused(len(body) >= gcpause.LARGE_BODY_BYTES):
                    batch = read_batch(body)
                    dumps(decide(rehearsal, "rehearsal", accounts if batch is None else batch[0], encoded=True))

            Aside(request, name="kam-rehearsal").result()
    except Exception as e:  # noqa: BLE001 - a rehearsal that fails only leaves the first batch slower
        log.warning("the start-up rehearsal of a %s-account batch failed (%s: %s); the first batches may be slower",
                    f"{rows:,}", type(e).__name__, e, exc_info=True)
        return None
    return time.perf_counter() - started
