"""The decision log: every evaluation kept in SQLite (WAL) as a hash chain that shows tampering and lets an
auditor reproduce any past decision at its rules revision."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import zstandard

from .aside import Aside
from .errors import KamError, RowError
from .evaluation import as_of_date as _as_of
from .expressions.scalar import ListVec
from .expressions.types import Type
from .expressions.vectors import NULL, TRUE, Vec, arrow_bytes, arrow_text
from .portfolio import Records

try:
    import fcntl
except ImportError:  # not on Unix: writers take turns by SQLite's lock alone
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .evaluation import Evaluation
    from .rulebook import RuleBook

_log = logging.getLogger(__name__)

LOG_FILE = "decisions.sqlite3"
SCHEMA_VERSION = 1
HASH_FORMAT = 1  # inside every hashed record: a later change of what is hashed must bump it
GENESIS = "0" * 64  # what the first record links to
BUSY_TIMEOUT_S = 30.0
LOCK_SUFFIX = ".lock"  # the writers' lock file beside the log: `decisions.sqlite3.lock`
# Checkpoints (the WAL copied back into the log file, with an fsync) run in a thread of their own, never in a
# request's commit: one of 1,400 pages took 36-55 ms on this machine, and SQLite runs it inside the COMMIT of
# whichever writer crosses wal_autocheckpoint, with every other writer waiting (bench/decisions.py --latency).
CHECKPOINT_EVERY_S = 0.5
# Under steady load the background checkpoints never catch up with the end of the WAL, so SQLite never starts it
# over by itself: past this size its last frames are copied with the writers held off for that moment (10-30 ms
# on this loaded machine, two fsyncs; about every 3,000 one-account decisions, ~20 kB of WAL each, under full load),
# and the next writer starts it over from its beginning. With pauses in the load it starts over sooner, unheld.
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# zstd level 1: on a 10,000-account decision (6 MB of canonical JSON) 30% less time than level 3, zstd's default,
# for 2% more bytes (bench/batch.py). Any level reads back the same; the digests are over the uncompressed bytes.
COMPRESSION_LEVEL = 1
# A table this large (the inputs of about 1,200 accounts) is sealed (digest and zstd) beside the work that goes on: the
# input table while the output table is encoded, a table's digest while it is compressed (see `_seal`).
SEAL_ASIDE_BYTES = 256 * 1024
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width UTC, so text order is time order

_SCHEMA = [
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL CHECK (kind IN ('decision', 'checkpoint')),
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        revision TEXT,
        as_of TEXT,
        input_digest TEXT,
        output_digest TEXT,
        inputs BLOB,
        outputs BLOB,
        checkpoint TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL)""",
    # The hash of the newest record, moved in the same transaction as each write: a removed last record
    # leaves a gap here, and a writer always links to this head, never to whatever record is last.
    "CREATE TABLE head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL)",
]
_FIELDS = ("seq", "id", "kind", "time", "actor", "revision", "as_of", "input_digest", "output_digest", "inputs",
           "outputs", "checkpoint", "prev_hash", "hash")
_SELECT = ("SELECT seq, id, kind, time, actor, revision, as_of, input_digest, output_digest, inputs, outputs, "
           "checkpoint, prev_hash, hash FROM decisions")
