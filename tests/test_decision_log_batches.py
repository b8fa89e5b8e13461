"""The decision log's faster writing of large decisions keeps what is recorded: a record written before (zstd
level 3) and one written now (level 1) in the same log both read back and verify; an evaluation's recorded tables
are byte for byte what the cell-by-cell encoding (as it was before) makes of its input frame and outputs."""

import datetime as dt
import hashlib
import threading
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from kamcore import RuleBook, decisions
from kamcore.decisions import DecisionLog, canonical_json, decompress, output_table, table_of
from kamcore.demo import synthetic_portfolio

SHIPPED = Path(__file__).resolve().parents[1] / "rules"
AS_OF = dt.date(2026, 11, 23)


def _cell_by_cell(values, what, column=decisions._NAMES):
    """decisions._column_cells as it was."""
    return [v if (t := type(v)) in decisions._PLAIN or t is float and v - v == 0
            or t is list and all(type(x) is str for x in v) else decisions._cell(v) for v in values]


def _numbers_as_before(values, arrays=False):  # always lists, as before
    cells = values.tolist()
    if values.dtype.kind == "f":
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            cells[i] = {"$float": repr(cells[i])}
    return cells


def _as_before(monkeypatch, make):
    """What `make()` gives with the decision log's cell encoding as it was before the batch shortcuts."""
    with monkeypatch.context() as m:
        m.setattr(decisions, "_column_cells", _cell_by_cell)
        m.setattr(decisions, "_number_cells", _numbers_as_before)
        m.setattr(decisions, "_text_cells", lambda series, what, name: _cell_by_cell(series.tolist(), what, name))
        m.setattr(decisions, "_datetime_cells",
                  lambda values, what, name: _cell_by_cell(pd.Series(values, copy=False).tolist(), what, name))
        return make()


def test_records_compressed_at_the_former_level_still_read_and_verify(tmp_path, monkeypatch):
    frame = synthetic_portfolio(300, seed=4)
    frame.loc[3, "account_name"] = None
    frame.loc[5, "revenue_12m"] = np.inf
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        monkeypatch.setattr(decisions, "_idle_compressors", [zstandard.ZstdCompressor(level=3)])
        before = log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
        monkeypatch.setattr(decisions, "_idle_compressors", [])
        now = log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
        stored = dict(log._db.execute("SELECT id, inputs FROM decisions").fetchall())
        assert stored[before] != stored[now]  # the two levels made different frames of the same table
        assert log.verify().ok
        a, b = log.get(before), log.get(now)
        assert a.input_digest == b.input_digest
        pd.testing.assert_frame_equal(a.inputs, b.inputs)
        assert b.inputs.iloc[3]["account_name"] is None or pd.isna(b.inputs.iloc[3]["account_name"])
        assert b.inputs.iloc[5]["revenue_12m"] == np.inf


