import datetime as dt

import pytest

from kamcore.expressions.checker import check
from kamcore.expressions.parser import parse_unary_tests
from kamcore.expressions.types import Type
from kamcore.kinds import table_analysis
from kamcore.kinds.table_analysis import OTHER_TEXT, UNKNOWN, Finding, analyse

N, S, D, B = Type.NUMBER, Type.STRING, Type.DATE, Type.BOOLEAN
FIELDS = {"target_revenue": Type.NUMBER, "home_region": Type.STRING}


def run(policy, types, rows, outputs=None, needs_coverage=False):
    """rows: one tuple of cell texts per row; rows are named r1, r2, ..."""
    cells = []
    for texts in rows:
        row = []
        for text, type_ in zip(texts, types, strict=True):
            tree = parse_unary_tests(text)
            check(tree, text, FIELDS.get, list(FIELDS), type_)
            row.append(tree)
        cells.append(row)
    ids = [f"r{i + 1}" for i in range(len(rows))]
    outputs = outputs if outputs is not None else [["x"] for _ in rows]
    return analyse(policy, types, cells, ids, outputs, needs_coverage)


def overlaps(types, rows):
    return [f.rows for f in run("UNIQUE", types, rows) if f.kind == "overlap"]


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("< 100", ">= 100", False),
    ("<= 100", ">= 100", True),
    ("[0..100)", "[100..200]", False),
    ("[0..100]", "]100..200]", False),
    ("[0..100]", "(99.5..100.5)", True),
    ("< -5", "[-5..0]", False),
    ("<= -5", "[-5..0]", True),
    ("= 5", "[1..10]", True),
    ("10%", "0.1", True),
    ("!= 5", "5", False),
])
def test_numeric_bounds(a, b, overlap):
    assert bool(overlaps([N], [(a,), (b,)])) == overlap


def test_overlap_reports_rows_example_and_policy():
    rows = [("<= 100", '"gov"'), ("< 0", '"retail"'), (">= 100", '"gov", "retail"')]
    [finding] = run("UNIQUE", [N, S], rows)
    assert finding == Finding(
        kind="overlap", rows=("r1", "r3"), severity="error", example={0: 100.0, 1: "gov"},
        message='rows r1 and r3 overlap: both match input 1 = 100, input 2 = "gov"; '
                "under UNIQUE only one row may match",
    )


def test_rows_apart_on_one_input_do_not_overlap():
    assert overlaps([N, S], [("> 10", '"gov"'), ("> 20", '"retail"')]) == []


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ('"finance", "retail"', '"retail"', True),
    ('"finance", "retail"', 'not("finance", "retail")', False),
    ('not("gov")', '"gov"', False),
    ('not("gov")', '"retail"', True),
    ('!= "gov"', '"gov"', False),
    ('< "m"', '"apple"', True),
    ('< "m"', '"zebra"', False),
])
def test_text_lists_and_negation(a, b, overlap):
    assert bool(overlaps([S], [(a,), (b,)])) == overlap


@pytest.mark.parametrize(("cell", "matches_null"), [
    ("-", True),
    ("null", True),
    ('not("gov")', True),
    ('!= "gov"', True),
    ('"gov"', False),
    ('not(null)', False),
])
def test_null_in_text_cells(cell, matches_null):
    assert bool(overlaps([S], [(cell,), ("null",)])) == matches_null


@pytest.mark.parametrize(("cell", "matches_null"), [("< 5", False), ("not(< 5)", False), ("[1..5]", False),
                                                    ("not(5)", True), ("-", True)])
def test_null_in_number_cells(cell, matches_null):
    found = overlaps([N], [(cell,), ("null",)])
    assert bool(found) == matches_null


def test_null_overlap_example_is_null():
    [finding] = run("UNIQUE", [S], [('not("gov")',), ("null",)])
    assert finding.example == {0: None}
    assert "input 1 = null" in finding.message


def test_dates():
    assert overlaps([D], [('< @"2024-01-01"',), ('>= @"2024-01-01"',)]) == []
    assert overlaps([D], [('<= @"2024-01-01"',), ('>= @"2024-01-01"',)]) == [("r1", "r2")]
    # Dates are whole days: nothing lies between 2023-12-31 and 2024-01-01.
    assert run("FIRST", [D], [('<= @"2023-12-31"',), ('>= @"2024-01-01"',)], needs_coverage=True) == []


def test_booleans():
    assert overlaps([B], [("true",), ("false",)]) == []
    [gap] = run("FIRST", [B], [("true",)], needs_coverage=True)
    assert gap.example == {0: False}


