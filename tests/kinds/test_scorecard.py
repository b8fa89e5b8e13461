"""Scorecards: bands per indicator, weighted points summed to a score, cut-offs turning the score into a grade."""

import pytest

from kamcore import RuleBook, RuleBookError

AS_OF = "2026-01-01"
FIELDS = """
fields:
  - {name: revenue, type: number}
  - {name: margin, type: number}
  - {name: credit, type: number}
"""
# revenue 30% and margin 70%, written the two ways a weight may be written.
TWO_INDICATORS = """
rules:
  - id: sc
    kind: scorecard
    label: {zh: 评分, en: Score}
    indicators:
      - name: rev
        expr: revenue
        weight: 0.3
        label: {zh: 销售, en: Revenue}
        bands:
          - {when: ">= 10", points: 100, note: big}
          - {when: ">= 5", points: 50}
          - {when: ">= 0", points: 10}
        missing_points: 7
      - name: mgn
        expr: margin
        weight: "70%"
        bands:
          - {when: ">= 0.3", points: 100}
          - {when: "< 0.3", points: 40}
    score: score
    grade:
      name: grade
      cutoffs:
        - {min: 80, grade: A}
        - {min: 50, grade: B}
        - {grade: C}
"""


def load(rules, fields=FIELDS):
    return RuleBook.from_files({"fields.yaml": fields, "scorecard.yaml": rules})


def scorecard(indicators, cutoffs=None):
    """A one-rule book; `indicators` and `cutoffs` are YAML flow lists."""
    grade = f"\n    grade: {{name: grade, cutoffs: {cutoffs}}}" if cutoffs else ""
    return load(f"""
rules:
  - id: sc
    kind: scorecard
    label: Score
    indicators: {indicators}
    score: score{grade}
""")


def results(book, accounts):
    ev = book.evaluate(accounts, as_of=AS_OF)
    return [ev.outputs(i) for i in range(len(accounts))]


def test_weighted_total_with_decimal_and_percent_weights():
    [out] = results(load(TWO_INDICATORS), [{"revenue": 12, "margin": 0.1}])
    assert out["score"] == pytest.approx(0.3 * 100 + 0.7 * 40)


def test_percent_and_decimal_weights_mean_the_same():
    as_decimal = load(TWO_INDICATORS.replace('weight: "70%"', "weight: 0.7"))
    as_percent = load(TWO_INDICATORS.replace("weight: 0.3", 'weight: "30%"'))
    accounts = [{"revenue": r, "margin": m} for r in (1, 6, 20) for m in (0.1, 0.5)]
    assert results(as_decimal, accounts) == results(as_percent, accounts)
    assert as_percent.rule("sc").indicators[0]["weight"] == pytest.approx(0.3)


def test_first_matching_band_wins_even_when_later_bands_also_match():
    # 12 matches all three revenue bands; 6 matches ">= 5" and ">= 0"
    scores = [o["score"] for o in results(load(TWO_INDICATORS), [
        {"revenue": 12, "margin": 0.5}, {"revenue": 6, "margin": 0.5}, {"revenue": 1, "margin": 0.5}])]
    assert scores == pytest.approx([0.3 * 100 + 70, 0.3 * 50 + 70, 0.3 * 10 + 70])


def test_missing_points_when_the_input_is_null():
    [out] = results(load(TWO_INDICATORS), [{"revenue": None, "margin": 0.5}])
    assert out["score"] == pytest.approx(0.3 * 7 + 70)


def test_missing_points_when_no_band_matches():
    [out] = results(load(TWO_INDICATORS), [{"revenue": -3, "margin": 0.5}])
    assert out["score"] == pytest.approx(0.3 * 7 + 70)


def test_missing_points_default_to_zero():
    book = scorecard('[{name: m, expr: margin, weight: 1, bands: [{when: ">= 0.3", points: 100}]}]')
    assert [o["score"] for o in results(book, [{"margin": None}, {"margin": 0.1}, {"margin": 0.4}])] == [0, 0, 100]


@pytest.mark.parametrize(("revenue", "margin", "grade"), [
    (12, 0.5, "A"),  # 30 + 70 = 100
    (6, 0.5, "A"),   # 15 + 70 = 85
    (12, 0.1, "B"),  # 30 + 28 = 58
    (-1, 0.1, "C"),  # 2.1 + 28 = 30.1: the catch-all
])
def test_grade_cutoffs_apply_to_the_weighted_score(revenue, margin, grade):
    [out] = results(load(TWO_INDICATORS), [{"revenue": revenue, "margin": margin}])
    assert out["grade"] == grade


@pytest.mark.parametrize(("points", "grade"), [(80, "A"), (79.99, "B"), (50, "B"), (49.99, "C"), (0, "C")])
def test_score_exactly_at_a_cutoff_gets_that_grade(points, grade):
    book = scorecard(f"[{{name: m, expr: margin, weight: 100%, bands: [{{when: '-', points: {points}}}]}}]",
                     "[{min: 80, grade: A}, {min: 50, grade: B}, {grade: C}]")
    [out] = results(book, [{"margin": 0.2}])
    assert out == {"score": points, "grade": grade}