def test_an_evaluation_is_recorded_as_before(tmp_path, monkeypatch):
    book = RuleBook.load(SHIPPED, revision="r1")
    frame = synthetic_portfolio(2000, seed=7)
    frame.loc[::7, "contract_end_date"] = None
    frame.loc[::11, "credit_score"] = np.nan
    frame["credit_score"] = frame["credit_score"].astype(object)
    frame.loc[4, "credit_score"] = "abc"  # an unreadable cell: a row error, every output null on that row
    ev = book.evaluate(frame, as_of=AS_OF)
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        decision_id = log.record_evaluation("alice", ev)
        db = log._db
        inputs, outputs = db.execute("SELECT inputs, outputs FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        errors = [decisions._error_dict(e) for e in ev.errors]
        assert errors
        assert decompress(inputs) == _as_before(monkeypatch, lambda: canonical_json(table_of(ev.input, "inputs")))
        assert decompress(outputs) == _as_before(monkeypatch, lambda: canonical_json(
            {"errors": errors, "outputs": output_table(ev)}))
        assert b'{"$float":"nan"}' in decompress(inputs)
        assert log.verify().ok


def test_one_accounts_outputs_are_logged_as_the_column_reader_logs_them():
    """One account's outputs are read cell by cell (`_one_cell`): the same cells as `_vec_cells` gives, for
    numbers (a null margin from a zero revenue is a tagged NaN), flags, text, lists of text and nulls."""
    book = RuleBook.load(SHIPPED, revision="r1")
    frame = synthetic_portfolio(60, seed=9)
    frame.loc[0, "revenue_12m"] = 0.0
    frame.loc[1, ["credit_score", "contract_end_date", "industry"]] = None
    seen = set()
    for i in range(len(frame)):
        ev = book.evaluate(frame.iloc[[i]].reset_index(drop=True), as_of=AS_OF)
        cells = output_table(ev)["values"]
        general = [decisions._vec_cells(ev.state.columns[name], 1, None, name) for name in ev.output_names]
        assert repr(cells) == repr(general)
        seen.update(type(v[0]).__name__ for v in cells)
        held = {type(ev.state.columns[name]).__name__ for name in ev.output_names}
        assert held == {"ListVec", "Vec"}  # per-account values, and lists (the cell reader's two branches)
    assert {"float", "bool", "str", "list", "NoneType", "dict"} <= seen


def test_one_record_is_stored_as_a_table_of_one_row_is():
    """`table_of` of one record (the shortcut for a request of one account) stores what the general reader
    stores for it: plain cells as they are, NaN and infinity tagged, lists, objects, 中文 keys, odd keys refused."""
    record = {"客户编号": "KH1", "revenue_12m": 1.5e6, "margin": float("nan"), "big": float("inf"), "n": 3,
              "flag": True, "none": None, "tags": ["a", "b"], "mixed": [1, "a"], "obj": {"$date": "x"},
              "day": dt.date(2024, 3, 1), "stamp": pd.Timestamp("2024-03-01 10:00")}
    general = decisions.table_of([record, record])
    one = decisions.table_of([record])
    assert one == {"columns": general["columns"], "rows": 1, "values": [v[:1] for v in general["values"]]}
    assert canonical_json(decisions.table_of(record)) == canonical_json(one)
    for odd in ({"x": object()}, {1: "a"}, {"x": {1: "a"}}):
        try:
            general = decisions.table_of([odd, odd])
        except decisions.DecisionLogError as e:
            with pytest.raises(decisions.DecisionLogError) as one_error:
                decisions.table_of([odd])
            assert str(one_error.value) == str(e)
        else:
            assert decisions.table_of([odd])["values"] == [v[:1] for v in general["values"]]


_HASHED_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=40)


@given(st.dictionaries(st.sampled_from(["actor", "id", "time", "checkpoint", "revision", "中文"]),
                       st.one_of(st.none(), _HASHED_TEXT, st.integers(-(2**70), 2**70)), max_size=6))
def test_record_hashes_are_over_the_standard_librarys_bytes(fields):
    """A record hash is over the standard library's canonical JSON of its fields, whichever writes it: every
    record ever written is re-hashed by `verify`, so the bytes may never change."""
    fields = {"v": 1, **fields}
    try:
        expected = decisions._stdlib_json(fields)
    except UnicodeEncodeError:  # a lone surrogate: neither writes it
        with pytest.raises(UnicodeEncodeError):
            decisions._hashed_json(fields)
        return
    assert decisions._hashed_json(fields) == expected


def test_record_hash_bytes_for_every_control_character():
    text = "".join(chr(c) for c in range(0x80)) + "\u2028\u2029\ufeff中文\U0001f600"
    fields = {"v": 1, "actor": text, "checkpoint": '{"a":"\\\\"}', "seq": 2**63 - 1, "id": None}
    assert decisions._hashed_json(fields) == decisions._stdlib_json(fields)


