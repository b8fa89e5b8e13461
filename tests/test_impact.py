"""Impact of a rule change on a portfolio: tier migration, accounts whose entitlements, credit status or segment
change, totals, row errors, books that lack an output, the shipped book, and `kam impact`."""

import datetime as dt
import json
import shutil
import textwrap
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from kamcore import RuleBook
from kamcore.cli import main
from kamcore.demo import synthetic_portfolio
from kamcore.impact import impact
from kamcore.portfolio import write_table

ROOT = Path(__file__).resolve().parents[1]

FIELDS = textwrap.dedent("""\
    fields:
      - {name: account_id, type: string, label: {zh: 客户编号, en: Account ID}}
      - {name: revenue, type: number}
      - {name: receivables, type: number}
      - {name: industry, type: string}
""")

TIER = textwrap.dedent("""\
    rules:
      - id: tier
        kind: decision_table
        label: Tier
        hit_policy: FIRST
        inputs: [revenue]
        outputs:
          - {name: tier, type: string, values: [A, B, C], default: C}
        rows:
          - {when: {revenue: ">= 1000"}, then: A}
          - {when: {revenue: ">= 500"}, then: B}
      - id: segment
        kind: decision_table
        label: Segment
        hit_policy: UNIQUE
        inputs: [industry]
        outputs: [{name: segment, type: string, default: general}]
        rows:
          - {when: {industry: '"finance", "energy"'}, then: strategic}
      - id: entitlements
        kind: decision_table
        label: Entitlements
        hit_policy: COLLECT
        inputs: [tier]
        outputs: [{name: entitlements, type: string}]
        rows:
          - {when: {tier: '"A"'}, then: account_manager}
          - {when: {tier: '"A", "B"'}, then: priority_support}
""")

CREDIT = textwrap.dedent("""\
    rules:
      - id: credit_limit
        kind: decision_table
        label: Credit limit
        hit_policy: UNIQUE
        inputs: [tier]
        outputs: [{name: credit_limit, type: number, default: 0}]
        rows:
          - {when: {tier: '"A"'}, then: "= revenue * 0.5"}
          - {when: {tier: '"B"'}, then: "= revenue * 0.2"}
      - id: exposure
        kind: formula
        label: Exposure
        formulas:
          exposure: coalesce(receivables, 0)
      - id: credit_status
        kind: decision_table
        label: Credit status
        hit_policy: FIRST
        inputs: [exposure]
        outputs: [{name: credit_status, type: string, values: [ok, hold], default: ok}]
        rows:
          - {when: {exposure: "> credit_limit"}, then: hold}
""")

LOYALTY = textwrap.dedent("""\
    rules:
      - id: loyalty
        kind: formula
        label: Points
        formulas:
          loyalty_points: floor(revenue / 10) * (if tier = "A" then 2 else 1)
""")

ACCOUNTS = [
    {"account_id": "K1", "revenue": 1200, "receivables": 100, "industry": "finance"},  # A either way
    {"account_id": "K2", "revenue": 800, "receivables": 300, "industry": "retail"},  # B → A when A starts at 700
    {"account_id": "K3", "revenue": 600, "receivables": 50, "industry": "energy"},  # B either way
    {"account_id": "K4", "revenue": 300, "receivables": 10, "industry": "retail"},  # C, on hold (limit 0)
    {"account_id": "K5", "revenue": "abc", "receivables": 10, "industry": "retail"},  # unreadable revenue
]


def book(tier: str = TIER, credit: str | None = CREDIT, loyalty: str | None = LOYALTY) -> RuleBook:
    files = {"fields.yaml": FIELDS, "tiering.yaml": tier}
    files.update({name: text for name, text in (("credit.yaml", credit), ("loyalty.yaml", loyalty)) if text})
    return RuleBook.from_files(files)


def lowered() -> str:
    return TIER.replace('">= 1000"', '">= 700"')


