"""server.batchbody: a large JSON evaluate body read by Arrow gives the frame, `explain` and `as_of` the usual
reading gives (`loads`, `load_evaluate_request`, `pd.DataFrame(accounts)`), or None; and through the app, the same
answers and the same recorded decisions as that reading."""

import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kamcore.demo import synthetic_portfolio
from server import batchbody
from server.batchbody import read_batch
from server.encoding import loads
from server.schemas import load_evaluate_request


def usual(data: bytes) -> tuple[pd.DataFrame, bool, object]:
    body = load_evaluate_request(loads(data))
    return pd.DataFrame(body["accounts"]), body["explain"], body.get("as_of")


def assert_reads_alike(data: bytes) -> bool:
    """read_batch's reading equals the usual one, or is None; whether it was not None."""
    got = read_batch(data)
    if got is None:
        return False
    frame, explain, as_of = got
    expected, usual_explain, usual_as_of = usual(data)
    assert (explain, as_of) == (usual_explain, usual_as_of)
    assert list(frame.columns) == list(expected.columns)
    for name in expected.columns:
        if frame[name].dtype == object and frame[name].isna().all():
            # a key with no value in any account: Arrow holds None for a null and a missing key alike, pandas
            # None or NaN (float64 where an account lacks the key); read alike (empty), recorded as null
            assert expected[name].isna().all() and expected[name].dtype in (object, "float64")
            frame[name] = expected[name]
    pd.testing.assert_frame_equal(frame, expected, check_exact=True, check_column_type=True, check_index_type=True)
    return True


@pytest.fixture(params=["whole", "halves"])
def any_size(request, monkeypatch):
    """Any body read by Arrow, in one reading or (from two accounts) in two halves at once."""
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", 0 if request.param == "halves" else batchbody._LARGEST)


def test_a_demo_batch_is_read_by_arrow_as_pandas_reads_it():
    accounts = json.loads(synthetic_portfolio(2500, seed=5).to_json(orient="records", date_format="iso"))
    data = json.dumps({"accounts": accounts}).encode()
    assert len(data) >= batchbody.SPLIT_BODY_BYTES >= batchbody.ARROW_BODY_BYTES
    first, second = batchbody._halves(data)  # read in two halves at once
    assert first.startswith(data[:1000]) and second.endswith(data[-1000:])
    assert len(json.loads(first)["accounts"]) + len(json.loads(second)["accounts"]) == 2500
    assert assert_reads_alike(data)
    pretty = json.dumps({"accounts": accounts, "explain": True}, indent=2, ensure_ascii=True).encode()
    assert assert_reads_alike(pretty)


def test_a_small_body_is_left_to_the_usual_reading():
    assert read_batch(json.dumps({"accounts": [{"revenue_12m": 1}]}).encode()) is None


@pytest.mark.usefixtures("any_size")
@pytest.mark.parametrize("accounts", [
    [{"b": 1, "a": "x"}, {"a": "y", "c": 2.5, "b": 3}],  # keys in another order, a key missing: NaN
    [{"d": "2024-03-01"}, {"d": "2024-03-02 10:00:00"}],  # text Arrow takes for moments, read again as text
    [{"d": "2024-03-01", "n": 1}, {"d": None, "n": None}],  # gaps
    [{"f": True}, {"f": False}],
    [{"t": "  padded  ", "e": "", "u": "客户😀\u0000"}],
    [{"i": 2**62, "j": -(2**63)}],  # whole numbers within int64 stay whole
    [{"x": 1}, {"x": 2.5}, {"x": 1e15}, {"x": 0.0}, {"x": 5e-324}],
    [{"z": None}, {"z": None}],
    [*({"a": f"x{i}", "n": i} for i in range(batchbody.FIRST_ACCOUNTS + 1)),  # keys met after the first accounts
     {"late_number": 5, "a": "y"}, {"late_moment": "2024-01-01", "late_text": "t", "a": None},
     {"late_moment": "2024-01-02", "n": 2.5}],
], ids=["order", "moments", "gaps", "flags", "text", "int64", "floats", "nulls", "late keys"])
def test_columns_arrow_reads_as_pandas_does(accounts):
    assert assert_reads_alike(json.dumps({"accounts": accounts}).encode())