def _odd_portfolio(n: int, seed: int) -> pd.DataFrame:
    """Accounts with what a batch may hold: gaps in text, numbers and dates, infinity, a float32 column, an
    unreadable cell (every output null on its row), 中文."""
    frame = synthetic_portfolio(n, seed=seed)
    frame.loc[::7, "contract_end_date"] = None
    frame.loc[::11, "credit_score"] = np.nan
    frame.loc[::13, "account_name"] = None
    frame.loc[2, "revenue_12m"] = np.inf
    frame.loc[3, "receivables"] = -np.inf
    frame.loc[6, "revenue_12m"] = 0.0  # a null margin
    frame["dso_days"] = frame["dso_days"].astype(np.float32)
    frame["credit_score"] = frame["credit_score"].astype(object)
    frame.loc[4, "credit_score"] = "abc"
    frame.loc[5, "account_name"] = "华瑞科技（上海）"
    return frame


def _through_pandas_arrays(ev):
    """The outputs table by the general reader alone: each column as the pandas array `Vec.to_array` makes."""
    state = ev.state
    excluded = state.excluded if state.excluded.any() else None
    return {"columns": list(ev.output_names), "rows": state.n,
            "values": [decisions._array_cells(state.columns[name].to_array(state.n), excluded, name)
                       for name in ev.output_names]}


@pytest.mark.parametrize("seed", [7, 8])
def test_a_batch_recorded_with_the_answers_cells_is_recorded_as_before(tmp_path, monkeypatch, seed):
    """The service converts the text, flag and list columns once for its answer and the log (`shared`), and the
    log hands finite float columns to the encoder as arrays: the stored bytes are those of the cell-by-cell
    encoding of the input frame and of the output columns as pandas arrays (`Vec.to_array`), the answer is the same as
    without sharing, and the record reads back and verifies."""
    from server.encoding import result_rows

    book = RuleBook.load(SHIPPED, revision="r1")
    ev = book.evaluate(_odd_portfolio(1500, seed), as_of=AS_OF)
    assert ev.state.excluded.any() and not ev.ok.all()
    names = ev.output_names
    errors = [decisions._error_dict(e) for e in ev.errors]
    for rows in (np.flatnonzero(ev.ok), np.arange(len(ev.ok)), np.array([0, 4, 9, 10]), np.array([], dtype=int)):
        shared = {}
        results = result_rows(ev, rows, shared)
        assert repr(results) == repr(result_rows(ev, rows))  # repr: 1 vs 1.0, True vs 1 and None vs nan differ
        assert {"tier", "false_big_account", "entitlements"} <= shared.keys()
        with DecisionLog.open(tmp_path / f"d{seed}-{len(rows)}.sqlite3") as log:
            decision_id = log.record_evaluation("alice", ev, shared)
            inputs, outputs = log._db.execute("SELECT inputs, outputs FROM decisions WHERE id = ?",
                                              (decision_id,)).fetchone()
            assert decompress(inputs) == _as_before(monkeypatch, lambda: canonical_json(table_of(ev.input, "inputs")))
            assert decompress(outputs) == _as_before(monkeypatch, lambda: canonical_json(
                {"errors": errors, "outputs": _through_pandas_arrays(ev)}))
            assert decompress(outputs) == canonical_json({"errors": errors, "outputs": output_table(ev)})
            assert log.verify().ok
            assert log.get(decision_id).outputs.shape == (len(ev.ok), len(names))


