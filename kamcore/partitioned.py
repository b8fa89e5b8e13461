"""Portfolios larger than one process holds, evaluated partition by partition on Dask with the same results as
one process: rankings are computed once over the whole portfolio between a key pass and an evaluation pass."""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import glob
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.delayed import Delayed, delayed

from .errors import InputError, RowError
from .evaluation import as_of_date, begin
from .expressions.types import Type
from .kinds.base import Rule
from .kinds.ranking import RankingRule, RankKeys, Ranks
from .rulebook import RuleBook

FORMATS = ("csv", "parquet")
ROW_ERRORS_META = pd.DataFrame({"row": pd.Series(dtype="int64"), "rule": pd.Series(dtype="str"),
                                "field": pd.Series(dtype="str"), "message": pd.Series(dtype="str")})
_ENCODING_SAMPLE = 1 << 20  # bytes of a csv file read to tell UTF-8 from GBK


# --- evaluating ----------------------------------------------------------------------------------------------


def evaluate(book: RuleBook, accounts: dd.DataFrame, as_of: dt.date | str | None = None,
             explain: str | None = None, progress: bool = False) -> PartitionedEvaluation:
    """Evaluate `book` over a partitioned portfolio, partitions in order making up the portfolio.

    Rankings need the whole portfolio, so they run here, before this returns: every partition computes the
    rank keys (measure, group, tie-breaks) of each ranking, the keys are joined in partition order and ranked
    once, as one frame, by the engine's own code, and the ranks stay on the cluster cut into one slice per
    partition. Rankings whose keys read another ranking's output wait for it: one key pass per level, one in
    most books and none without rankings. The returned results are lazy: computing one runs the evaluation pass.
    `as_of` is fixed here, once, so every partition agrees on `today()`; `explain` (a language, "en" or "zh")
    adds an `explanation` column; `progress` shows Dask's progress bar on stderr."""
    day = as_of_date(as_of)
    # The book travels as its files and is compiled once per worker process: compiled expressions are closures,
    # which pickle only by value (slow, and racy while the client touches the book).
    rulebook = delayed(BookSource.of(book), name=f"rulebook-{book.digest}-{book.revision}")
    parts = accounts.to_delayed()
    ranks: list[dict[str, Any]] = [{} for _ in parts]  # per partition: rule id -> its slice of the ranks
    ranked: list[Delayed] = []  # every ranking's ranks, persisted: on a cluster, held here or lost
    levels = _ranking_levels(book)
    for k, level in enumerate(levels, start=1):
        label = f"ranking {', '.join(r.id for r in level)} over the whole portfolio (pass {k} of {len(levels) + 1})"
        whole = _rank(book, rulebook, parts, day, level, ranks, label if progress else None)
        ranked += whole
        ranks = [{**known, **{r.id: w[i] for r, w in zip(level, whole, strict=True)}} for i, known in enumerate(ranks)]
    label = f"evaluating (pass {len(levels) + 1} of {len(levels) + 1})" if progress else None
    return PartitionedEvaluation(book, rulebook, accounts._meta, day, parts, ranks, ranked, explain, label)


@dataclass(frozen=True)
class BookSource:
    """A rule book as it travels to workers: its files' paths and texts, and its revision."""

    files: tuple[tuple[str, str], ...]
    revision: str | None

    @classmethod
    def of(cls, book: RuleBook) -> BookSource:
        source = cls(tuple((f.path, f.text) for f in book.files), book.revision)
        with _COMPILING:
            _remember(source, book)  # in this process the book at hand serves: no compile
        return source

    def book(self) -> RuleBook:
        with _COMPILING:  # one compile per process, not one per thread that asks at once
            book = _BOOKS.get(self)
            if book is None:
                book = _remember(self, RuleBook.from_files(dict(self.files), self.revision))
            return book


_COMPILING = threading.Lock()
_BOOKS: dict[BookSource, RuleBook] = {}  # the few books this process evaluates, newest last


def _remember(source: BookSource, book: RuleBook) -> RuleBook:
    _BOOKS.pop(source, None)
    _BOOKS[source] = book
    while len(_BOOKS) > 8:
        del _BOOKS[next(iter(_BOOKS))]
    return book


def _ranking_levels(book: RuleBook) -> list[list[RankingRule]]:
    """The rankings by level: a ranking's keys read only outputs of rankings of lower levels."""
    level: dict[str, int] = {}
    for rule in book.rules:  # in dependency order, so the rules a rule reads have their levels already
        writers = {book.outputs[name] for name in rule.reads if name in book.outputs} - {rule}
        level[rule.id] = max((level[w.id] + isinstance(w, RankingRule) for w in writers), default=0)
    rankings = [r for r in book.rules if isinstance(r, RankingRule)]
    return [[r for r in rankings if level[r.id] == k] for k in sorted({level[r.id] for r in rankings})]