@pytest.mark.usefixtures("any_size")
@pytest.mark.parametrize("data", [
    b'{"accounts": [{"f": true}, {"f": null}]}',  # flags with a gap: pandas holds None, NaN apart
    b'{"accounts": [{"n": 9223372036854775808}]}',  # beyond int64: loads keeps it whole
    b'{"accounts": [{"n": 1.5}, {"n": 18446744073709551616}]}',
    b'{"accounts": [{"l": [1, 2]}]}',  # a list in a cell
    b'{"accounts": [{"o": {"a": 1}}]}',
    b'{"accounts": [{"x": 1}, {"x": "one"}]}',  # text and a number under one key
    b'{"accounts": [{"x": 1, "x": 2}]}',  # a key twice: the usual reading keeps the last
    b'{"accounts": [{"x": 1}, null]}',
    b'{"accounts": [{}, {}]}',
    b'{"accounts": []}',
    b'{"accounts": [{"x": 1}], "explain": null}',
    b'{"accounts": [{"x": 1}], "explain": "yes"}',
    b'{"accounts": [{"x": 1}], "as_of": null}',
    b'{"accounts": [{"x": 1}], "other": 1}',
    b'{"accounts": [{"x": 1}]}\n{"accounts": [{"x": 2}]}',
    b'[{"x": 1}]',
    b'{"accounts": [{"x": "\\ud800"}]}',
    b'{"accounts": [{"x": 1e400}]}',
    b'\xef\xbb\xbf{"accounts": [{"x": 1}]}',
    b'{"accounts": [{"x": 1}',
    b'{"accounts": [{"x": "\xff"}]}',  # not UTF-8
    b'{"accounts": [{"x\xff": 1}]}',
    b'{"accounts": [{"x": Infinity}]}',
    b'{"accounts": [{"x": "a"}, {"x": 1}]}',  # the first account's text key holding a number later
    b'{"accounts": [{"x": "[a]"}]}',
    b'{"accounts": [{"x": tru}, {"x": 1}]}',  # one of the first accounts is not JSON
    b'{"accounts": [{"x": 1}, {"x": 2}], "explain": tru}',  # (Arrow says so)
    b'{"accounts": [' + b'{"x": 1.5},' * 17 + b'{"x": -NaN}]}',  # Arrow reads `-NaN`, `loads` refuses it
    b'{"accounts": [' + b'{"x": 1.5},' * 17 + b'{"x": NaN}]}',
    b'{"accounts": [{"x": 1}]} null',
    b'{"accounts": [{"x": 1}]}\x00',
])
def test_what_arrow_would_read_otherwise_is_left_to_the_usual_reading(data):
    assert read_batch(data) is None


def test_minus_zero_among_floats_is_read_as_the_whole_number_zero_or_left_to_the_usual_reading(monkeypatch):
    """`loads` reads `-0` as the whole number 0. Read with floats, Arrow makes it -0.0: left to the usual reading.
    Read in a half of whole numbers (then cast among the other half's floats), it is the usual 0.0."""
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    data = b'{"accounts": [{"x": -0}, {"x": 0.5}]}'
    assert read_batch(data) is None
    monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", 0)
    assert assert_reads_alike(data)
    assert read_batch(b'{"accounts": [{"x": 1.5}, {"x": -0}, {"x": 0.5}]}') is None


@pytest.mark.usefixtures("any_size")
@pytest.mark.parametrize("accounts", [
    [{"x": 1, "t": "a"}, {"x": 2, "t": "b"}, {"x": 2.5, "t": None}, {"x": 3.25, "t": None}],  # whole, then floats
    [{"x": None, "t": None}] * 2 + [{"x": 1.5, "t": "a"}] * 2,  # nothing, then values
    [{"a": 1}, {"a": 2}, {"a": 3, "late": "2024-03-01"}, {"a": 4, "late": "2024-03-02"}],  # met in the second half
    [{"a": "2024-03-01"}] * 2 + [{"a": "2024-03-01T10:00:00"}] * 2,
], ids=["ints then floats", "nulls then values", "late moments", "moments"])
def test_halves_that_differ_are_read_as_one_reading_of_the_body(accounts):
    data = json.dumps({"accounts": accounts}, separators=(",", ":")).encode()
    assert assert_reads_alike(data)
    data = json.dumps({"explain": True, "accounts": accounts, "as_of": "2024-01-31"}).encode()
    assert assert_reads_alike(data)