def test_an_input_beyond_64_bits_is_recorded_as_before(tmp_path, monkeypatch):
    """An integer orjson refuses sends the table through the standard library, float arrays and all."""
    book = RuleBook.load(SHIPPED, revision="r1")
    frame = synthetic_portfolio(40, seed=3)
    frame["ref"] = [2**70 + i for i in range(40)]
    ev = book.evaluate(frame, as_of=AS_OF)
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        decision_id = log.record_evaluation("alice", ev, {})
        (inputs,) = log._db.execute("SELECT inputs FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        assert decompress(inputs) == _as_before(monkeypatch, lambda: canonical_json(table_of(ev.input, "inputs")))
        assert b"1180591620717411303424" in decompress(inputs)


# Moments as int64 counts of their unit: every second, millisecond or microsecond of the years 1-9999 and past
# them (where Python's datetime ends), every nanosecond pandas holds; NaT; whole days, as an xlsx's dates are.
_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
_DAYS = {"s": (-800_000, 3_000_000), "ms": (-800_000, 3_000_000), "us": (-800_000, 3_000_000),
         "ns": (-106_000, 106_000)}  # from before the year 1 to past 9999; ns: the 1677-2262 it holds
_MOMENTS = {unit: st.one_of(
    st.integers(-2**62, 2**62),
    st.integers(*_DAYS[unit]).map(lambda day, unit=unit: day * _DAY[unit]),  # whole days
    st.integers(*_DAYS[unit]).map(lambda day, unit=unit: day * _DAY[unit] + _DAY[unit] // 86_400 * 3_661),
    st.integers(-10**6, 10**6), st.just(np.iinfo(np.int64).min),  # near 1970; NaT
    # either side of datetime's first and last moments (0001-01-01 is day -719162, 10000-01-01 day 2932897)
    st.sampled_from([-719163, -719162, 2932896, 2932897]).flatmap(
        lambda day, unit=unit: st.sampled_from([day * _DAY[unit] - 1, day * _DAY[unit], day * _DAY[unit] + 1])))
    for unit in ("s", "ms", "us")}
_MOMENTS["ns"] = st.one_of(st.integers(-2**63 + 1, 2**63 - 1), st.just(np.iinfo(np.int64).min),
                           st.integers(*_DAYS["ns"]).map(lambda day: day * _DAY["ns"]),
                           st.integers(*_DAYS["ns"]).map(lambda day: day * _DAY["ns"] + 3_661_000_000_000))


@pytest.mark.parametrize("unit", sorted(_DAY))
@given(data=st.data())
def test_datetime_columns_are_recorded_as_their_timestamps_cell_by_cell(unit, data):
    """A datetime64 column's cells (`_datetime_cells`, texts by numpy) are what `_column_cells` of its Timestamps
    gives, one by one: `$datetime` with or without microseconds, `$timestamp` with nanoseconds, null for NaT,
    and for a moment beyond the years 1-9999 whatever that gives (or raises)."""
    values = np.array(data.draw(st.lists(_MOMENTS[unit], max_size=12)), dtype=np.int64).view(f"datetime64[{unit}]")

    def outcome(cells):
        try:
            return repr(cells())
        except Exception as e:  # noqa: BLE001 - both must fail alike
            return type(e).__name__
    fast = outcome(lambda: decisions._datetime_cells(values, "inputs", "d"))
    assert fast == outcome(lambda: _cell_by_cell(pd.Series(values, copy=False).tolist(), "inputs", "d"))


def test_an_xlsx_uploads_dates_are_recorded_as_before(tmp_path, monkeypatch):
    """An uploaded sheet's date columns (datetime64[us], some empty) are recorded as their Timestamps were."""
    frame = synthetic_portfolio(500, seed=9)
    for name in ("first_order_date", "last_order_date", "contract_end_date"):
        frame[name] = frame[name].astype("datetime64[us]")
    frame.loc[::5, "last_order_date"] = pd.NaT
    frame.loc[3, "first_order_date"] = pd.Timestamp("2024-02-29 13:45:10.250")  # a time of day, with a fraction
    ev = RuleBook.load(SHIPPED, revision="r1").evaluate(frame, as_of=AS_OF)
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        (inputs,) = log._db.execute("SELECT inputs FROM decisions WHERE id = ?",
                                    (log.record_evaluation("alice", ev),)).fetchone()
    assert decompress(inputs) == _as_before(monkeypatch, lambda: canonical_json(table_of(ev.input, "inputs")))
    assert b'{"$datetime":"2024-02-29T13:45:10.250000"}' in decompress(inputs)


_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)


@given(st.lists(st.lists(_FLOATS, max_size=8), min_size=1, max_size=4), st.booleans())
def test_float_columns_as_arrays_are_written_as_their_cells(columns, huge):
    """`_number_cells(..., arrays=True)` written by `_table_json` gives the bytes its cells give (every float,
    -0.0, subnormals, the largest; NaN and infinity stay tagged cells), by orjson or the standard library."""
    arrays = [np.array(c, dtype=np.float64) for c in columns]
    table = {"columns": ["x"] * len(arrays), "rows": 0, "values": [decisions._number_cells(a) for a in arrays]}
    fast = {**table, "values": [decisions._number_cells(a, arrays=True) for a in arrays]}
    if huge:  # beyond 64 bits: both through the standard library
        table["big"] = fast["big"] = 2**64
    assert decisions._table_json(fast) == canonical_json(table)
    assert decisions._table_json(table) == canonical_json(table)


@pytest.mark.parametrize("odd", [np.float64(2.0), np.float32(0.5), np.int64(3), np.bool_(True)])
def test_a_numpy_scalar_elsewhere_in_the_table_is_written_as_before(odd):
    """Only the float arrays are orjson's numpy business: a numpy scalar elsewhere (a row error's field given to
    `record`) still sends the whole table to the standard library, or is refused, as `canonical_json` does it
    (a review find: with orjson's numpy option on for the whole table it wrote 7.8e-05 as 0.000078)."""
    floats = np.array([7.805476274390246e-05, 1.5])
    table = {"errors": [{"field": odd}], "values": [decisions._number_cells(floats)]}
    fast = {**table, "values": [decisions._number_cells(floats, arrays=True)]}
    try:
        expected = canonical_json(table)
    except TypeError:
        with pytest.raises(TypeError):
            decisions._table_json(fast)
        return
    assert decisions._table_json(fast) == expected
    assert b"7.805476274390246e-05" in expected


def test_common_cells_refuse_what_the_log_and_the_answer_write_differently():
    from kamcore.expressions.types import Type
    from kamcore.expressions.vectors import Vec

    text = Vec(Type.STRING, np.array([0, 1, -1], dtype=np.int32), np.array(["a", 1.5], dtype=object))
    assert decisions.common_cells(text, 3, None) is None
    assert decisions._vec_cells(text, 3, None, "t") == ["a", 1.5, None]
    lists = Vec(Type.LIST, np.array([["a"], [1.5], None] + [None], dtype=object)[:3], None)
    assert decisions.common_cells(lists, 3, None) is None
    assert decisions.common_cells(Vec(Type.NUMBER, np.array([1.0, 2.0]), None), 2, None) is None
    flags = Vec(Type.BOOLEAN, np.array([0, 1, 2], dtype=np.int8), None)
    assert decisions.common_cells(flags, 3, np.array([False, False, True])) == [False, None, None]


def _sealed_where(monkeypatch):
    """Which thread compressed / digested tables of which size, while the log writes."""
    seen = []

    def watched(work, what):
        def run(data):
            seen.append((what, len(data), threading.current_thread().name))
            return work(data)
        return run

    monkeypatch.setattr(decisions, "compress", watched(decisions.compress, "compress"))
    monkeypatch.setattr(decisions, "_digest", watched(decisions._digest, "digest"))
    return seen


def test_a_large_decision_is_sealed_beside_the_writing_and_reads_back(tmp_path, monkeypatch):
    frame = synthetic_portfolio(2000, seed=3)
    seen = _sealed_where(monkeypatch)
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        decision_id = log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
        inputs = canonical_json(table_of(frame, "inputs"))
        assert len(inputs) >= decisions.SEAL_ASIDE_BYTES
        # the input table on a thread of its own (its digest on one more), the small output table here
        tables = {(what, size): name for what, size, name in seen if what == "compress" or size > 64}
        assert tables[("compress", len(inputs))] == "kam-seal"
        assert tables[("digest", len(inputs))] == "kam-seal"
        assert {name for (what, size), name in tables.items() if size < len(inputs)} == {"MainThread"}
        got = log.get(decision_id)
        assert got.input_digest == hashlib.sha256(inputs).hexdigest()
        pd.testing.assert_frame_equal(got.inputs, decisions.frame_of(decisions._parse(inputs)))
        assert log.verify().ok


def test_a_small_decision_is_sealed_on_the_writers_thread(tmp_path, monkeypatch):
    seen = _sealed_where(monkeypatch)
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        log.record("alice", "r1", synthetic_portfolio(20, seed=3), [{"tier": "A"}] * 20, as_of=AS_OF)
    assert {name for _, _, name in seen} == {"MainThread"}


def test_a_failure_while_sealing_aside_reaches_the_writer_and_records_nothing(tmp_path, monkeypatch):
    frame = synthetic_portfolio(2000, seed=3)
    compress = decisions.compress

    def failing(data):
        if threading.current_thread().name == "kam-seal":
            raise MemoryError("no room to compress")
        return compress(data)

    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        log.record("alice", "r1", frame.head(3), [{"tier": "A"}] * 3, as_of=AS_OF)
        monkeypatch.setattr(decisions, "compress", failing)
        with pytest.raises(MemoryError, match="no room"):
            log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
        monkeypatch.setattr(decisions, "compress", compress)
        assert log.verify().ok and log.verify().records == 1
        log.record("alice", "r1", frame, frame[["account_id"]], as_of=AS_OF)
        assert log.verify().records == 2


def test_inputs_sealed_ahead_are_recorded_as_they_would_be_sealed_after(tmp_path, monkeypatch):
    """`seal_inputs` of the accounts an evaluation was given is recorded as `record_evaluation` seals them itself;
    sealed inputs of other accounts (an equal copy too) are not taken."""
    frame = synthetic_portfolio(1500, seed=4)
    evaluation = RuleBook.load(SHIPPED, revision="r1").evaluate(frame, as_of=AS_OF)
    made = []
    table = decisions._input_table
    monkeypatch.setattr(decisions, "_input_table", lambda accounts: made.append(accounts) or table(accounts))
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        ahead = decisions.seal_inputs(frame)
        assert made == [frame]
        log.record_evaluation("alice", evaluation, inputs=ahead)
        log.record_evaluation("alice", evaluation)
        log.record_evaluation("alice", evaluation, inputs=decisions.seal_inputs(frame.copy()))
        assert len(made) == 4  # not for the first record: its inputs were sealed ahead
        stored = log._db.execute("SELECT input_digest, inputs FROM decisions ORDER BY seq").fetchall()
        assert stored[0] == stored[1] == stored[2]
        assert stored[0][0] == ahead.sealed[0] and stored[0][1] == ahead.sealed[1]
        assert log.verify().ok


def test_outputs_written_ahead_are_recorded_as_they_would_be_written_after(tmp_path, monkeypatch):
    """`write_outputs` of an evaluation (with the answer's shared cells) is stored as `record_evaluation` writes
    its outputs itself; written outputs of another evaluation (of the same accounts too) are not taken."""
    frame = synthetic_portfolio(1500, seed=4)
    frame["credit_score"] = frame["credit_score"].astype(object)
    frame.loc[3, "credit_score"] = "abc"  # a row error among the outputs
    book = RuleBook.load(SHIPPED, revision="r1")
    evaluation, again = book.evaluate(frame, as_of=AS_OF), book.evaluate(frame, as_of=AS_OF)
    shared = {}
    from server.encoding import result_columns  # the answer's cells, shared with the log as the service does

    result_columns(evaluation, np.flatnonzero(evaluation.ok), shared)
    assert shared
    written = []
    write = decisions.write_outputs
    monkeypatch.setattr(decisions, "write_outputs", lambda *a: written.append(a[0]) or write(*a))
    with DecisionLog.open(tmp_path / "d.sqlite3") as log:
        ahead = write(evaluation, shared)
        log.record_evaluation("alice", evaluation, shared, outputs=ahead)
        assert written == []  # taken as written
        log.record_evaluation("alice", evaluation, shared)
        log.record_evaluation("alice", evaluation, outputs=write(again))
        assert written == [evaluation, evaluation]
        stored = log._db.execute("SELECT output_digest, outputs FROM decisions ORDER BY seq").fetchall()
        assert stored[0] == stored[1] == stored[2]
        assert decompress(stored[0][1]) == ahead.json == canonical_json(
            {"errors": [decisions._error_dict(e) for e in evaluation.errors], "outputs": output_table(evaluation)})
        assert log.verify().ok


_ARROW_TEXT = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["", "客户", "a\"b", "a\\b", "\x00", "\x1f",
                                                                        "\x7f", "\u2028", "😀", "{\"$float\": 1}"]))