def test_a_lowered_tier_threshold_moves_one_account_up_and_everything_that_follows_from_it():
    imp = impact(book(), book(lowered()), ACCOUNTS, as_of="2026-11-23")
    assert (imp.accounts, imp.compared, imp.as_of) == (5, 4, dt.date(2026, 11, 23))
    m = imp.tier_migration
    assert m.labels == ["A", "B", "C", None]
    assert m.counts == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert (m.count("B", "A"), m.changed) == (1, 1)
    (ent,) = imp.changes["entitlements"]
    assert (ent.account_id, ent.row, ent.old, ent.new) == ("K2", 1, ["priority_support"],
                                                           ["account_manager", "priority_support"])
    assert (ent.gained, ent.lost) == (("account_manager",), ())
    (status,) = imp.changes["credit_status"]
    assert (status.account_id, status.old, status.new) == ("K2", "hold", "ok")
    assert imp.changes["segment"] == []
    t = imp.totals
    assert (t["credit_limit"].base, t["credit_limit"].change, t["credit_limit"].delta) == (880, 1120, 240)
    assert (t["exposure_on_hold"].base, t["exposure_on_hold"].change, t["exposure_on_hold"].delta) == (310, 10, -300)
    assert (t["accounts_on_hold"].base, t["accounts_on_hold"].change) == (2, 1)
    assert (t["loyalty_points"].base, t["loyalty_points"].change, t["loyalty_points"].delta) == (410, 490, 80)
    (error,) = imp.errors
    assert (error.side, error.row, error.account_id, error.field) == ("both", 4, "K5", "revenue")
    assert imp.missing == {"base": [], "change": []}
    assert imp.entitlement_moves() == {"account_manager": {"gained": 1, "lost": 0}}


def test_to_dict_is_json_and_limit_keeps_the_counts():
    doc = json.loads(json.dumps(impact(book(), book(lowered()), ACCOUNTS, as_of="2026-11-23").to_dict(limit=0)))
    assert set(doc) == {"revision_base", "revision_change", "as_of", "accounts", "compared", "tier_migration",
                        "changes", "entitlement_moves", "totals", "errors", "missing"}
    assert doc["tier_migration"] == {"labels": ["A", "B", "C", None], "changed": 1,
                                     "counts": [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]}
    assert doc["changes"]["credit_status"] == {"count": 1, "accounts": []}
    assert doc["totals"]["credit_limit"] == {"base": 880, "change": 1120, "delta": 240}
    full = impact(book(), book(lowered()), ACCOUNTS, as_of="2026-11-23").to_dict()
    assert full["changes"]["entitlements"]["accounts"] == [
        {"row": 1, "account_id": "K2", "field": "entitlements", "old": ["priority_support"],
         "new": ["account_manager", "priority_support"], "gained": ["account_manager"], "lost": []}]
    assert full["errors"][0] == {"side": "both", "row": 4, "account_id": "K5", "rule": None, "field": "revenue",
                                 "message": full["errors"][0]["message"]}


def test_text_in_both_languages():
    imp = impact(book(), book(lowered()), ACCOUNTS, as_of="2026-11-23")
    en, zh = imp.text(), imp.text("zh")
    assert "Impact on 5 accounts (4 compared), as of 2026-11-23" in en
    assert "K2: hold → ok" in en and "Total credit limit: 880 → 1,120 (+240)" in en
    assert "Tier changed for 1 accounts." in en and "Row errors: 1" in en
    assert "信用额度合计: 880 → 1,120 (+240)" in zh and "客户等级迁移" in zh


def test_an_error_only_the_change_makes_is_reported_on_its_side_and_the_account_left_out():
    # The new row gives the industry as tier, which is not one of the allowed values A, B, C.
    broken = TIER.replace('      - {when: {revenue: ">= 500"}, then: B}',
                          '      - {when: {revenue: ">= 500"}, then: B}\n'
                          '      - {when: {revenue: "< 100"}, then: "= industry"}')
    accounts = ACCOUNTS[:4] + [{"account_id": "K6", "revenue": 50, "receivables": 0, "industry": "retail"}]
    imp = impact(book(), book(broken), accounts, as_of="2026-11-23")
    (error,) = imp.errors
    assert (error.side, error.account_id, error.rule, error.field) == ("change", "K6", "tier", "tier")
    assert imp.compared == 4 and sum(map(sum, imp.tier_migration.counts)) == 4