@pytest.mark.parametrize("data", [
    b'{"accounts":[{"x":1},{"x":2},{"x":"three"},{"x":"four"}]}',  # numbers, then text: one reading refuses
    b'{"explain":true,"accounts":[{"x":1},{"x":2},{"x":3},{"x":4}],"explain":false}',  # a key in both halves
    b'{"as_of":"2024-01-01","accounts":[{"x":1},{"x":2},{"x":3},{"x":4}],"as_of":"2024-01-02"}',
])
def test_halves_one_reading_would_refuse_are_left_to_the_usual_reading(monkeypatch, data):
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", 0)
    assert len(batchbody._halves(data)) == 2
    assert read_batch(data) is None


@pytest.mark.parametrize("data", [
    b'{"accounts":[{"x":1},{"x":2}  {"x":3},{"x":4}]}',  # no comma where the body is cut: never cut away
    b'{"accounts":[{"x":1},{"x":2}, "y": 1, {"x":3}]}',
    b'{"accounts":[{"x":1}]}',  # one account
])
def test_a_body_is_only_cut_between_two_accounts(monkeypatch, data):
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", 0)
    assert batchbody._halves(data) == [data]
    assert batchbody._halves(b'{"accounts":[{"x":1},\n {"x":2}]}') == [b'{"accounts":[{"x":1}]}',
                                                                          b'{"accounts":[{"x":2}]}']
    if data.count(b"{") > 2:
        assert read_batch(data) is None


@pytest.mark.usefixtures("any_size")
def test_as_of_is_read_by_the_schema_and_refused_as_it_would_be():
    from marshmallow import ValidationError

    for as_of in ("1 March 2024", "2024-03-01T10:00:00", "2024-02-30"):
        data = json.dumps({"accounts": [{"x": 1}], "as_of": as_of}).encode()
        with pytest.raises(ValidationError) as arrow:
            read_batch(data)
        with pytest.raises(ValidationError) as schema:
            usual(data)
        assert arrow.value.messages == schema.value.messages
    data = json.dumps({"accounts": [{"x": 1, "d": "2024-01-31"}], "as_of": "2024-03-01", "explain": True}).encode()
    assert assert_reads_alike(data)  # `2024-03-01`, a moment to Arrow, read again as text


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
_CELLS = {
    "text": st.one_of(_TEXT, st.sampled_from(["2024-03-01", "2024-03-01T10:00:00", " a ", "", "1001"])),
    "int": st.integers(-(2**70), 2**70),
    "float": st.floats(allow_nan=True, allow_infinity=False),
    "flag": st.booleans(),
    "null": st.none(),
    "list": st.lists(_TEXT, max_size=2),
}


@st.composite
def bodies(draw):
    keys = draw(st.lists(st.sampled_from(["a", "b", "客户名称", "Revenue (12m)", "x y"]), min_size=1, max_size=4,
                         unique=True))
    kinds = {k: draw(st.lists(st.sampled_from(sorted(_CELLS)), min_size=1, max_size=2)) for k in keys}
    accounts = []
    for _ in range(draw(st.sampled_from([1, 2, 3, 6, batchbody.FIRST_ACCOUNTS + 3]))):
        account = {}
        for k in draw(st.permutations(keys)):
            if draw(st.integers(0, 9)) == 0:
                continue  # a key this account lacks
            account[k] = draw(_CELLS[draw(st.sampled_from(kinds[k]))])
        accounts.append(account)
    body = {"accounts": accounts}
    if draw(st.booleans()):
        body["explain"] = draw(st.booleans())
        if draw(st.booleans()):  # before the accounts
            body = {"explain": body["explain"], "accounts": accounts}
    style = draw(st.sampled_from(["default", "compact", "indent", "ascii"]))
    text = json.dumps(body, ensure_ascii=style == "ascii", indent=2 if style == "indent" else None,
                      separators=(",", ":") if style == "compact" else None)
    return text.encode()