@given(st.lists(_ARROW_TEXT, min_size=1, max_size=30), st.sampled_from(["str", "string[pyarrow]"]),
       st.integers(0, 3))
def test_text_held_by_arrow_is_logged_in_the_bytes_orjson_writes(cells, dtype, cut):
    """An input text column Arrow holds (a large JSON batch's) is written by Arrow's kernels where nothing in it is
    escaped: the same bytes as writing its cells one by one; a column with anything escaped, as before. Sliced
    and pieced-together columns too, pandas' `str` (NaN for a gap) and `string[pyarrow]` (NA)."""
    series = pd.Series(cells, dtype=dtype).iloc[cut:]
    if not len(series):
        return
    frame = pd.concat([series.to_frame("t").iloc[:2], series.to_frame("t").iloc[2:]]).reset_index(drop=True)
    frame["n"] = 1.5
    for table in (frame, frame.iloc[1:]):
        expected = canonical_json(table_of(table, "inputs"))
        assert decisions._table_json(decisions._input_table(table)) == expected
        # by orjson, the text Arrow wrote put in as it is (not the standard library's path, writing every cell)
        assert orjson.dumps(decisions._input_table(table), option=orjson.OPT_SORT_KEYS,
                            default=decisions._float_array_json) == expected
    plain = all(c is None or not any(ch in c for ch in '"\\') and all(ord(ch) >= 0x20 for ch in c)
                for c in series.tolist() if isinstance(c, str))
    assert (type(decisions._arrow_text_json(frame["t"])) is decisions._TextJson) == plain