def test_catch_all_last_cutoff_takes_every_lower_score_including_negative():
    book = scorecard("[{name: m, expr: margin, weight: 1, bands: [{when: '-', points: -5}]}]",
                     "[{min: 0, grade: ok}, {grade: low}]")
    assert results(book, [{"margin": 1}]) == [{"score": -5, "grade": "low"}]


def test_without_a_catch_all_a_score_below_every_cutoff_has_no_grade():
    book = scorecard("[{name: m, expr: margin, weight: 1, bands: [{when: '>= 0.5', points: 90}]}]",
                     "[{min: 80, grade: A}, {min: 50, grade: B}]")
    assert results(book, [{"margin": 0.6}, {"margin": 0.1}]) == [
        {"score": 90, "grade": "A"}, {"score": 0, "grade": None}]


def test_exact_score_at_a_cutoff_is_not_lost_to_floating_point():
    # summed as plain floats, 0.7 * 85 + 0.2 * 0 + 0.1 * 5 is 59.99999999999999
    book = scorecard("[{name: a, expr: revenue, weight: 70%, bands: [{when: '-', points: 85}]},"
                     " {name: b, expr: margin, weight: 20%, bands: [{when: '-', points: 0}]},"
                     " {name: c, expr: credit, weight: 10%, bands: [{when: '-', points: 5}]}]",
                     "[{min: 60, grade: A}, {grade: B}]")
    [out] = results(book, [{"revenue": 1, "margin": 1, "credit": 1}])
    assert out == {"score": 60, "grade": "A"}


def test_weights_not_adding_to_100_percent_is_a_warning_not_an_error():
    book = load(TWO_INDICATORS.replace('"70%"', '"60%"'))
    [problem] = book.problems
    assert problem.severity == "warning"
    assert not problem.is_error
    assert problem.rule == "sc"
    assert problem.file == "scorecard.yaml" and problem.line is not None
    assert "weights add up to 0.9" in problem.message
    # the weights are used as written, not rescaled
    [out] = results(book, [{"revenue": 12, "margin": 0.5}])
    assert out["score"] == pytest.approx(0.3 * 100 + 0.6 * 100)


def test_weights_adding_to_100_percent_give_no_problem():
    assert load(TWO_INDICATORS).problems == []


def test_cutoffs_must_descend():
    with pytest.raises(RuleBookError) as raised:
        load(TWO_INDICATORS.replace("{min: 80, grade: A}", "{min: 40, grade: A}"))
    [problem] = [p for p in raised.value.problems if p.is_error]
    assert problem.rule == "sc"
    assert problem.file == "scorecard.yaml"
    assert problem.line is not None and problem.line > 1
    assert "cut-offs must go from the highest" in problem.message


def test_only_the_last_cutoff_may_leave_out_min():
    with pytest.raises(RuleBookError) as raised:
        load(TWO_INDICATORS.replace("{min: 50, grade: B}", "{grade: B}"))
    assert any("only the last cut-off may leave out `min`" in p.message for p in raised.value.problems)


def test_explain_shows_band_points_and_weighted_points_per_indicator():
    ev = load(TWO_INDICATORS).evaluate([{"revenue": 6, "margin": 0.1}], as_of=AS_OF)
    step = ev.explain(0).step("sc")
    assert step["kind"] == "scorecard"
    assert step["outputs"] == {"score": pytest.approx(43), "grade": "C"}
    rev, mgn = step["indicators"]
    assert rev == {"indicator": "rev", "label": {"zh": "销售", "en": "Revenue"}, "value": 6, "band": ">= 5",
                   "note": None, "points": 50.0, "weight": 0.3, "weighted": pytest.approx(15.0)}
    assert (mgn["band"], mgn["points"], mgn["weight"], mgn["weighted"]) == ("< 0.3", 40.0, 0.7, pytest.approx(28.0))


def test_explain_shows_missing_points_when_no_band_matched():
    ev = load(TWO_INDICATORS).evaluate([{"revenue": None, "margin": 0.5}], as_of=AS_OF)
    rev = ev.explain(0).step("sc")["indicators"][0]
    assert rev["value"] is None
    assert rev["band"] is None
    assert rev["note"] == "no band matched"
    assert rev["points"] == 7.0 and rev["weighted"] == pytest.approx(2.1)


def test_explain_text_has_one_line_per_indicator():
    ev = load(TWO_INDICATORS).evaluate([{"revenue": 12, "margin": 0.5}], as_of=AS_OF)
    text = ev.explain(0).text("zh")
    assert "评分 [sc]: score = 100, grade = A" in text
    assert "rev = 12: 区间 >= 10 → 100 分 × 0.3" in text
    assert "mgn = 0.5: 区间 >= 0.3 → 100 分 × 0.7" in text