def _upstream(book: RuleBook, rules: Sequence[Rule]) -> list[str]:
    """The ids of the rules whose outputs `rules` read, directly or not, in evaluation order."""
    needed: set[str] = set()
    todo = list(rules)
    while todo:
        for name in todo.pop().reads:
            writer = book.outputs.get(name)
            if writer is not None and writer.id not in needed:
                needed.add(writer.id)
                todo.append(writer)
    return [r.id for r in book.rules if r.id in needed]


def _rank(book: RuleBook, rulebook: Delayed, parts: list[Delayed], day: dt.date, level: list[RankingRule],
          ranks: list[dict[str, Any]], label: str | None) -> list[Delayed]:
    """One key pass: the keys of `level`'s rankings from every partition, each ranking ranked once as a whole
    (persisted: a list of per-partition Ranks per ranking)."""
    ids, upstream = [r.id for r in level], _upstream(book, level)
    fields = _key_fields(book, [*level, *(book.rule(u) for u in upstream)])
    keys = [delayed(_partition_keys, pure=True)(rulebook, part, day, ids, upstream, fields, known)
            for part, known in zip(parts, ranks, strict=True)]
    whole = [delayed(_rank_whole, pure=True)(rulebook, rule_id, *(k[rule_id] for k in keys)) for rule_id in ids]
    return list(_run(whole, label, keep=True))


def _key_fields(book: RuleBook, rules: Sequence[Rule]) -> list[str]:
    """The input fields a key pass reads: those `rules` read, and every field that is not text, since a row with
    an unreadable cell in any field takes no part in rankings (a text cell always reads: it is never unreadable)."""
    read = {name for rule in rules for name in rule.reads}
    return [name for name, t in book.inputs.items() if name in read or t not in (None, Type.STRING)]


def _partition_keys(source: BookSource, frame: pd.DataFrame, day: dt.date, rankings: list[str], upstream: list[str],
                    fields: list[str], ranks: dict[str, Ranks]) -> dict[str, RankKeys]:
    """The rank keys of one partition, after only the rules they read (with the ranks of earlier levels)."""
    book = source.book()
    state, _ = begin(book, frame, day, ranks, fields)
    for rule_id in upstream:
        book.rule(rule_id).evaluate(state)
    return {rule_id: book.rule(rule_id).keys(state) for rule_id in rankings}