def test_outputs_missing_from_a_book_are_handled_not_fatal():
    # Neither book computes credit or loyalty; the changed one also drops the entitlements and segments.
    only_tier = TIER[:TIER.index("  - id: segment")]
    imp = impact(book(credit=None, loyalty=None), book(only_tier, credit=None, loyalty=None), ACCOUNTS[:4],
                 as_of="2026-11-23")
    assert imp.totals == {"credit_limit": None, "exposure_on_hold": None, "accounts_on_hold": None,
                          "loyalty_points": None}
    assert imp.missing["change"] == ["entitlements", "credit_status", "segment", "credit_limit", "exposure",
                                      "loyalty_points"]
    assert imp.changes["credit_status"] is None
    # dropping an output shows every account losing it
    assert {c.account_id for c in imp.changes["entitlements"]} == {"K1", "K2", "K3"}
    assert {(c.account_id, c.old, c.new) for c in imp.changes["segment"]} == {
        ("K1", "strategic", None), ("K2", "general", None), ("K3", "strategic", None), ("K4", "general", None)}
    json.dumps(imp.to_dict())
    assert "Credit status: computed by neither book" in imp.text()
    # a book without a tier: no migration at all
    no_tier = "rules:\n  - {id: seg, kind: formula, label: S, formulas: {segment: industry}}\n"
    bare = RuleBook.from_files({"fields.yaml": FIELDS, "rules.yaml": no_tier})
    imp = impact(bare, bare, ACCOUNTS[:2], as_of="2026-11-23")
    assert imp.tier_migration is None and imp.changes["segment"] == [] and imp.changes["entitlements"] is None
    # the base book lacks loyalty points, the changed one adds them: a total on one side only
    imp = impact(book(loyalty=None), book(), ACCOUNTS[:4], as_of="2026-11-23")
    assert (imp.totals["loyalty_points"].base, imp.totals["loyalty_points"].change) == (None, 410)
    assert imp.totals["loyalty_points"].delta is None


def test_reordered_entitlement_rows_change_no_account_and_ids_come_from_a_chinese_header():
    swapped = TIER.replace(
        "      - {when: {tier: '\"A\"'}, then: account_manager}\n      - {when: {tier: '\"A\", \"B\"'}, then: "
        "priority_support}",
        "      - {when: {tier: '\"A\", \"B\"'}, then: priority_support}\n      - {when: {tier: '\"A\"'}, then: "
        "account_manager}")
    assert swapped != TIER
    frame = pd.DataFrame(ACCOUNTS[:4]).rename(columns={"account_id": "客户编号"})
    imp = impact(book(), book(swapped), frame, as_of="2026-11-23")
    assert imp.changes["entitlements"] == [] and imp.errors == []
    imp = impact(book(), book(lowered()), frame, as_of="2026-11-23")
    assert [c.account_id for c in imp.changes["credit_status"]] == ["K2"]


def test_as_of_defaults_to_today_for_both_books():
    assert impact(book(), book(), ACCOUNTS[:1]).as_of == dt.date.today()


# --- the shipped book ---------------------------------------------------------------------------------------


def shipped(**edits: tuple[str, str]) -> RuleBook:
    files = {f.path: f.text for f in RuleBook.load(ROOT / "rules").files}
    for name, (old, new) in edits.items():
        assert old in files[f"{name}.yaml"]
        files[f"{name}.yaml"] = files[f"{name}.yaml"].replace(old, new)
    return RuleBook.from_files(files)


def test_the_shipped_book_with_the_tier_a_revenue_threshold_lowered():
    base = shipped()
    change = shipped(tiering=('{when: {revenue_12m: ">= 3000000", gross_margin: ">= 0.15", dso_days: "<= 90"}',
                              '{when: {revenue_12m: ">= 2500000", gross_margin: ">= 0.15", dso_days: "<= 90"}'))
    frame = synthetic_portfolio(3000, seed=11)
    imp = impact(base, change, frame, as_of="2026-11-23")
    ev_a, ev_b = base.evaluate(frame, as_of="2026-11-23"), change.evaluate(frame, as_of="2026-11-23")
    m = imp.tier_migration
    assert sum(map(sum, m.counts)) == imp.compared == 3000
    moved = (ev_a.frame["tier"] != ev_b.frame["tier"]).sum()
    assert m.changed == moved > 0
    # a lowered bar for A only ever moves accounts into A
    a = m.labels.index("A")
    assert all(c == 0 for i, row in enumerate(m.counts) for j, c in enumerate(row) if i != j and j != a)
    assert imp.totals["credit_limit"].delta == ev_b.frame["credit_limit"].sum() - ev_a.frame["credit_limit"].sum()
    assert imp.totals["loyalty_points"].delta > 0
    held = [(ev_a.frame["credit_status"] == "hold"), (ev_b.frame["credit_status"] == "hold")]
    assert imp.totals["exposure_on_hold"].base == ev_a.frame["exposure"][held[0]].sum()
    assert imp.totals["exposure_on_hold"].change == ev_b.frame["exposure"][held[1]].sum()
    status = set(ev_a.frame.index[ev_a.frame["credit_status"] != ev_b.frame["credit_status"]])
    assert {c.row for c in imp.changes["credit_status"]} == status
    assert {c.account_id for c in imp.changes["credit_status"]} == set(frame.loc[list(status), "account_id"])