def test_text_written_by_arrow_takes_the_standard_librarys_path_with_the_rest():
    """A number beyond 64 bits elsewhere in the table: orjson refuses it, and the standard library writes the whole
    table, the text Arrow wrote as its cells."""
    frame = pd.DataFrame({"t": pd.Series(["a", None, "客户"], dtype="str"), "big": [2**70, 1, 2]})
    assert type(decisions._arrow_text_json(frame["t"])) is decisions._TextJson
    written = decisions._table_json(decisions._input_table(frame))
    assert written == canonical_json(table_of(frame, "inputs"))
    assert b'"\xe5\xae\xa2\xe6\x88\xb7"' in written and b"1180591620717411303424" in written


def test_arrow_text_that_is_not_utf8_is_refused_as_before():
    """Bytes Arrow was handed that are not UTF-8 are never written to the log (they could not be read back)."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, 1, 2], dtype=np.int64))
    frame = pd.DataFrame({"t": pd.array(pa.LargeStringArray.from_buffers(2, offsets, pa.py_buffer(b"\xffa")),
                                        dtype="str")})
    assert decisions._arrow_text_json(frame["t"]) is None
    with pytest.raises(pa.ArrowException):  # as Arrow refuses to make Python text of them
        decisions._table_json(decisions._input_table(frame))