@pytest.mark.usefixtures("any_size")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies())
def test_generated_bodies_read_alike_or_are_left_to_the_usual_reading(data):
    assert_reads_alike(data)


def test_the_generated_bodies_are_mostly_read_by_arrow(monkeypatch):
    """The property above would hold of a reader that always gave None: most bodies of plain cells must be read."""
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    for split in (batchbody._LARGEST, 0):  # in one reading, in halves
        monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", split)
        read = 0
        for seed in range(60):
            accounts = [{"a": f"客户{seed}-{i}", "b": i * 1.5 if i % 3 else None, "c": i, "d": "2024-03-01"}
                        for i in range(1, 5)]
            read += assert_reads_alike(json.dumps({"accounts": accounts}).encode())
        assert read == 60


def test_a_large_batch_is_answered_and_recorded_as_the_usual_reading_would(app, monkeypatch):
    """Through the app: the same results, errors and warnings, and the same recorded inputs, whether the body is
    read by Arrow or as usual (the threshold raised past it)."""
    from tests.server.conftest import clients

    viewer = clients(app)["viewer"]
    accounts = json.loads(synthetic_portfolio(1500, seed=8).to_json(orient="records", date_format="iso"))
    for i in (3, 400, 1499):
        accounts[i]["first_order_date"] = "not a date"  # a row error each
    accounts[7]["last_order_date"] = "2024-03-01"
    data = json.dumps({"accounts": accounts, "explain": False}).encode()
    assert read_batch(data) is not None
    answers = []
    for threshold, split in ((batchbody.ARROW_BODY_BYTES, 0), (batchbody.ARROW_BODY_BYTES, len(data) + 1),
                             (len(data) + 1, len(data) + 1)):  # Arrow in halves, Arrow in one reading, as usual
        monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", threshold)
        monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", split)
        response = viewer.post("/v1/evaluate", data=data, headers={"Content-Type": "application/json"})
        assert response.status_code == 200
        answers.append(response.json)
    arrow, whole, usual_answer = answers
    for key in ("results", "errors", "warnings"):
        assert whole[key] == usual_answer[key]
    assert [e["row"] for e in arrow["errors"]] == [3, 400, 1499]
    assert len(arrow["results"]) == 1497
    for key in ("results", "errors", "warnings", "rules_version", "as_of"):
        assert arrow[key] == usual_answer[key]
    log = app.extensions["kam"].decisions
    recorded = [log.get(answer["decision_id"]) for answer in answers]
    for other in recorded[1:]:
        pd.testing.assert_frame_equal(recorded[0].inputs, other.inputs, check_exact=True)
        pd.testing.assert_frame_equal(recorded[0].outputs, other.outputs, check_exact=True)