# --- kam impact ---------------------------------------------------------------------------------------------


def kam(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def portfolio_csv(tmp_path: Path) -> Path:
    path = tmp_path / "accounts.csv"
    write_table(synthetic_portfolio(500, seed=3), path)
    return path


def changed_file(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (ROOT / "rules" / name).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "change" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_kam_impact_prints_the_diff_and_the_impact(tmp_path):
    change = changed_file(tmp_path, "credit.yaml", 'utilisation: ">= 1"}', 'utilisation: ">= 1.2"}')
    result = kam("impact", "--change", change, "--portfolio", portfolio_csv(tmp_path), "--rules", ROOT / "rules",
                 "--as-of", "2026-11-23", "--limit", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Rule credit_status (Credit status) [credit.yaml]: changed" in out
    assert "utilisation: >= 1 → >= 1.2 (threshold >= 1 → 1.2: raised, matches fewer)" in out
    assert "Impact on 500 accounts (500 compared), as of 2026-11-23" in out and "Tier changed for 0 accounts." in out
    assert "Exposure on hold:" in out


def test_kam_impact_json_and_zh(tmp_path):
    change = changed_file(tmp_path, "tiering.yaml", 'revenue_12m: ">= 3000000", gross_margin: ">= 0.15"',
                          'revenue_12m: ">= 2500000", gross_margin: ">= 0.15"')
    portfolio = portfolio_csv(tmp_path)
    result = kam("impact", "--change", change, "--portfolio", portfolio, "--rules", ROOT / "rules", "--as-of",
                 "2026-11-23", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["diff"]["summary"]["thresholds_moved"] == 1
    assert doc["impact"]["accounts"] == 500 and doc["impact"]["as_of"] == "2026-11-23"
    zh = kam("impact", "--change", change, "--portfolio", portfolio, "--rules", ROOT / "rules", "--lang", "zh")
    assert "阈值 >= 3000000 → 2500000: 下调, 匹配范围扩大" in zh.stdout and "客户等级迁移" in zh.stdout


def test_kam_impact_refuses_a_change_that_breaks_the_book_and_adds_a_new_file(tmp_path):
    broken = changed_file(tmp_path, "credit.yaml", "utilisation: \">= 1\"}", "utilisaton: \">= 1\"}")
    result = kam("impact", "--change", broken, "--portfolio", portfolio_csv(tmp_path), "--rules", ROOT / "rules")
    assert result.exit_code == 1
    # the problem points into the change file, where the typo is
    assert f"{broken.as_posix()}:" in result.stderr and "utilisaton" in result.stderr
    assert "nothing was evaluated" in result.stderr
    extra = tmp_path / "extra.yaml"
    extra.write_text("rules:\n  - {id: big, kind: formula, label: Big, formulas: {big: revenue_12m > 1000000}}\n",
                     encoding="utf-8")
    result = kam("impact", "--change", extra, "--portfolio", portfolio_csv(tmp_path), "--rules", ROOT / "rules")
    assert result.exit_code == 0, result.output
    assert "Rule big (Big) [extra.yaml]: added" in result.stdout


def test_kam_impact_with_a_rules_folder_holding_two_files_of_one_name(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "more").mkdir()
    (rules / "more" / "credit.yaml").write_text("description: nothing yet\nrules: []\n", encoding="utf-8")
    change = changed_file(tmp_path, "credit.yaml", 'utilisation: ">= 1"}', 'utilisation: ">= 1.2"}')
    result = kam("impact", "--change", change, "--portfolio", portfolio_csv(tmp_path), "--rules", rules)
    assert result.exit_code == 1 and "2 files named 'credit.yaml'" in result.stderr
