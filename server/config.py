"""The service's settings: one object with embedded defaults, each overridable by a `KAM_*` environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from kamcore.store import DATA_DIR

SHIPPED_RULES = Path(__file__).resolve().parent.parent / "rules"


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path(DATA_DIR)
    rules_seed: Path = SHIPPED_RULES  # the rule book a new data dir starts from
    require_approval: bool = False  # four-eyes: rule changes become change requests
    max_body_bytes: int = 16 * 1024 * 1024
    max_rows: int = 100_000  # accounts per evaluate request
    evaluate_timeout_s: float = 30.0  # an evaluation still running after this answers 413 (split the table)
    # Each decision flushed to disk before its answer (SQLite synchronous=FULL): survives power loss too, at
    # one disk flush per request. Off: WAL with synchronous=NORMAL, which survives a killed service.
    decisions_durable: bool = False
    token_cache_s: float = 30.0  # how long a verified token is trusted before its row is read again
    token_memory_kib: int = 65536  # argon2 memory cost of new token hashes (the argon2-cffi default)
    events_sweep_s: float = 60.0  # how often due event timers fire (0: never; tests call sweep themselves)
    access_log: bool = True
    # A plain evaluate of a few accounts as JSON answered in front of Flask (see server/lane.py); off: by the app.
    evaluate_lane: bool = True
    # malloc arenas of a `kam serve` process (glibc), shared by its threads: see server/heap.py; 0: glibc's own
    malloc_arenas: int = 2
    # accounts of the batch a `kam serve` process works through as it starts: see server/warm.py; 0: none
    rehearsal_rows: int = 10_000
    testing: bool = False

    @classmethod
    def from_env(cls, base: Config | None = None, environ: dict[str, str] | None = None) -> Config:
        """`base` with any `KAM_<FIELD>` variables applied (e.g. KAM_DATA_DIR, KAM_MAX_ROWS)."""
        environ = os.environ if environ is None else environ
        config = base or cls()
        changes: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"KAM_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(config, f.name))
            if kind is bool:
                changes[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif issubclass(kind, Path):
                changes[f.name] = Path(raw)
            else:
                changes[f.name] = kind(raw)
        return replace(config, **changes)

    @classmethod
    def of(cls, value: Config | dict[str, Any] | None) -> Config:
        if isinstance(value, Config):
            return value
        values = dict(value or {})
        for key in ("data_dir", "rules_seed"):
            if key in values:
                values[key] = Path(values[key])
        return cls(**values)
