"""History per rule, semantic diff, blame per row and impact, on a real git repository in a temp dir."""

import pytest

from kamcore.store import RuleStore, UnknownRevision

FIELDS = """fields:
  - {name: account_id, type: string, label: {zh: 客户编号, en: Account ID}}
  - {name: revenue, type: number, label: {zh: 销售额, en: Revenue}}
"""


def tier_rule(rows):
    return f"""rules:
  - id: tier
    kind: decision_table
    label: {{zh: 客户等级, en: Tier}}
    hit_policy: FIRST
    inputs: [revenue]
    outputs:
      - {{name: tier, type: string, default: C}}
    rows:
{rows}
  - id: bonus
    kind: formula
    label: Bonus
    formulas:
      bonus: revenue * 0.01
"""


ROWS = ['      - {when: {revenue: ">= 5000000"}, then: A}',
        '      - {when: {revenue: ">= 1000000"}, then: B}']


def book_text(rows, bonus="0.01"):
    return tier_rule("\n".join(rows)).replace("revenue * 0.01", f"revenue * {bonus}")


@pytest.fixture
def store(tmp_path):
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "fields.yaml").write_text(FIELDS, encoding="utf-8")
    (seed / "tiering.yaml").write_text(book_text(ROWS), encoding="utf-8")
    return RuleStore.open(tmp_path / "data", seed=seed)


def lowered():
    return [ROWS[0].replace(">= 5000000", ">= 4000000"), ROWS[1]]


def test_history_of_one_rule_skips_commits_to_other_rules_in_the_same_file(store):
    store.commit({"tiering.yaml": book_text(ROWS, bonus="0.02")}, store.head(), "carol", "Bigger bonus")
    store.commit({"tiering.yaml": book_text(lowered())}, store.head(), "alice", "Lower the A threshold")
    assert [r.message for r in store.history(rule_id="tier")] == ["Lower the A threshold", store.history()[-1].message]
    assert [r.message for r in store.history(rule_id="bonus")][:2] == ["Lower the A threshold", "Bigger bonus"]
    assert store.history(rule_id="nothing") == []


def test_semantic_diff_names_the_threshold_that_moved(store):
    base = store.head()
    rev = store.commit({"tiering.yaml": book_text(lowered())}, base, "alice", "Lower the A threshold")
    diff = store.diff(base, rev)
    ((rule_id, _item, change, threshold),) = diff.thresholds
    assert rule_id == "tier" and change.field == "when.revenue"
    assert (threshold.old, threshold.new, threshold.direction) == (5000000, 4000000, "lowered")
    assert "tiering.yaml" in diff.to_dict()["files"][0]["path"]
    assert store.diff(rev, rev).empty


def test_blame_follows_rows_not_positions(store):
    seed = store.head()
    store.commit({"tiering.yaml": book_text(lowered())}, seed, "alice", "Lower the A threshold")
    inserted = ['      - {when: {revenue: ">= 20000000"}, then: A}', *lowered()]
    store.commit({"tiering.yaml": book_text(inserted)}, store.head(), "bob", "A row for the very largest")
    blame = {b.element: b.revision for b in store.blame("tier")}
    assert blame["row:r1"].author == "bob"
    assert blame["row:r2"].author == "alice"
    assert blame["row:r3"].id == seed  # pushed down by bob's row, but bob did not change it
    assert blame["header"].id == seed
    with pytest.raises(UnknownRevision):
        store.blame("nothing")


def test_impact_of_a_change_on_a_portfolio_commits_nothing(store):
    base = store.head()
    portfolio = [{"account_id": "K1", "revenue": 4_500_000}, {"account_id": "K2", "revenue": 6_000_000},
                 {"account_id": "K3", "revenue": 200_000}]
    report = store.impact({"tiering.yaml": book_text(lowered())}, portfolio, base)
    assert report.tier_migration.count("B", "A") == 1
    assert report.tier_migration.count("A", "A") == 1
    assert store.head() == base
