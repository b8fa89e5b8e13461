"""Ranking rules: quantile bands and Pareto classes over the portfolio, within groups, with ties and nulls."""

import random
from collections import Counter

import pytest

from kamcore import RuleBook, RuleBookError

AS_OF = "2026-01-01"
FIELDS = """
fields:
  - {name: account_id, type: string}
  - {name: revenue, type: number}
  - {name: region, type: string}
"""
QUANTILE = "[{label: A, share: 20%}, {label: B, share: 30%}, {label: C, share: 30%}, {label: D, share: 20%}]"
PARETO = "[{label: key, share: 80%}, {label: other, share: 20%}]"


def ranking(method="quantile", bands=QUANTILE, **options):
    extra = "".join(f"\n    {key}: {value}" for key, value in options.items())
    rules = f"""
rules:
  - id: rank
    kind: ranking
    label: {{zh: 分级, en: Class}}
    method: {method}
    measure: revenue{extra}
    bands: {bands}
    output: cls
"""
    return RuleBook.from_files({"fields.yaml": FIELDS, "ranking.yaml": rules})


def classes(book, accounts):
    ev = book.evaluate(accounts, as_of=AS_OF)
    return [ev.outputs(i)["cls"] for i in range(len(accounts))]


def revenues(*values):
    return [{"account_id": f"C{i:02d}", "revenue": v} for i, v in enumerate(values)]


def test_quantile_on_ten_accounts_gives_exactly_2_3_3_2():
    accounts = revenues(50, 100, 10, 80, 30, 90, 20, 70, 40, 60)
    got = classes(ranking(), accounts)
    assert Counter(got) == {"A": 2, "B": 3, "C": 3, "D": 2}
    by_revenue = [c for _, c in sorted(zip([a["revenue"] for a in accounts], got, strict=True), reverse=True)]
    assert by_revenue == list("AABBBCCCDD")


def test_quantile_on_one_account_gives_the_top_band():
    assert classes(ranking(), revenues(5)) == ["A"]


def test_pareto_the_account_that_crosses_80_percent_is_key():
    # shares above: 0, 70% (this one crosses 80%), 90%, 96%
    assert classes(ranking("pareto", PARETO), revenues(700, 200, 60, 40)) == ["key", "key", "other", "other"]


def test_pareto_an_account_with_exactly_80_percent_above_it_is_not_key():
    # shares above: 0, 50%, 80%, 95%
    ev = ranking("pareto", PARETO).evaluate(revenues(500, 300, 150, 50), as_of=AS_OF)
    assert [ev.outputs(i)["cls"] for i in range(4)] == ["key", "key", "other", "other"]
    assert [ev.explain(i).step("rank")["share"] for i in range(4)] == pytest.approx([0, 0.5, 0.8, 0.95])


def test_pareto_negative_measures_count_as_zero():
    # Counted as -1000, the total would be 0 and nobody key; counted as 0, 600 and 300 make the top 80%.
    assert classes(ranking("pareto", PARETO), revenues(600, -1000, 100, 300)) == ["key", "other", "other", "key"]


def test_ascending_order_puts_the_smallest_first():
    assert classes(ranking(order="ascending"), revenues(*range(10))) == list("AABBBCCCDD")


def test_within_bands_each_group_separately_including_a_group_of_one():
    accounts = [{"account_id": f"E{i}", "region": "east", "revenue": 100 - i} for i in range(10)]
    accounts += [{"account_id": f"W{i}", "region": "west", "revenue": 5 - i} for i in range(5)]
    accounts += [{"account_id": "N0", "region": "north", "revenue": 1}]
    random.Random(3).shuffle(accounts)
    got = dict(zip([a["account_id"] for a in accounts], classes(ranking(within="region"), accounts), strict=True))
    assert [got[f"E{i}"] for i in range(10)] == list("AABBBCCCDD")
    assert [got[f"W{i}"] for i in range(5)] == list("ABBCD")
    assert got["N0"] == "A"


def test_split_ties_are_broken_by_the_tie_break_column():
    accounts = [{"account_id": i, "revenue": 5} for i in ("C03", "C01", "C05", "C02", "C04")]
    got = classes(ranking(tie_break="[account_id]"), accounts)
    assert dict(zip(["C03", "C01", "C05", "C02", "C04"], got, strict=True)) == {
        "C01": "A", "C02": "B", "C03": "B", "C04": "C", "C05": "D"}


def test_split_ties_without_a_tie_break_follow_input_order():
    assert classes(ranking(), revenues(5, 5, 5, 5, 5)) == list("ABBCD")


def test_split_ties_are_deterministic_when_untied_rows_move():
    tied = [{"account_id": f"T{i}", "revenue": 50} for i in range(4)]
    untied = [{"account_id": f"U{i}", "revenue": v} for i, v in enumerate((90, 80, 70, 20, 10, 5))]
    first = untied[:3] + tied + untied[3:]
    second = untied[::-1][:2] + tied[:2] + untied[::-1][2:] + tied[2:]  # tied rows keep their relative order
    for book in (ranking(), ranking(tie_break="[account_id]")):
        by_id = [dict(zip([a["account_id"] for a in rows], classes(book, rows), strict=True))
                 for rows in (first, second)]
        assert by_id[0] == by_id[1]
        assert [by_id[0][f"T{i}"] for i in range(4)] == ["B", "B", "C", "C"]


def test_together_gives_tied_accounts_the_same_band():
    values = (10, 9, 9, 9, 5, 4, 3, 2, 1, 0)
    assert classes(ranking(), revenues(*values)) == list("AABBBCCCDD")
    assert classes(ranking(ties="together"), revenues(*values)) == list("AAAABCCCDD")