_INSERT = ("INSERT INTO decisions (seq, id, kind, time, actor, revision, as_of, input_digest, output_digest, inputs, "
           "outputs, checkpoint, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class DecisionLogError(KamError):
    """The decision log cannot be opened, written or read as asked."""


class DecisionLogBusy(DecisionLogError):
    """Another writer held the decision log past the wait (`BUSY_TIMEOUT_S`): nothing was written; try again."""


class UnknownDecision(DecisionLogError):
    """No decision with that id is in the log (never recorded, or pruned by retention)."""


class AlteredRecord(DecisionLogError):
    """A stored decision no longer matches its own hash: it was altered after it was written."""


class BookProvider(Protocol):
    """Anything that hands out the rule book at a revision, such as the rule store."""

    def book(self, rev: str) -> RuleBook: ...


@dataclass(frozen=True, eq=False)
class Decision:
    """One recorded evaluation. `inputs` / `outputs` are the account tables as recorded (object columns, in
    their recorded order; missing keys of a list of dicts read back as null)."""

    id: str
    seq: int
    time: dt.datetime
    actor: str
    revision: str
    as_of: dt.date
    input_digest: str
    inputs: pd.DataFrame
    outputs: pd.DataFrame
    errors: list[RowError]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Finding:
    """Where the chain is broken: the first record (by position `seq`) altered or removed, and how."""

    seq: int | None
    decision_id: str | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain. True when intact; `first` names the earliest break."""

    records: int
    head_seq: int
    head_hash: str
    pruned_through: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if not self.ok:
            return f"chain broken: {self.first}" + (f" (and {len(self.findings) - 1} more)"
                                                     if len(self.findings) > 1 else "")
        pruned = f", records 1..{self.pruned_through} pruned under retention" if self.pruned_through else ""
        records = "1 record" if self.records == 1 else f"{self.records} records"
        return f"chain intact: {records}{pruned}; head {self.head_seq} {self.head_hash}"


@dataclass(frozen=True)
class Difference:
    """One value that came out differently: `row` is 0-based (None for the whole table)."""

    row: int | None
    field: str
    recorded: Any
    reproduced: Any

    def __str__(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        return f"{where}{self.field}: recorded {_shown(self.recorded)}, reproduced {_shown(self.reproduced)}"


@dataclass(frozen=True)
class Reproduction:
    """A past decision evaluated again at its revision and as_of; `identical` when nothing differs."""

    decision_id: str
    revision: str
    as_of: dt.date
    accounts: int
    differences: list[Difference]

    @property
    def identical(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        head = f"decision {self.decision_id} ({self.accounts} accounts, revision {self.revision}, " \
               f"as of {self.as_of.isoformat()})"
        if self.identical:
            return f"{head}: outputs identical"
        return f"{head}: {len(self.differences)} difference(s)"


@dataclass(frozen=True)
class Pruned:
    """What one retention run removed: `decisions` records through position `through`, vouched for by the
    checkpoint record `checkpoint_id` (None when nothing was old enough)."""

    decisions: int
    through: int | None
    checkpoint_id: str | None


def log_path(data_dir: str | Path) -> Path:
    """Where the decision log lives in a data dir."""
    return Path(data_dir) / LOG_FILE


class _WriterTurn:
    """Whose turn it is to write, across processes: an flock on the lock file beside the log. A writer waiting
    for SQLite's write lock sleeps in its busy handler (1, 2, 5 ... 100 ms) however soon the lock is free; one
    waiting for the flock is woken by the kernel the moment it is released (and a dead holder releases it).
    SQLite's lock is still taken inside and stays the guard, so writers without this lock stay safe.

    Without the lock file (it cannot be created or opened, or there is no flock), writers take turns by SQLite's
    lock alone, as before: slower under contention, never unsafe, and a warning says why."""

    def __init__(self, log: Path):
        self.path = log.with_name(log.name + LOCK_SUFFIX)
        self.fd: int | None = None
        if fcntl is None:
            _log.warning("%s: no flock on this system: decision log writers take turns by SQLite's lock alone",
                         log)
            return
        try:  # the log file's permissions, as SQLite gives its -wal and -shm files
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, log.stat().st_mode & 0o666)
        except OSError as e:
            try:  # another user's lock file: flock needs no write access
                self.fd = os.open(self.path, os.O_RDONLY)
            except OSError:
                _log.warning("%s: cannot open the writers' lock file (%s): decision log writers take turns by "
                             "SQLite's lock alone", self.path, e.strerror or e)
                return
        self._closer = weakref.finalize(self, os.close, self.fd)

    @contextmanager
    def held(self) -> Iterator[None]:
        """The lock file held (exclusive) for the block; one thread of a process at a time (the caller's)."""
        if self.fd is None:
            yield
            return
        self._take()
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _take(self) -> None:
        """The lock file, waited for no longer than SQLite's busy timeout: a holder that stalls (stopped, on a
        frozen disk) makes writers fail as SQLite's lock did ("locked"), never hang. Polled, not blocked on: a
        blocking flock cannot time out. The wait between tries starts at 0.1 ms (a write holds it ~0.3 ms)."""
        deadline, pause = None, 0.0001
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if deadline is None:
                deadline = now + BUSY_TIMEOUT_S
            elif now > deadline:
                raise DecisionLogBusy(f"{self.path}: another writer has held the decision log for over "
                                      f"{BUSY_TIMEOUT_S:g} s; try again")
            time.sleep(pause)
            pause = min(pause * 2, 0.002)

    def close(self) -> None:
        if self.fd is not None:
            self._closer()
            self.fd = None


class DecisionLog:
    """An append-only, hash-chained log of decisions in one SQLite file. Safe to share between threads;
    several processes may write the same file (each write holds SQLite's write lock, so the chain stays
    linear; the lock file `<log>.lock` hands the turn from one writer to the next at once). A daemon thread
    checkpoints the WAL in the background and keeps it bounded; `close()` stops it. Open the log again in a
    child process rather than sharing one across fork."""

    def __init__(self, path: Path, db: sqlite3.Connection, checkpoint_db: sqlite3.Connection):
        self.path = path
        self._db = db
        self._lock = threading.Lock()  # this process's writers one at a time (the flock is per open file)
        self._turn = _WriterTurn(path)
        self._closed = False
        self._checkpoint_db = checkpoint_db
        self._checkpoint_problem: str | None = None
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=_checkpoints, args=(weakref.ref(self), self._stop),
                                              name=f"kam-decisions-checkpoint {path.name}", daemon=True)
        weakref.finalize(self, self._stop.set)  # a log dropped unclosed stops its thread too
        self._checkpointer.start()

    # --- opening ---

    @classmethod
    def open(cls, path: str | Path, create: bool = True, durable: bool = True) -> DecisionLog:
        """Open the log at `path`, creating it (and its folder) unless `create` is False. `durable` makes each
        write reach the disk before it returns (survives power loss, not only a killed process)."""
        path = Path(path)
        if not path.exists():
            if not create:
                raise DecisionLogError(f"no decision log at {path}")
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.is_file():
            raise DecisionLogError(f"{path} is not a decision log file")
        db = _connect(path)
        checkpoint_db = None
        try:
            db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            _prepare(db, path)
            db.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints are the background thread's (_checkpoints)
            # A WAL grown past the limit (a long reader kept it from being checkpointed) is cut back to it when
            # it starts over.
            db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            # Its own connection, never waiting on a busy lock: a checkpoint that cannot finish now is retried.
            checkpoint_db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
            checkpoint_db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        except sqlite3.DatabaseError as e:
            _close_all(db, checkpoint_db)
            raise DecisionLogError(f"{path}: cannot open as a decision log: {e}") from None
        except BaseException:
            _close_all(db, checkpoint_db)
            raise
        try:
            return cls(path, db, checkpoint_db)
        except BaseException:  # no thread to start, the file gone meanwhile: nothing left open
            _close_all(db, checkpoint_db)
            raise

    def close(self) -> None:
        """Stop the checkpoint thread, checkpoint the WAL once more (emptying it), close the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._checkpointer is not threading.current_thread():
            self._checkpointer.join(BUSY_TIMEOUT_S + 5)  # a checkpoint waits for the lock file no longer
        try:
            self.checkpoint(empty=True)
        except sqlite3.Error as e:  # the log is whole all the same: the next writer or opener carries on
            _log.warning("%s: the last checkpoint before closing failed: %s", self.path, e)
        finally:
            with self._lock:
                _close_all(self._db, self._checkpoint_db)
                self._turn.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ---

    def record(self, actor: str, revision: str, inputs: Any, outputs: Any,
               errors: Iterable[RowError | Mapping[str, Any]] = (), as_of: dt.date | str | None = None) -> str:
        """Append one decision and return its id. `inputs` / `outputs`: the account tables (DataFrame, list of
        dicts, or one dict); `errors`: the row errors of the evaluation; `as_of`: the date `today()` meant
        (default: today, as the engine's default)."""
        table = table_of(outputs, "outputs")
        return self._record(actor, revision, table_of(inputs, "inputs"), lambda: _outputs_json(errors, table), as_of)

    def record_evaluation(self, actor: str, evaluation: Evaluation, shared: Mapping[str, list[Any]] | None = None,
                          inputs: SealedInputs | None = None, outputs: WrittenOutputs | None = None) -> str:
        """Record an evaluation exactly as it ran: its input table, every output column, its row errors,
        its as_of and its book's revision. `shared`: output columns the caller has already converted by
        `common_cells` (for its own answer), recorded as they are rather than converted again. `inputs`: the
        input table sealed already (`seal_inputs`), taken when it is that of this evaluation's accounts;
        `outputs`: its outputs and row errors written already (`write_outputs`), taken when of this evaluation."""
        if not evaluation.revision:
            raise DecisionLogError("the rule book has no revision: evaluate a book from the rule store")
        source = evaluation.source
        table = inputs if inputs is not None and inputs.accounts is source else _input_table(source)
        written = outputs.json if outputs is not None and outputs.evaluation is evaluation else None
        return self._record(actor, evaluation.revision, table,
                            lambda: written if written is not None else write_outputs(evaluation, shared).json,
                            evaluation.as_of)

    def _record(self, actor: str, revision: str, inputs: dict[str, Any] | SealedInputs,
                outputs_json: Callable[[], bytes], as_of: dt.date | str | None) -> str:
        """Append a decision of `inputs` (a table, or sealed already) and the outputs `outputs_json` gives (the
        output table and row errors as stored, written while a large input table is sealed)."""
        if not isinstance(actor, str) or not actor.strip():
            raise DecisionLogError("a decision needs an actor: who asked for it")
        if not isinstance(revision, str) or not revision.strip():
            raise DecisionLogError("a decision needs the rules revision that produced it")
        day = _as_of(as_of)

        def seal_outputs() -> tuple[str, bytes]:
            return _seal(outputs_json())

        if isinstance(inputs, SealedInputs):
            (input_digest, input_blob), (output_digest, output_blob) = inputs.sealed, seal_outputs()
        elif len(input_bytes := _table_json(inputs)) < SEAL_ASIDE_BYTES:  # (a thread costs more than sealing a
            (input_digest, input_blob), (output_digest, output_blob) = _seal(input_bytes), seal_outputs()  # small one)
        else:  # a large input table is sealed meanwhile, on a thread of its own
            with Aside(_seal, input_bytes, name="kam-seal") as inputs_sealed:
                output_digest, output_blob = seal_outputs()
            input_digest, input_blob = inputs_sealed.result()
        fields = {"kind": "decision", "actor": actor, "revision": revision, "as_of": day.isoformat(),
                  "input_digest": input_digest, "output_digest": output_digest,
                  "inputs": input_blob, "outputs": output_blob, "checkpoint": None}
        with self._writing():
            return self._append(fields)

    def prune(self, keep_days: float | None = None, before: dt.datetime | dt.date | None = None,
              actor: str = "retention") -> Pruned:
        """Remove the oldest records: those written before `before`, or more than `keep_days` days ago. A
        checkpoint record appended to the chain vouches for the last removed record, so `verify` still passes
        and still catches tampering in what is left. Refuses to prune a log that does not verify."""
        if (keep_days is None) == (before is None):
            raise DecisionLogError("give either keep_days or before")
        if keep_days is not None:
            if keep_days < 0:
                raise DecisionLogError("keep_days cannot be negative")
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
        else:
            cutoff = _utc(before)
        planned = self._prune_plan(cutoff.strftime(_TIME_FORMAT))
        if planned is None:
            return Pruned(0, None, None)
        first, plan = planned
        with self._writing():
            now = self._db.execute("SELECT MIN(seq), (SELECT hash FROM decisions WHERE seq = ?) FROM decisions",
                                   (plan["through"],)).fetchone()
            if now != (first, plan["through_hash"]):
                raise DecisionLogError("the oldest records changed while pruning (another prune?): try again")
            self._db.execute("DELETE FROM decisions WHERE seq <= ?", (plan["through"],))
            checkpoint_id = self._append({"kind": "checkpoint", "actor": actor, "revision": None, "as_of": None,
                                          "input_digest": None, "output_digest": None, "inputs": None,
                                          "outputs": None, "checkpoint": canonical_json(plan).decode()})
        with self._exclusive():
            self._db.execute("PRAGMA incremental_vacuum")
        return Pruned(plan["decisions"], plan["through"], checkpoint_id)

    def _prune_plan(self, cutoff: str) -> tuple[int, dict[str, Any]] | None:
        """The oldest record and the checkpoint that will stand for the records removed, found on a verified
        snapshot: verifying takes a while, and writers go on meanwhile (the write transaction then only checks
        that the oldest records are still the ones verified)."""
        db = _connect(self.path)
        try:
            db.execute("BEGIN")
            check = _verify(db)
            if not check.ok:
                raise DecisionLogError(f"the decision log does not verify, so pruning could hide tampering: {check}")
            row = db.execute("SELECT seq FROM decisions WHERE time >= ? ORDER BY seq LIMIT 1", (cutoff,)).fetchone()
            # A prefix only: a record is kept if any record before it is kept, so the chain left is unbroken.
            through = row[0] - 1 if row else check.head_seq
            count, through_hash, first, oldest, newest = db.execute(
                "SELECT (SELECT COUNT(*) FROM decisions WHERE seq <= ?1 AND kind = 'decision'), "
                "(SELECT hash FROM decisions WHERE seq = ?1), MIN(seq), MIN(time), MAX(time) FROM decisions "
                "WHERE seq <= ?1", (through,)).fetchone()
        finally:
            db.close()
        if not count:  # nothing old enough, or only earlier checkpoints
            return None
        return first, {"through": through, "through_hash": through_hash, "decisions": count, "before": cutoff,
                       "oldest": oldest, "newest": newest}

    def checkpoint(self, empty: bool = False) -> tuple[int, int]:
        """Copy the WAL back into the log file as far as readers allow (PASSIVE: writers go on meanwhile). When
        the WAL has grown past WAL_LIMIT_BYTES, copy the last frames with writers held off by the lock file (in
        every process) for that moment, so the next writer starts the WAL over from its beginning; `empty`
        truncates it to nothing instead. Returns the WAL's frames and how many of them are in the log file now.
        The background thread calls this every CHECKPOINT_EVERY_S; so may anyone."""
        db = self._checkpoint_db
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        try:
            size = os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            size = 0
        if empty or size > WAL_LIMIT_BYTES:
            # Catch up once more outside the hold, so that what is left to copy (and fsync) while writers wait
            # is only what was written meanwhile: a hold of a few ms, against 20-90 ms for a whole WAL.
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # Busy timeout 0: a writer without the lock file, or a reader still on older frames, makes it stop
            # at once with what it could copy; the next round tries again.
            with self._exclusive():
                busy, frames, copied = db.execute(
                    f"PRAGMA wal_checkpoint({'TRUNCATE' if empty else 'PASSIVE'})").fetchone()
        return frames, copied

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This log's turn to write: its threads one at a time, then processes one at a time (the lock file)."""
        with self._lock, self._turn.held():
            yield

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction. IMMEDIATE takes SQLite's write lock before the head is read, so two writers
        (threads or processes) can never link to the same record."""
        with self._exclusive():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _append(self, fields: dict[str, Any]) -> str:
        head = self._db.execute("SELECT seq, hash FROM head").fetchone()
        if head is None:
            raise DecisionLogError(f"{self.path}: the head marker is missing; run `kam decisions verify`")
        seq, prev_hash = head[0] + 1, head[1]
        record = {**fields, "seq": seq, "id": uuid.uuid4().hex, "prev_hash": prev_hash,
                  "time": dt.datetime.now(dt.UTC).strftime(_TIME_FORMAT)}
        record["hash"] = _record_hash(record)
        self._db.execute(_INSERT, [record[k] for k in _FIELDS])
        self._db.execute("UPDATE head SET seq = ?, hash = ?", (seq, record["hash"]))
        return record["id"]

    # --- reading ---

    def get(self, decision_id: str) -> Decision:
        """The decision with that id, its tables decoded. Raises UnknownDecision, or AlteredRecord when the
        record does not match its own hash."""
        if not isinstance(decision_id, str):
            raise UnknownDecision(f"{decision_id!r} is not a decision id")
        with self._lock:
            row = self._db.execute(_SELECT + " WHERE id = ?", (decision_id,)).fetchone()
        if row is None:
            raise UnknownDecision(f"no decision {decision_id} in the log (never recorded, or pruned)")
        r = _Row(*row)
        if r.kind != "decision":
            raise UnknownDecision(f"{decision_id} is a retention checkpoint, not a decision")
        problem = _self_check(r)
        if problem:
            raise AlteredRecord(f"decision {decision_id} (record {r.seq}) {problem}: it was altered")
        outputs = _parse(decompress(r.outputs))
        return Decision(r.id, r.seq, _parse_time(r.time), r.actor, r.revision, dt.date.fromisoformat(r.as_of),
                        r.input_digest, frame_of(_parse(decompress(r.inputs))), frame_of(outputs["outputs"]),
                        [RowError(**e) for e in outputs["errors"]], r.prev_hash, r.hash)

    def verify(self) -> Verification:
        """Walk the whole chain on a snapshot of the log (writers carry on meanwhile) and report every record
        altered or removed, the first one first."""
        db = _connect(self.path)
        try:
            db.execute("BEGIN")
            return _verify(db)
        finally:
            db.close()

    def reproduce(self, decision_id: str, books: BookProvider) -> Reproduction:
        """Evaluate the decision's stored inputs again with the rule book at its revision and its as_of, and
        compare with the stored outputs and row errors (exactly; null equals null, 1 equals 1.0)."""
        decision = self.get(decision_id)
        book = books.book(decision.revision)
        if book.revision is not None and book.revision != decision.revision:
            raise DecisionLogError(f"asked for the rule book at {decision.revision}, got {book.revision}")
        ev = book.evaluate(decision.inputs, as_of=decision.as_of)
        differences: list[Difference] = []
        recorded = decision.outputs
        if len(recorded) != len(ev.input):
            differences.append(Difference(None, "accounts", len(recorded), len(ev.input)))
        produced = set(ev.output_names)
        reproduced = output_table(ev)
        names = reproduced["columns"]
        for j, name in enumerate(recorded.columns):
            if name not in produced:
                differences.append(Difference(None, str(name), "a recorded output", "not an output at this revision"))
                continue
            # Through the same encoding as the record, so both sides hold the same kinds of values.
            again = _parse(canonical_json(reproduced["values"][names.index(name)]))
            for i, (a, b) in enumerate(zip(recorded.iloc[:, j].tolist(), again, strict=False)):
                if not _same(a, b):
                    differences.append(Difference(i, str(name), a, b))
        recorded_errors = _error_keys(decision.errors)
        reproduced_errors = _error_keys(ev.errors)
        for key in sorted(recorded_errors - reproduced_errors, key=repr):
            differences.append(Difference(key[0], f"error {key[1] or key[2] or ''}".strip(), key[3], None))
        for key in sorted(reproduced_errors - recorded_errors, key=repr):
            differences.append(Difference(key[0], f"error {key[1] or key[2] or ''}".strip(), None, key[3]))
        differences.sort(key=lambda d: (-1 if d.row is None else d.row, d.field))
        return Reproduction(decision.id, decision.revision, decision.as_of, len(recorded), differences)


@dataclass(frozen=True)
class SealedInputs:
    """The input table of an evaluation of `accounts` (the very object given to the engine), in its stored form:
    its digest and its compressed bytes (`_seal`)."""

    accounts: Any
    sealed: tuple[str, bytes]


def seal_inputs(accounts: pd.DataFrame | Records) -> SealedInputs:
    """The input table of an evaluation of `accounts` (a DataFrame, or a request's few records), sealed as
    `record_evaluation` stores it. It reads the accounts only, so a large batch's can be made while they are
    evaluated (on another thread: most of it is numpy, orjson, zstd and hashlib), and handed to
    `record_evaluation`."""
    return SealedInputs(accounts, _seal(_table_json(_input_table(accounts))))


@dataclass(frozen=True)
class WrittenOutputs:
    """An evaluation's output table and row errors, written as the log stores them (before they are sealed)."""

    evaluation: Any
    json: bytes


def write_outputs(evaluation: Evaluation, shared: Mapping[str, list[Any]] | None = None) -> WrittenOutputs:
    """The outputs and row errors `record_evaluation` stores of `evaluation` (`shared` as it takes them), written
    ahead: a caller can write them on its own thread, then leave the rest (compressing, hashing and appending
    them, which let go of the GIL) to another while it goes on."""
    return WrittenOutputs(evaluation, _outputs_json(evaluation.errors, _output_table(evaluation, shared or {},
                                                                                     arrays=True)))


def _outputs_json(errors: Iterable[RowError | Mapping[str, Any]], outputs: dict[str, Any]) -> bytes:
    return _table_json({"errors": [_error_dict(e) for e in errors], "outputs": outputs})


def _input_table(accounts: pd.DataFrame | Records) -> dict[str, Any]:
    """The input table `record_evaluation` stores of an evaluation's accounts (`Evaluation.source`)."""
    if isinstance(accounts, Records):  # a request's few records as they came (the frame is not built for the log)
        return table_of(accounts.records, "inputs")
    # float columns handed to the encoder as arrays (see _number_cells)
    return _series_table(list(accounts.items()), len(accounts), "inputs", arrays=True)


# --- the stored form ---------------------------------------------------------------------------------------


def table_of(data: Any, what: str = "table") -> dict[str, Any]:
    """An account table in its canonical, JSON-ready form: columns in order, values column by column. Takes a
    DataFrame (index not kept), a list of dicts (missing keys become null) or one dict."""
    if isinstance(data, pd.DataFrame):
        return _series_table(list(data.items()), len(data), what)
    if isinstance(data, Mapping):
        records = [data]
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        records = list(data)
    else:
        records = None
    if records is None or not all(isinstance(r, Mapping) for r in records):
        raise DecisionLogError(f"{what} must be a DataFrame or a list of {{field: value}} mappings")
    if len(records) == 1:  # one account (most requests): each cell on its own, plain ones as they are
        record = records[0]
        values = [[v] if (t := type(v)) in _PLAIN or t is float and v - v == 0 else _column_cells([v], what, k)
                  for k, v in record.items()]
        return {"columns": _column_cells(list(record), what), "rows": 1, "values": values}
    names = list(dict.fromkeys(k for r in records for k in r))
    values = [_column_cells([r.get(k) for r in records], what, k) for k in names]
    return {"columns": _column_cells(names, what), "rows": len(records), "values": values}


def output_table(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation's outputs in canonical form, read from its state's columns (the values of its `frame`,
    without building that frame): every output null for a row whose input could not be read."""
    return _output_table(evaluation, {}, arrays=False)


def _output_table(evaluation: Evaluation, shared: Mapping[str, list[Any]], arrays: bool) -> dict[str, Any]:
    """`output_table`, taking the columns in `shared` as they are; `arrays`: float columns may be arrays (see
    `_number_cells`)."""
    state = evaluation.state
    names = evaluation.output_names
    if state.n == 1 and not state.excluded[0]:  # one account (most requests): its cells one by one
        values = [_one_cell(state.columns[name], name) for name in names]
    else:
        excluded = state.excluded if state.excluded.any() else None
        values = [cells if (cells := shared.get(name)) is not None
                  else _vec_cells(state.columns[name], state.n, excluded, name, arrays) for name in names]
    return {"columns": _column_cells(names, "outputs"), "rows": state.n, "values": values}


def _one_cell(vec: Vec, name: str) -> list[Any]:
    """`_vec_cells` of one account's column: numbers, flags and text as they are held; a list of text as it
    is; anything else through `_vec_cells`."""
    if type(vec) is ListVec:
        v, kind = vec.values[0], vec.type
        if kind is Type.NUMBER:
            return [v if v - v == 0 else {"$float": repr(v)}]
        if kind is Type.BOOLEAN:  # the codes FALSE 0, NULL 1, TRUE 2
            return [None if v == 1 else v == 2]
        if kind is Type.STRING and (v is None or type(v) is str):
            return [v]
    elif vec.type is Type.LIST and vec.data.dtype == object:
        v = vec.data[0]
        if v is None or type(v) is list and all(type(x) is str for x in v):
            return [v]
    return _vec_cells(vec, 1, None, name)


def _vec_cells(vec: Vec, n: int, excluded: np.ndarray | None, name: str,
               arrays: bool = False) -> list[Any] | np.ndarray:
    """Text and booleans straight from the engine's column (the values `to_array` would hold, without building
    a pandas array for them: half the cost for one account); any other type through `to_array`."""
    if type(vec) is ListVec and vec.type is not Type.DATE:  # a few accounts' outputs held as plain values
        return _plain_cells(vec.values, vec.type, excluded, name)
    cells = common_cells(vec, n, excluded)
    if cells is not None:
        return cells
    if vec.type is Type.STRING and vec.data.dtype.kind == "i":  # text that is not all str
        return _column_cells(_text(vec, n, excluded).tolist(), "outputs", name)
    return _array_cells(vec.to_array(n), excluded, name, arrays)


def common_cells(vec: Vec, n: int, excluded: np.ndarray | None) -> list[Any] | None:
    """The cells of an output column as both the decision log and the service's answer hold them, when they
    hold them alike: text, booleans, lists of text (and null for a missing value or an `excluded` row).
    None for any other column (numbers, dates: the two write them differently). Converted once, they serve
    both (converting them twice was about 5% of a 10,000-account request's time)."""
    if type(vec) is ListVec:
        return None
    data = vec.data
    if vec.type is Type.STRING and data.dtype.kind == "i":
        if vec.cats is not None and not set(map(type, list(vec.cats))) <= _TEXT:
            return None
        return _text(vec, n, excluded).tolist()
    if vec.type is Type.BOOLEAN and data.dtype == np.int8:
        flags = np.broadcast_to(data, (n,))
        truth = np.empty(n, dtype=object)
        truth[:] = (flags == TRUE).tolist()
        truth[flags == NULL if excluded is None else (flags == NULL) | excluded] = None
        return truth.tolist()
    if vec.type is Type.LIST and data.dtype == object:
        cells = vec.full(n).data.tolist()
        if excluded is not None:
            for i in np.flatnonzero(excluded).tolist():
                cells[i] = None
        if set(map(type, cells)) <= _LIST_OR_NULL and \
                set(map(type, itertools.chain.from_iterable(filter(None, cells)))) <= _TEXT:
            return cells
    return None


def _text(vec: Vec, n: int, excluded: np.ndarray | None) -> np.ndarray:
    """A text column's values as objects (null where missing or `excluded`), its categories looked up once."""
    codes = np.broadcast_to(vec.data, (n,))
    cats = vec.cats if vec.cats is not None else np.empty(0, dtype=object)
    text = np.empty(n, dtype=object)
    if len(cats):
        text[:] = np.asarray(cats, dtype=object).take(np.maximum(codes, 0))
    text[codes < 0 if excluded is None else (codes < 0) | excluded] = None
    return text


def _plain_cells(values: list[Any], kind: Type, excluded: np.ndarray | None, name: str) -> list[Any]:
    """`_vec_cells` of a column held as per-account values (kamcore.expressions.scalar): the same cells."""
    if excluded is None:
        if kind is Type.NUMBER:
            return [v if v - v == 0 else {"$float": repr(v)} for v in values]
        if kind is Type.BOOLEAN:
            return [None if v == 1 else v == 2 for v in values]
        return _column_cells(values, "outputs", name)
    dead = excluded.tolist()
    if kind is Type.NUMBER:  # floats as they are, NaN and ±infinity tagged (as _number_cells)
        return [{"$float": "nan"} if d else v if v - v == 0 else {"$float": repr(v)}
                for v, d in zip(values, dead, strict=True)]
    if kind is Type.BOOLEAN:  # the codes FALSE 0, NULL 1, TRUE 2
        return [None if d or v == 1 else v == 2 for v, d in zip(values, dead, strict=True)]
    return _column_cells([None if d else v for v, d in zip(values, dead, strict=True)], "outputs", name)


def _array_cells(array: Any, excluded: np.ndarray | None, name: str,
                 arrays: bool = False) -> list[Any] | np.ndarray:
    """One output column (as `Vec.to_array` gives it: a new array) as canonical cells; `excluded` rows null."""
    if isinstance(array, np.ndarray) and array.dtype.kind == "f":
        if excluded is not None:
            array[excluded] = np.nan
        return _number_cells(array, arrays)
    if isinstance(array, pd.Categorical):  # text: categories looked up once, not per cell
        codes = array.codes
        text = np.empty(len(codes), dtype=object)
        if len(array.categories):
            text[:] = array.categories.to_numpy(dtype=object).take(np.maximum(codes, 0))
        null = codes < 0 if excluded is None else (codes < 0) | excluded
        text[null] = None
        return _column_cells(text.tolist(), "outputs", name)
    if isinstance(array, pd.arrays.BooleanArray):
        truth = array.to_numpy(dtype=object, na_value=None)
        if excluded is not None:
            truth[excluded] = None
        return truth.tolist()
    if isinstance(array, np.ndarray) and array.dtype.kind == "M":  # dates, dates and times: as the frame's stamps
        if excluded is not None:
            array[excluded] = np.datetime64("NaT")
        return _datetime_cells(array, "outputs", name)
    if isinstance(array, np.ndarray) and array.dtype == object:
        if excluded is not None:
            array[excluded] = None
        return _column_cells(array.tolist(), "outputs", name)
    series = pd.Series(array, copy=False)  # anything else, as the frame holds it
    if excluded is not None:
        series = series.mask(pd.Series(excluded))
    return _column_cells(series.tolist(), "outputs", name)


def _series_table(columns: list[tuple[Any, pd.Series]], rows: int, what: str, arrays: bool = False) -> dict[str, Any]:
    values = []
    for name, series in columns:
        kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
        # Numbers and booleans need no per-cell work but NaN and infinity in a float column.
        if kind == "f":
            values.append(_number_cells(series.to_numpy(), arrays))
        elif kind in ("i", "u", "b"):
            values.append(series.tolist())
        elif isinstance(series.dtype, pd.StringDtype):
            text = _arrow_text_json(series) if arrays else None
            values.append(text if text is not None else _text_cells(series, what, name))
        elif kind == "M":  # dates and times without a time zone (an xlsx upload's date columns)
            values.append(_datetime_cells(series.to_numpy(), what, name))
        else:
            values.append(_column_cells(series.tolist(), what, name))
    return {"columns": _column_cells([name for name, _ in columns], what), "rows": rows, "values": values}


def _datetime_cells(values: np.ndarray, what: str, name: Any) -> list[Any]:
    """A datetime64 column's cells, the same as `_column_cells` of its Timestamps (`{"$datetime": isoformat}`,
    null for NaT), with their text written by numpy for the column at once (an xlsx upload's date columns). A
    value with nanoseconds (`{"$timestamp": ...}`) or beyond the years 1-9999 of Python's datetime is left to
    `_column_cells`, one by one as before."""
    unit = np.datetime_data(values.dtype)[0]
    nat = np.isnat(values)
    if unit == "ns":  # (its range, 1677-2262, is within 1-9999)
        odd = ~nat & (values.view(np.int64) % 1000 != 0)
    elif unit in ("s", "ms", "us"):  # the units pandas holds; bounds in the column's own unit, so nothing overflows
        first, after = np.datetime64("0001-01-01", unit), (np.datetime64("9999-12-31", "D") + 1).astype(values.dtype)
        with np.errstate(invalid="ignore"):
            odd = ~nat & ((values < first) | (values >= after))
    else:
        return _column_cells(pd.Series(values, copy=False).tolist(), what, name)
    # Each distinct moment written once (numpy's text costs ~0.6 us a value; a column of dates repeats them)
    moments, each = np.unique(np.where(odd | nat, np.datetime64(0, "us"), values).astype("datetime64[us]"),
                              return_inverse=True)
    texts = np.datetime_as_string(moments, unit="s").astype(object)
    fraction = moments.view(np.int64) % 1_000_000 != 0  # isoformat writes microseconds only when there are some
    if fraction.any():
        texts[fraction] = np.datetime_as_string(moments[fraction], unit="us")
    cells: list[Any] = [{"$datetime": text} for text in texts.take(each.ravel()).tolist()]
    for i in np.flatnonzero(nat).tolist():
        cells[i] = None
    if odd.any():
        where = np.flatnonzero(odd)
        for i, cell in zip(where.tolist(), _column_cells(pd.Series(values[where]).tolist(), what, name), strict=True):
            cells[i] = cell
    return cells


def _text_cells(series: pd.Series, what: str, name: Any) -> list[Any]:
    """A text column's cells (the same as `_column_cells` of its `tolist()`): the gaps found by the column's own
    mask, each written as its missing value is (NaN tagged, NA null), rather than every cell looked at."""
    cells = series.tolist()
    gap = series.dtype.na_value
    if not set(map(type, cells)) <= {str, type(gap)}:
        return _column_cells(cells, what, name)
    missing = np.flatnonzero(series.isna().to_numpy()).tolist()
    tag = _cell(gap) if missing else None
    if isinstance(tag, dict):  # NaN: {"$float": "nan"}, one dict per cell as before
        ((key, text),) = tag.items()
        for i in missing:
            cells[i] = {key: text}
    else:
        for i in missing:
            cells[i] = tag
    return cells


class _TextJson:
    """A text column's cells written as JSON already (`_arrow_text_json`), for `_table_json` to put in as they are;
    `series` for the standard library's path, which writes its cells itself. (Not a dataclass: orjson would write
    one as an object of its fields.)"""

    __slots__ = ("json", "series")

    def __init__(self, json: bytes, series: pd.Series):
        self.json, self.series = json, series


# The bytes orjson writes escaped in text are the control characters (below 0x20), `"` and `\` (tested over
# every code point): none of them is ever part of a longer character's UTF-8 bytes.
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_NO_BYTES = np.zeros(0, dtype=np.uint8)


def _arrow_text_json(series: pd.Series) -> _TextJson | None:
    """The JSON list orjson writes of `_text_cells(series)` (the same bytes), written by Arrow's kernels, which let
    go of the GIL: for a text column Arrow holds (what a large JSON batch's text becomes) with nothing in it that
    JSON escapes; else None. ~0.4 ms for 10,000 cells against ~1.1 ms, all of it holding the GIL."""
    arrow = arrow_text(series)
    if arrow is None:
        return None
    offsets, data = arrow_bytes(arrow)
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]] if data is not None else _NO_BYTES
    if (raw < 0x20).any() or (raw == _QUOTE).any() or (raw == _BACKSLASH).any():
        return None
    try:  # text that is not UTF-8 (Arrow can be handed such bytes) is refused by `_text_cells`, as it always was
        arrow.validate(full=True)
    except pa.ArrowInvalid:
        return None
    gap = _cell(series.dtype.na_value)  # a missing cell as _text_cells writes it: null, or NaN tagged
    quote = pa.scalar('"', arrow.type)
    quoted = pc.binary_join_element_wise(quote, arrow, quote, pa.scalar("", arrow.type))  # (the last: separator)
    cells = pc.fill_null(quoted, pa.scalar(_stdlib_json(gap).decode(), arrow.type))
    listed = pa.LargeListArray.from_arrays(pa.array([0, len(cells)], type=pa.int64()), cells)
    joined = pc.binary_join(listed, pa.scalar(",", arrow.type))[0]
    return _TextJson(b"[" + joined.as_buffer().to_pybytes() + b"]", series)


def _number_cells(values: np.ndarray, arrays: bool = False) -> list[Any] | np.ndarray:
    """A float column's cells: NaN and ±infinity tagged (JSON has no word for them), the rest plain floats.
    `arrays`: a float64 column without NaN or infinity is given as the array itself, which `_table_json`
    writes as the same text its floats make, without a Python float per cell."""
    if arrays and values.dtype == np.float64 and np.isfinite(values).all():
        return np.ascontiguousarray(values)
    cells = values.tolist()
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        # each kind found by numpy; the tag as repr() writes it (every NaN is 'nan'), one dict per cell
        for i in np.flatnonzero(np.isnan(values)).tolist():
            cells[i] = {"$float": "nan"}
        for i in np.flatnonzero(values == np.inf).tolist():
            cells[i] = {"$float": "inf"}
        for i in np.flatnonzero(values == -np.inf).tolist():
            cells[i] = {"$float": "-inf"}
    return cells


def frame_of(table: Mapping[str, Any]) -> pd.DataFrame:
    """The DataFrame a canonical table stands for: object columns holding the decoded values."""
    columns = {j: pd.Series(v, dtype=object) for j, v in enumerate(table["values"])}
    frame = pd.DataFrame(columns, index=pd.RangeIndex(table["rows"]))
    frame.columns = pd.Index(table["columns"], dtype=object)
    return frame


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_codecs = threading.local()  # zstd (de)compressor objects are not safe to share between threads
# Compressors not in use, taken by one call at a time (list pop and append are atomic): a table may be compressed
# on a short-lived thread (`Aside`), which should not build a compressor of its own each time.
_idle_compressors: list[zstandard.ZstdCompressor] = []


def compress(data: bytes) -> bytes:
    """A stored table: a zstd frame (which holds its own length). The digest is over `data`, never this."""
    try:
        compressor = _idle_compressors.pop()
    except IndexError:
        compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
    try:
        return compressor.compress(data)
    finally:
        _idle_compressors.append(compressor)


def _seal(data: bytes) -> tuple[str, bytes]:
    """A table's digest and its stored form (`compress`). Of a large table the digest is taken on another thread
    while this one compresses: hashlib and zstd let go of the GIL, and the machine has a core to spare."""
    if len(data) < SEAL_ASIDE_BYTES:
        return _digest(data), compress(data)
    with Aside(_digest, data, name="kam-seal") as digest:
        blob = compress(data)
    return digest.result(), blob


def decompress(blob: bytes) -> bytes:
    """A stored table's bytes: a zstd frame, or a zlib stream as logs written before zstd hold."""
    if blob[:4] != _ZSTD_MAGIC:
        return zlib.decompress(blob)
    if not hasattr(_codecs, "decompressor"):
        _codecs.decompressor = zstandard.ZstdDecompressor()
    return _codecs.decompressor.decompress(blob)


def canonical_json(value: Any) -> bytes:
    """The one byte form of an already encoded table: UTF-8 (Chinese kept as is), sorted keys, no spaces. By
    orjson (6x faster than the standard library on a 10,000-row table); integers beyond 64 bits take the
    standard library's path. A table's digest is over the bytes stored, so the writer's choice is never
    re-derived."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _stdlib_json(value)


def _table_json(value: Any) -> bytes:
    """`canonical_json` of a table whose float columns may be float64 arrays (`_number_cells`): orjson writes
    such an array as the list of its floats (the same shortest round-trip text; tested), and the standard
    library's path is given that list. Only the arrays are written by orjson's numpy support: anything else
    orjson refuses without it (a numpy scalar in a row error's field) still sends the whole table down the
    standard library's path, as `canonical_json` does."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=_float_array_json)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          default=_array_list).encode()


def _float_array_json(value: Any) -> Any:
    if type(value) is np.ndarray:
        return orjson.Fragment(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))
    if type(value) is _TextJson:
        return orjson.Fragment(value.json)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _array_list(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if type(value) is _TextJson:
        return _text_cells(value.series, "inputs", value.series.name)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _stdlib_json(value: Any) -> bytes:
    """The canonical form by the standard library: what record hashes are computed over (they are recomputed
    by `verify` for every record ever written, so their byte form never changes)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _parse(data: bytes) -> Any:
    return json.loads(data, object_hook=_decoded)


class _Unsupported(Exception):
    def __init__(self, value: Any):
        self.value = value


_NAMES = object()  # stands for "the column names" where a column is expected


def _column_cells(values: list[Any], what: str, column: Any = _NAMES) -> list[Any]:
    kinds = set(map(type, values))  # by C loops: text, numbers, flags and lists of text need no per-cell work
    if kinds <= _PLAIN or kinds <= _LIST_OR_NULL and \
            set(map(type, itertools.chain.from_iterable(filter(None, values)))) <= _TEXT:
        return list(values)
    try:
        # `v - v == 0`: a finite float (NaN and ±infinity need a tag); a list of text is stored as it is
        return [v if (t := type(v)) in _PLAIN or t is float and v - v == 0
                or t is list and all(type(x) is str for x in v) else _cell(v) for v in values]
    except _Unsupported as e:
        row = next(i for i, v in enumerate(values) if not _encodes(v))
        where = f"column name {row}" if column is _NAMES else f"row {row}, column {column!r}"
        raise DecisionLogError(f"{what}: {where}: cannot record {type(e.value).__name__} value {e.value!r}") from None


# Tags for values JSON has no word for; a one-key object with a tag key is read back as that value.
_DECODERS = {
    "$date": dt.date.fromisoformat,
    "$datetime": dt.datetime.fromisoformat,
    "$timestamp": pd.Timestamp,  # nanoseconds, which datetime would drop
    "$float": float,  # nan, inf, -inf
    "$decimal": Decimal,
    "$dict": dict,  # a mapping that would otherwise look like a tag, as [key, value] pairs
}


def _encodes(v: Any) -> bool:
    try:
        _cell(v)
    except _Unsupported:
        return False
    return True


_PLAIN = frozenset({str, int, bool, type(None)})  # stored as they are
_LIST_OR_NULL = frozenset({list, type(None)})
_TEXT = frozenset({str})


def _cell(v: Any) -> Any:
    """One value in its JSON-ready form; numpy and pandas scalars become the plain Python value they hold."""
    t = type(v)
    if v is None or t is str or t is bool or t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$float": repr(v)}
    if v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        if isinstance(v, np.datetime64 | np.timedelta64) and np.isnat(v):
            return None
        return _cell(pd.Timestamp(v) if isinstance(v, np.datetime64) else v.item())
    if isinstance(v, pd.Timestamp):
        return {"$timestamp": v.isoformat()} if v.nanosecond else {"$datetime": v.to_pydatetime().isoformat()}
    if isinstance(v, dt.datetime):
        return {"$datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, bool | int):  # subclasses such as IntEnum
        return bool(v) if isinstance(v, bool) else int(v)
    if isinstance(v, float):
        return _cell(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, list | tuple | np.ndarray):
        return [_cell(x) for x in v]
    if isinstance(v, Mapping):
        if not all(isinstance(k, str) for k in v):
            raise _Unsupported(v)
        if len(v) == 1 and next(iter(v)) in _DECODERS:
            return {"$dict": [[k, _cell(x)] for k, x in v.items()]}
        return {k: _cell(x) for k, x in v.items()}
    raise _Unsupported(v)


def _decoded(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        key = next(iter(obj))
        if key in _DECODERS:
            return _DECODERS[key](obj[key])
    return obj


def _error_dict(e: RowError | Mapping[str, Any]) -> dict[str, Any]:
    d = e.to_dict() if isinstance(e, RowError) else dict(e)
    try:
        return {"row": int(d["row"]), "rule": d.get("rule"), "field": d.get("field"), "message": str(d["message"]),
                "severity": d.get("severity", "error")}
    except (KeyError, TypeError, ValueError):
        raise DecisionLogError(f"a row error needs row and message: {e!r}") from None


def _error_keys(errors: Iterable[RowError]) -> set[tuple[Any, ...]]:
    return {(e.row, e.rule, e.field, e.message) for e in errors}


def _same(a: Any, b: Any) -> bool:
    if _is_null(a) or _is_null(b):
        return _is_null(a) and _is_null(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _is_null(v: Any) -> bool:
    return v is None or isinstance(v, float) and math.isnan(v)


def _shown(v: Any) -> str:
    return "null" if _is_null(v) else repr(v)


# --- the chain ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    seq: int
    id: str
    kind: str
    time: str
    actor: str
    revision: str | None
    as_of: str | None
    input_digest: str | None
    output_digest: str | None
    inputs: bytes | None
    outputs: bytes | None
    checkpoint: str | None
    prev_hash: str
    hash: str


def _record_hash(r: Mapping[str, Any]) -> str:
    """sha256 over the record's stored fields (its tables through their digests) and the previous hash."""
    fields = {"v": HASH_FORMAT, **{k: r[k] for k in ("seq", "id", "kind", "time", "actor", "revision", "as_of",
                                                    "input_digest", "output_digest", "checkpoint", "prev_hash")}}
    return _digest(_hashed_json(fields))


def _hashed_json(fields: dict[str, Any]) -> bytes:
    """The bytes a record hash is over: the standard library's canonical form (`_stdlib_json`), which orjson
    writes byte for byte for these fields (text, whole numbers, nulls; tested over every control character
    and random text) five times faster; anything orjson refuses takes the standard library's path."""
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _stdlib_json(fields)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _self_check(r: _Row) -> str | None:
    """Why a record does not match itself (tables against digests, fields against hash), or None."""
    if r.kind == "decision":
        for name, blob, digest in (("inputs", r.inputs, r.input_digest), ("outputs", r.outputs, r.output_digest)):
            try:
                data = decompress(blob) if isinstance(blob, bytes) else None
            except (zlib.error, zstandard.ZstdError):
                data = None
            if data is None or _digest(data) != digest:
                return f"has {name} that do not match their digest"
    if _record_hash(r.__dict__) != r.hash:
        return "does not match its hash"
    return None


def _verify(db: sqlite3.Connection) -> Verification:
    findings: list[Finding] = []
    first: _Row | None = None
    prev: _Row | None = None
    checkpoints: list[tuple[int, int, str]] = []  # (through, checkpoint seq, through_hash)
    altered_checkpoints: list[int] = []
    records = 0
    for row in db.execute(_SELECT + " ORDER BY seq"):
        r = _Row(*row)
        records += 1
        problem = _self_check(r)
        if problem:
            findings.append(Finding(r.seq, r.id, f"record {r.seq} ({r.kind} {r.id}) {problem}: it was altered"))
            if r.kind == "checkpoint":
                altered_checkpoints.append(r.seq)
        elif r.kind == "checkpoint":
            try:
                cp = json.loads(r.checkpoint or "")
                checkpoints.append((int(cp["through"]), r.seq, str(cp["through_hash"])))
            except (ValueError, KeyError, TypeError):
                findings.append(Finding(r.seq, r.id, f"record {r.seq} (checkpoint {r.id}) cannot be read"))
        if prev is None:
            first = r
        elif r.seq != prev.seq + 1:
            findings.append(Finding(prev.seq + 1, None, f"{_records(prev.seq + 1, r.seq - 1)} removed "
                                    f"(between record {prev.seq} and record {r.seq})"))
        elif r.prev_hash != prev.hash:
            findings.append(Finding(prev.seq, prev.id, f"record {prev.seq} ({prev.kind} {prev.id}) was altered or "
                                    f"replaced: record {r.seq} does not link to it"))
        prev = r
    pruned_through = 0
    if first is not None:
        through, cp_seq, through_hash = max(checkpoints, default=(0, None, GENESIS))
        pruned_through = through
        if through < first.seq - 1:
            covered = f"pruning covered only 1..{through}" if through else "no checkpoint covers them"
            if altered_checkpoints:
                covered += f"; checkpoint record {altered_checkpoints[-1]} was altered"
            findings.append(Finding(through + 1, None, f"{_records(through + 1, first.seq - 1)} removed "
                                    f"from the start ({covered})"))
        elif through > first.seq - 1:
            findings.append(Finding(first.seq, first.id, f"record {first.seq} is present although checkpoint "
                                    f"{cp_seq} says records through {through} were pruned"))
        elif first.prev_hash != through_hash:
            what = "the first record" if through == 0 else f"the last pruned record, as checkpoint {cp_seq} states"
            findings.append(Finding(first.seq, first.id, f"record {first.seq} ({first.kind} {first.id}) was altered: "
                                    f"it does not link to {what}"))
    head = db.execute("SELECT seq, hash FROM head").fetchone()
    last_seq = prev.seq if prev else pruned_through
    if head is None:
        findings.append(Finding(None, None, "the head marker is missing: the log's end cannot be checked"))
        head = (last_seq, prev.hash if prev else GENESIS)
    elif head[0] > last_seq:
        findings.append(Finding(last_seq + 1, None, f"{_records(last_seq + 1, head[0])} removed from the end"))
    elif head[0] < last_seq:
        findings.append(Finding(head[0] + 1, None, f"{_records(head[0] + 1, last_seq)} added behind the log's back "
                                "(after its head)"))
    elif prev is not None and head[1] != prev.hash:
        findings.append(Finding(prev.seq, prev.id, f"record {prev.seq} ({prev.kind} {prev.id}) was altered or "
                                "replaced: it is not the head the log wrote"))
    findings.sort(key=lambda f: -1 if f.seq is None else f.seq)
    return Verification(records, head[0], head[1], pruned_through, findings)


def _records(a: int, b: int) -> str:
    return f"record {a} was" if a == b else f"records {a}..{b} were"


# --- SQLite ------------------------------------------------------------------------------------------------


def _checkpoints(ref: weakref.ref[DecisionLog], stop: threading.Event) -> None:
    """The checkpoint thread: a checkpoint every CHECKPOINT_EVERY_S until the log is closed or dropped. A
    failure is logged (once until it changes) and the next round tries again."""
    while not stop.wait(CHECKPOINT_EVERY_S):
        log = ref()
        if log is None:
            return
        try:
            log.checkpoint()
            problem = None
        except Exception as e:  # noqa: BLE001 - whatever it was, the next round tries again (nothing else checkpoints)
            problem = str(e)
            if problem != log._checkpoint_problem:
                _log.warning("%s: background checkpoint failed (tried again every %g s): %s", log.path,
                             CHECKPOINT_EVERY_S, problem)
        log._checkpoint_problem = problem
        del log


def _close_all(*connections: sqlite3.Connection | None) -> None:
    for db in connections:
        if db is not None:
            db.close()


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun and ended here, explicitly, never implicitly by the module.
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """WAL mode, and the schema created (once, even when several processes open a new file together)."""
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file, before WAL: lets prune shrink it
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:  # switching to WAL takes a lock that the busy timeout does not wait for
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if mode.lower() != "wal":
        raise DecisionLogError(f"{path}: cannot switch to write-ahead logging (journal mode {mode})")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise DecisionLogError(f"{path} was written by a newer KAM Rules (log schema {version}); "
                               f"this one reads schema {SCHEMA_VERSION}")
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise DecisionLogError(f"{path} is an SQLite file but not a decision log")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO head (one, seq, hash) VALUES (1, 0, ?)", (GENESIS,))
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _utc(when: dt.datetime | dt.date | None) -> dt.datetime:
    """A moment in UTC: a naive datetime is local time; a date means the start of that day in UTC."""
    if isinstance(when, dt.datetime):
        return when.astimezone(dt.UTC)
    if isinstance(when, dt.date):
        return dt.datetime(when.year, when.month, when.day, tzinfo=dt.UTC)
    raise DecisionLogError(f"before must be a date or datetime, not {when!r}")


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