def test_a_large_body_arrow_refuses_is_answered_as_usual(app):
    """Text in one account where the others have numbers: Arrow refuses the body, the usual reading gives the
    row error; invalid JSON gets the usual reading's 400 with its line and column."""
    from tests.server.conftest import clients

    viewer = clients(app)["viewer"]
    accounts = json.loads(synthetic_portfolio(1500, seed=8).to_json(orient="records", date_format="iso"))
    accounts[10]["revenue_12m"] = "lots"
    data = json.dumps({"accounts": accounts}).encode()
    assert len(data) >= batchbody.ARROW_BODY_BYTES and read_batch(data) is None
    response = viewer.post("/v1/evaluate", data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert [(e["row"], e["field"]) for e in response.json["errors"]] == [(10, "revenue_12m")]
    broken = data[:-2] + b"\n, ]}"
    response = viewer.post("/v1/evaluate", data=broken, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "line 2 column" in response.json["detail"]


@pytest.mark.parametrize("data, flat", [
    (b'{"accounts": [{"x": 1}, {"x": 2}], "explain": false}', True),
    (b'{"explain": true, "accounts": [\n  {"x": 1}\n]}', True),
    (b'{"accounts": []}', False),
    (b'{"accounts": [{"x": "[VIP]"}]}', False),  # brackets in text: read as usual
    (b'{"accounts": [{"x": [1]}]}', False),
    (b'{"accounts": [{"x": {"y": 1}}]}', False),
    (b'{"accounts": [{"x": 1}]}{"accounts": [{"x": 1}]}', False),
    (b'[{"x": 1}]', False),
    (b"[[[[[1]]]]]", False),
    (b'{"accounts": [{"s": "}", "x": 1, "t": "{"}]}', False),  # text pairing with brackets: `{}{}` to a count
    (b'{"accounts": [{"s": "}", "x": {"s": "}", "x": 1, "t": "{"}, "t": "{"}]}', False),  # ... nesting deeper
    (b'{"accounts": [{"x": "}, {"}]}', True),  # text where a list's items would be: nests nothing
    (b'{"accounts": [' + b" " * 8 + b'{"x": 1}]}', True),
    (b'{"accounts": [' + b" " * 9 + b'{"x": 1}]}', False),  # whitespace past the look back: read as usual
])
def test_only_one_object_holding_one_list_of_flat_objects_is_read_by_arrow(data, flat):
    assert batchbody._skeleton(data) is flat


@pytest.mark.usefixtures("any_size")
def test_text_that_looks_like_accounts_is_read_as_the_text_it_is():
    first = b", ".join(b'{"x": "%d"}' % i for i in range(batchbody.FIRST_ACCOUNTS + 2))
    data = b'{"accounts": [' + first + b', {"x": "}, {"}, {"x": "a"}, {"x": "b}, {c"}]}'
    assert batchbody._skeleton(data)
    assert assert_reads_alike(data) or len(batchbody._halves(data)) == 2


def test_a_body_cut_inside_text_is_left_to_the_usual_reading(monkeypatch):
    """A cut where the text of an account holds `}, {` (the middle of the body): its first half's text is never
    closed, which Arrow refuses."""
    monkeypatch.setattr(batchbody, "ARROW_BODY_BYTES", 0)
    monkeypatch.setattr(batchbody, "SPLIT_BODY_BYTES", 0)
    data = b'{"accounts": [{"a": 1}, {"x": "' + b"p" * 100 + b'}, {' + b"q" * 100 + b'"}]}'
    first, second = batchbody._halves(data)
    assert first.endswith(b'p}]}') and second.startswith(b'{"accounts":[{qqq')
    assert read_batch(data) is None
    assert usual(data)[0]["x"][1] == "p" * 100 + "}, {" + "q" * 100  # (as the usual reading then reads it)


def test_a_large_deeply_nested_body_is_left_to_the_usual_reading_before_arrow_sees_it(app):
    """Arrow's reader crashes the process on values nested ~10,000 deep: such a body never reaches it (run in a
    child process, so that a crash fails this test rather than the run); through the app, the usual reading's
    400."""
    import subprocess
    import sys

    deep = 20_000
    pad = b'{"accounts":[{"pad":"' + b"p" * 270_000 + b'","x":'
    bodies = [pad + b"[" * deep + b"]" * deep + b"}]}", pad + b'{"a":' * deep + b"1" + b"}" * deep + b"}]}",
              b"null" + pad + b"1}]}"]  # (Arrow's reader crashes on a `null` before the object too)
    # brackets in text paired with the nesting ones, so that they count as `{}{}...`, past the first accounts;
    # in one reading (20,000 deep) and in halves (50,000: 1.1 MB)
    first = ",".join(f'{{"a":{i}}}' for i in range(batchbody.FIRST_ACCOUNTS + 4))
    for depth in (deep, 50_000):
        bodies.append(('{"accounts":[' + first + "," + '{"s":"}","x":' * depth + "1" + ',"t":"{"}' * depth + "]}")
                      .encode())
    assert len(bodies[-1]) >= batchbody.SPLIT_BODY_BYTES
    for data in bodies:
        child = subprocess.run([sys.executable, "-c", (
            "import sys\n"
            "from server.batchbody import read_batch\n"
            "print(read_batch(sys.stdin.buffer.read()))")], input=data, capture_output=True, timeout=120)
        assert child.returncode == 0 and child.stdout.strip() == b"None", child.stderr[-500:]
    data = bodies[0]
    from tests.server.conftest import clients

    response = clients(app)["viewer"].post("/v1/evaluate", data=data, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json["detail"]