def test_together_ties_in_pareto_share_one_class():
    assert classes(ranking("pareto", PARETO), revenues(400, 200, 200, 200)) == ["key", "key", "key", "other"]
    assert classes(ranking("pareto", PARETO, ties="together"), revenues(400, 200, 200, 200)) == ["key"] * 4


def test_null_measure_ranks_last_with_a_warning_not_an_error():
    accounts = revenues(None, 10, 9, 8, 7, 6, 5, 4, 3, 2)
    ev = ranking().evaluate(accounts, as_of=AS_OF)
    assert [ev.outputs(i)["cls"] for i in range(10)] == list("DAABBBCCCD")
    assert ev.errors == []
    [warning] = ev.warnings
    assert (warning.row, warning.rule, warning.field, warning.severity) == (0, "rank", "cls", "warning")
    assert "empty" in warning.message
    assert ev.ok.all()


def test_null_measure_is_explained_as_not_ranked():
    """Its trace has no rank (not "rank 10 of 9", nor "rank 1 of 0" for one account alone), in both languages."""
    for accounts, of in ((revenues(None, 10, 9, 8, 7, 6, 5, 4, 3, 2), 9), (revenues(None), 0)):
        ev = ranking().evaluate(accounts, as_of=AS_OF)
        step = ev.explain(0).step("rank")
        assert (step["rank"], step["of"]) == (None, of)
        assert f"not ranked among the {of} with a value" in ev.explain(0).text("en")
        assert f"不参与 {of} 个有值客户的排名" in ev.explain(0).text("zh")
        if of:
            assert ev.explain(9).step("rank")["rank"] == 9  # the accounts with a value keep their ranks


def test_null_measure_in_pareto_is_other():
    ev = ranking("pareto", PARETO).evaluate(revenues(None, 700, 200, 100), as_of=AS_OF)
    assert [ev.outputs(i)["cls"] for i in range(4)] == ["other", "key", "key", "other"]
    assert [w.row for w in ev.warnings] == [0]


def test_null_measure_with_ascending_order_still_ranks_last():
    assert classes(ranking(order="ascending"), revenues(*range(9), None)) == list("AABBBCCCDD")


def test_null_measures_all_go_to_the_last_band_and_take_no_share_of_the_others():
    accounts = revenues(70, None, 60, 50, None, 40, 30, 20, None, 10)
    ev = ranking().evaluate(accounts, as_of=AS_OF)
    got = [ev.outputs(i)["cls"] for i in range(10)]
    assert [got[i] for i in (1, 4, 8)] == ["D", "D", "D"]
    assert [c for c, a in zip(got, accounts, strict=True) if a["revenue"] is not None] == list("AABBCCD")
    assert [w.row for w in ev.warnings] == [1, 4, 8]
    assert all(w.message.endswith("ranked last (D)") for w in ev.warnings)


def test_null_measure_alone_in_its_group_gets_the_last_band():
    accounts = [{"account_id": f"E{i}", "region": "east", "revenue": 10 - i} for i in range(5)]
    accounts += [{"account_id": "N0", "region": "north", "revenue": None}]
    assert classes(ranking(within="region"), accounts) == list("ABBCD") + ["D"]


def test_unreadable_measure_is_an_error_with_null_output_and_takes_no_share():
    accounts = revenues("abc", 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
    ev = ranking().evaluate(accounts, as_of=AS_OF)
    got = [ev.outputs(i)["cls"] for i in range(11)]
    assert got[0] is None
    assert got[1:] == list("AABBBCCCDD")  # the ten others banded as if the bad row were absent
    [error] = ev.errors
    assert (error.row, error.field, error.severity) == (0, "revenue", "error")
    assert "'abc'" in error.message
    assert ev.warnings == []  # an unreadable cell is not also reported as an empty measure
    assert ev.frame["cls"].isna().tolist() == [True] + [False] * 10


def test_shares_not_adding_to_100_percent_is_a_validation_error():
    with pytest.raises(RuleBookError) as raised:
        ranking(bands="[{label: A, share: 20%}, {label: B, share: 30%}]")
    [problem] = raised.value.problems
    assert problem.is_error and problem.rule == "rank" and problem.file == "ranking.yaml"
    assert "shares add up to 0.5" in problem.message and "100%" in problem.message


def test_explain_gives_rank_group_size_and_share_above():
    ev = ranking().evaluate(revenues(30, 10, 20, 40), as_of=AS_OF)
    step = ev.explain(2).step("rank")
    assert (step["method"], step["rank"], step["of"], step["share"]) == ("quantile", 3, 4, 0.5)
    assert step["outputs"] == {"cls": "C"}
    assert [b["label"] for b in step["bands"]] == ["A", "B", "C", "D"]
    assert "rank 3 of 4, share above 50.0%" in ev.explain(2).text()


def test_sorting_by_several_keys_is_numpys_lexsort():
    """rank sorts by (group, measure, tie-breaks) one stable sort per key, small whole-number keys as uint16:
    the same order as np.lexsort, ties, nulls (NaN, inf), -0.0 and wide ranges included."""
    import numpy as np

    from kamcore.kinds.ranking import _lexsort

    rng = np.random.default_rng(7)
    for _ in range(300):
        m = int(rng.integers(0, 120))
        measure = rng.choice([0.0, -0.0, 1.0, np.nan, np.inf, -np.inf, 2.5], m)
        groups = rng.integers(-3, 4, m).astype(np.int64)
        codes = rng.choice([0, 2**31 - 1, -5, 70_000], m).astype(np.int64)  # text codes, null as int32 max
        for keys in [(codes, measure, groups), (groups, codes), (measure,), (codes, groups, measure, groups)]:
            assert _lexsort(keys).tolist() == np.lexsort(keys).tolist()