def _rank_whole(source: BookSource, rule_id: str, *parts: RankKeys) -> list[Ranks]:
    """Rank the joined keys of every partition as one portfolio; the ranks cut back into one slice per partition."""
    ranks = source.book().rule(rule_id).rank(RankKeys.joined(parts))
    bounds = np.cumsum([0] + [len(p) for p in parts])
    return [ranks.part(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class PartitionResult:
    """One partition evaluated: its frame (inputs, outputs, `rules_version`), which rows have no error, and its
    row errors and warnings (rows counted within the partition)."""

    frame: pd.DataFrame
    ok: np.ndarray
    errors: list[RowError]
    warnings: list[RowError]


def _partition_result(source: BookSource, frame: pd.DataFrame, day: dt.date, ranks: dict[str, Ranks],
                      explain: str | None) -> PartitionResult:
    book = source.book()
    ev = book.evaluate(frame, as_of=day, ranks=ranks)
    result = _plain(ev.frame)
    if explain:
        result["explanation"] = pd.Series([ev.explain(i).text(explain) for i in range(len(result))],
                                          index=result.index, dtype="str")
    result["rules_version"] = pd.Series(revision_of(book), index=result.index, dtype="str")
    return PartitionResult(result, ev.ok, ev.errors, ev.warnings)


def revision_of(book: RuleBook) -> str:
    """What `rules_version` says: the git revision, or for a rule book read from a folder a digest of its files."""
    return book.revision or book.digest


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text outputs as text: each partition has its own categories, which would not make one column."""
    return frame.astype({c: "str" for c, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)})


def _length(result: PartitionResult) -> int:
    return len(result.frame)


def _starts(*lengths: int) -> list[int]:
    return np.cumsum([0, *lengths]).tolist()


def _row_table(result: PartitionResult, which: str, starts: list[int], i: int) -> pd.DataFrame:
    """A partition's errors or warnings as a table, rows counted over the whole portfolio."""
    rows: list[RowError] = getattr(result, which)
    return pd.DataFrame({
        "row": pd.Series([e.row + starts[i] for e in rows], dtype="int64"),
        "rule": pd.Series([e.rule for e in rows], dtype="str"),
        "field": pd.Series([e.field for e in rows], dtype="str"),
        "message": pd.Series([e.message for e in rows], dtype="str"),
    })


def _good_rows(result: PartitionResult) -> pd.DataFrame:
    return _file_ready(result.frame[result.ok])


def _file_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of Python objects as text, so every part file has the same schema; lists (from COLLECT tables)
    read best as "a, b, c", as in kamcore.portfolio.write_table."""
    objects = [c for c, t in frame.dtypes.items() if pd.api.types.is_object_dtype(t)]
    if not objects:
        return frame
    out = frame.copy(deep=False)
    for c in objects:
        out[c] = frame[c].map(lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v).astype("str")
    return out


class PartitionedEvaluation:
    """The lazy results of a partitioned evaluation: dask collections, one partition per input partition.
    Compute them together (`dask.compute(ev.frame, ev.errors)`, or `write`): each compute runs the
    evaluation pass."""

    def __init__(self, book: RuleBook, rulebook: Delayed, meta: pd.DataFrame, day: dt.date, parts: list[Delayed],
                 ranks: list[dict[str, Any]], ranked: list[Delayed], explain: str | None, label: str | None):
        self.book = book
        self._ranked = ranked  # the futures the results are built on live as long as this object
        self.as_of = day
        self.npartitions = len(parts)
        self._label = label
        self._results = [delayed(_partition_result, pure=True)(rulebook, part, day, known, explain)
                         for part, known in zip(parts, ranks, strict=True)]
        self._meta = _partition_result(BookSource.of(book), meta, day, {}, explain).frame  # no rows: the columns
        self._lengths = [delayed(_length, pure=True)(r) for r in self._results]
        self._starts = delayed(_starts, pure=True)(*self._lengths)

    @property
    def revision(self) -> str:
        """The `rules_version` stamped on every row."""
        return revision_of(self.book)

    @cached_property
    def frame(self) -> dd.DataFrame:
        """Every account, in input order: the input columns, one column per rule output, `rules_version`."""
        return _collection([r.frame for r in self._results], self._meta)

    @cached_property
    def errors(self) -> dd.DataFrame:
        """Row errors: `row` (0-based over the whole portfolio), `rule`, `field`, `message`."""
        return self._row_tables("errors")

    @cached_property
    def warnings(self) -> dd.DataFrame:
        """Notes that do not fail a row (an empty measure ranked last), like `errors`."""
        return self._row_tables("warnings")

    def _row_tables(self, which: str) -> dd.DataFrame:
        return _collection(self._row_parts(which), ROW_ERRORS_META)

    def _row_parts(self, which: str) -> list[Delayed]:
        return [delayed(_row_table, pure=True)(r, which, self._starts, i) for i, r in enumerate(self._results)]

    @property
    def lengths(self) -> Delayed:
        """The number of accounts in each partition (a list, once computed)."""
        return delayed(list)(self._lengths)

    def write(self, folder: str | Path, fmt: str = "parquet") -> Written:
        """Write the accounts without a row error to `folder` as part files (`part-00000.parquet`, … or .csv),
        in one compute with the errors and partition lengths, which come back for the caller to report.
        Part files of an earlier run are replaced; a folder holding anything else is refused."""
        if fmt not in FORMATS:
            raise InputError(f"{folder}: the dask engine writes {' or '.join(FORMATS)}, not {fmt!r}")
        folder = Path(folder)
        for earlier in _earlier_parts(folder):
            earlier.unlink()  # fewer partitions this time would leave stale parts among the new ones
        good = _collection([delayed(_good_rows, pure=True)(r) for r in self._results], _file_ready(self._meta))
        if fmt == "parquet":
            jobs = [good.to_parquet(folder, write_index=False, compute=False,
                                    name_function=lambda i: f"part-{i:05d}.parquet").to_delayed()]
        else:
            folder.mkdir(parents=True, exist_ok=True)
            jobs = good.to_csv(str(folder / "part-*.csv"), index=False, encoding="utf-8-sig", compute=False,
                               name_function=lambda i: f"{i:05d}")
        # Delayed objects only: computed with dask-expr collections they would all be materialised anyway.
        _, tables, lengths = _run([jobs, self._row_parts("errors"), self._lengths], self._label)
        return Written(folder, list(lengths), pd.concat([ROW_ERRORS_META, *tables], ignore_index=True))


def _collection(parts: list[Delayed], meta: pd.DataFrame) -> dd.DataFrame:
    # As the engine made them: Dask would otherwise turn text columns into Arrow strings (e.g. '45.0' for 45.0
    # in an input column of mixed cells).
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(parts, meta=meta)


@dataclass
class Written:
    """What `write` did: the folder, accounts per partition, and the row errors of the accounts left out."""

    folder: Path
    lengths: list[int]
    errors: pd.DataFrame

    @property
    def accounts(self) -> int:
        return int(sum(self.lengths))

    @property
    def failed(self) -> int:
        return int(self.errors["row"].nunique())


def check_output(folder: str | Path) -> str:
    """The format to write `folder` in, from its name (`scored.csv/`: csv parts; `scored.parquet/` or `scored/`:
    parquet parts), once sure the folder is new or holds only part files of an earlier run (replaced)."""
    folder = Path(folder)
    suffix = folder.suffix.lower()
    if suffix not in ("", ".parquet", ".pq", ".csv"):
        raise InputError(f"{folder}: the dask engine writes a folder of parquet or csv parts; "
                         "name it *.parquet or *.csv")
    _earlier_parts(folder)
    return "csv" if suffix == ".csv" else "parquet"


def _earlier_parts(folder: Path) -> list[Path]:
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file; the dask engine writes a folder of part files")
    if not folder.exists():
        return []
    ours = [p for p in folder.iterdir() if p.is_file() and (
        p.name.startswith("part-") and p.suffix in (".parquet", ".csv") or p.name in ("_metadata", "_common_metadata"))]
    others = sorted(p.name for p in folder.iterdir() if p not in ours)
    if others:
        raise InputError(f"{folder}: holds {', '.join(others[:3])}{', …' if len(others) > 3 else ''}; "
                         "write to a new folder or one holding only part files of an earlier run")
    return ours


def _run(collections: list[Any], label: str | None, keep: bool = False) -> Any:
    """Run one pass: compute the collections (results come back) or persist them (`keep`: results stay on the
    cluster). On a distributed client the progress bar is distributed's, otherwise dask's local one."""
    from distributed import Client, futures_of, progress, wait

    on_cluster = isinstance(getattr(dask.base.get_scheduler(), "__self__", None), Client)
    if label:
        print(label, file=sys.stderr, flush=True)
    if not on_cluster:
        from dask.diagnostics import ProgressBar

        with ProgressBar(out=sys.stderr) if label else contextlib.nullcontext():
            return dask.persist(*collections) if keep else dask.compute(*collections)
    done = dask.persist(*collections)
    if label:
        with contextlib.redirect_stdout(sys.stderr):  # distributed draws its bar on stdout; ours goes to stderr
            progress(done)
    else:
        wait(futures_of(done))
    return done if keep else dask.compute(*done)


# --- reading -------------------------------------------------------------------------------------------------


@dataclass
class Accounts:
    """A partitioned account table read from csv or parquet files: the frame, its files in order, and how many
    partitions each file has (to name the file and line of a row)."""

    frame: dd.DataFrame
    files: list[str]
    partitions: list[int]
    fmt: str

    def locate(self, rows: np.ndarray, lengths: Sequence[int]) -> tuple[list[str], np.ndarray]:
        """For rows counted over the whole table (0-based): the file each is in and its 0-based row there."""
        partition_starts = np.cumsum([0, *lengths])
        file_starts = partition_starts[np.cumsum([0, *self.partitions])[:-1]]
        which = np.searchsorted(file_starts, rows, side="right") - 1
        return [self.files[k] for k in which], np.asarray(rows) - file_starts[which]


def read_accounts(source: str | Path, blocksize: str | int | None = "64MiB") -> Accounts:
    """Account tables from one csv or parquet file, a glob (`accounts/*.parquet`) or a folder of them, as one
    Dask DataFrame in file-name order. Csv cells are read as text (UTF-8, or GBK as kamcore.portfolio reads it);
    the rule book types them. `blocksize` splits large csv files into partitions."""
    text = str(source)
    if Path(text).is_dir():
        files = sorted(str(p) for p in Path(text).iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
    elif glob.has_magic(text):
        files = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
    else:
        files = [text] if Path(text).is_file() else []
    if not files:
        raise InputError(f"{source}: no csv or parquet file there")
    kinds = {_format(f) for f in files}
    if len(kinds) > 1:
        raise InputError(f"{source}: mixes csv and parquet files; give one kind")
    fmt = kinds.pop()
    # Text cells stay Python strings, as kamcore.portfolio.read_table gives them, not Arrow strings.
    with dask.config.set({"dataframe.convert-string": False}):
        if fmt == "csv":
            frames = [dd.read_csv(f, dtype=object, keep_default_na=False, na_values=[""], skipinitialspace=True,
                                  encoding=_encoding(f), blocksize=blocksize) for f in files]
        else:
            frames = [dd.read_parquet(f) for f in files]
    frame = frames[0] if len(frames) == 1 else dd.concat(frames)
    return Accounts(frame, files, [f.npartitions for f in frames], fmt)


def _format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"{path}: the dask engine reads csv or parquet files, not {suffix or 'files without a suffix'}")


def _encoding(path: str) -> str:
    """UTF-8 (with or without a byte-order mark) if the file's first MiB is valid UTF-8, else GBK (as GB18030)."""
    with open(path, "rb") as f:
        sample = f.read(_ENCODING_SAMPLE)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"