def test_any_conflict_only_when_outputs_differ():
    rows = [("[0..100]",), ("[50..150]",), ("> 200",)]
    assert run("ANY", [N], rows, outputs=[["gold"], ["gold"], ["silver"]]) == []
    [finding] = run("ANY", [N], rows, outputs=[["gold", 1], ["gold", 2], ["silver", 3]])
    assert (finding.kind, finding.rows, finding.severity) == ("conflict", ("r1", "r2"), "error")
    assert "output 2: 1 vs 2" in finding.message
    assert finding.example == {0: 50.0}


def test_any_ignores_expression_outputs():
    assert run("ANY", [N], [("> 0",), ("> 10",)], outputs=[[UNKNOWN, "a"], ["b", "a"]]) == []


def test_first_row_covered_by_two_earlier_rows_together():
    [finding] = run("FIRST", [N], [("< 100",), (">= 50",), ("[10..200]",)])
    assert (finding.kind, finding.rows, finding.severity) == ("unreachable", ("r1", "r2", "r3"), "warning")
    assert "row r3 can never be chosen" in finding.message and "rows r1 and r2" in finding.message


def test_first_dash_is_not_covered_without_null():
    # `< 100` and `>= 100` cover every number, but `-` also matches a missing (null) value.
    assert run("FIRST", [N, S], [("< 100", '"gov"'), (">= 100", '"gov"'), ("-", '"gov"')]) == []
    [finding] = run("FIRST", [N, S], [("< 100", '"gov"'), (">= 100", '"gov"'), ("[0..1]", '"gov"')])
    assert finding.rows == ("r1", "r3")


def test_first_reports_an_empty_row():
    [finding] = run("FIRST", [N], [("> 5",), ("[5..1]",)])
    assert finding.rows == ("r2",) and "can never match" in finding.message


def test_unique_does_not_look_for_unreachable_rows():
    assert run("RULE ORDER", [N], [("-",), ("> 5",)]) == []


def test_gap_with_example():
    [gap] = run("UNIQUE", [N], [("< 100",), ("> 100",)], needs_coverage=True)
    assert (gap.kind, gap.rows, gap.severity, gap.example) == ("gap", (), "warning", {0: 100.0})
    assert "input 1 = 100" in gap.message
    assert run("UNIQUE", [N], [("< 100",), ("> 100",)], needs_coverage=False) == []
    # Missing (null) values are not reported as a gap.
    assert run("UNIQUE", [N], [("< 100",), (">= 100",)], needs_coverage=True) == []


def test_gap_examples_per_type():
    [gap] = run("COLLECT", [N, S], [(">= 0", '"gov", "retail"')], needs_coverage=True)
    assert gap.example == {0: -1.0, 1: OTHER_TEXT}
    [gap] = run("COLLECT", [S], [('"gov", "retail"',)], needs_coverage=True)
    assert gap.example == {0: OTHER_TEXT} and "input 1 = any other text" in gap.message
    [gap] = run("COLLECT", [D], [('>= @"2024-01-01"',)], needs_coverage=True)
    assert gap.example == {0: dt.date(2023, 12, 31)}


def test_unknown_cells_never_produce_false_findings():
    rows = [("> target_revenue", '"gov"'), ("< 5", "home_region"), ("? > 1", '"gov"')]
    assert run("UNIQUE", [N, S], rows) == []
    assert run("ANY", [N, S], rows, outputs=[["a"], ["b"], ["c"]]) == []
    # An earlier data-dependent row never covers a later one.
    assert run("FIRST", [N], [("> target_revenue",), ("> 5",)]) == []
    # A data-dependent row may match anything, so it leaves no provable gap.
    assert run("FIRST", [N], [("< target_revenue",), (">= 100",)], needs_coverage=True) == []


def test_unknown_cell_in_checked_row_is_read_as_anything():
    [finding] = run("FIRST", [N, S], [("-", "-"), ("> target_revenue", '"gov"')])
    assert finding.rows == ("r1", "r2")


def test_gives_up_when_pieces_grow_past_the_cap(monkeypatch):
    rows = [("< 100", "< 100"), (">= 100", "-"), ("-", ">= 100"), ("[0..200]", "[0..200]")]
    [finding] = run("FIRST", [N, N], rows, needs_coverage=True)
    assert finding.rows == ("r1", "r2", "r3", "r4")
    monkeypatch.setattr(table_analysis, "MAX_BOXES", 1)
    assert run("FIRST", [N, N], rows, needs_coverage=True) == []
    assert run("FIRST", [N, N], rows[:1], needs_coverage=True) == []  # the gap check gives up too


def test_findings_are_deterministic_and_ordered():
    rows = [("> 0",), ("> 1",), ("> 2",)]
    assert [f.rows for f in run("UNIQUE", [N], rows)] == [("r1", "r2"), ("r1", "r3"), ("r2", "r3")]
    assert run("UNIQUE", [N], rows) == run("UNIQUE", [N], rows)


def test_unknown_hit_policy():
    with pytest.raises(ValueError, match="hit policy"):
        run("PICK ONE", [N], [("-",)])
