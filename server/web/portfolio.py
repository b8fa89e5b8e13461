"""The current portfolio (`portfolio.csv` in the data dir), read once per file change, and its evaluation per
revision: what the impact preview and the dashboard run on."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
from flask import current_app

from kamcore.evaluation import Evaluation
from kamcore.portfolio import read_table

from .. import services

PORTFOLIO = "portfolio.csv"
_lock = threading.Lock()


def path() -> Path:
    return Path(services().config.data_dir) / PORTFOLIO


def _cache() -> dict[str, Any]:
    return current_app.extensions.setdefault("kam_web_portfolio", {})


def current() -> pd.DataFrame | None:
    """The accounts, or None when the data dir holds no portfolio."""
    file = path()
    if not file.exists():
        return None
    stamp = file.stat().st_mtime_ns
    cache = _cache()
    with _lock:
        if cache.get("stamp") == stamp:
            return cache["frame"]
    frame = read_table(file)
    with _lock:
        cache.clear()
        cache.update(stamp=stamp, frame=frame, evaluations={})
    return frame


def evaluated(revision: str) -> Evaluation | None:
    """The portfolio evaluated at `revision` (kept for the two most recent revisions asked for)."""
    frame = current()
    if frame is None:
        return None
    cache = _cache()
    with _lock:
        found = cache["evaluations"].get(revision)
    if found is not None:
        return found
    evaluation = services().store.book(revision).evaluate(frame)
    with _lock:
        evaluations = cache["evaluations"]
        evaluations[revision] = evaluation
        while len(evaluations) > 2:
            evaluations.pop(next(iter(evaluations)))
    return evaluation
