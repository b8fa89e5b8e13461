"""The shipped rule book on real account sheets: the same accounts however the sheet is written give the same
results, and the demo portfolio comes out the way a supplier's book looks."""

import datetime as dt

import numpy as np
import openpyxl
import pandas as pd
import pytest

from kamcore import RuleBook
from kamcore.demo import AS_OF, as_sheet, synthetic_portfolio
from kamcore.portfolio import read_sheet

MONEY = ["revenue_12m", "gross_profit_12m", "revenue_prev_12m", "receivables", "open_orders", "potential_revenue"]
DATES = ["first_order_date", "last_order_date", "contract_end_date"]


@pytest.fixture(scope="module")
def book():
    return RuleBook.load("rules/")


@pytest.fixture(scope="module")
def accounts():
    return synthetic_portfolio(120, seed=3)


def outputs(book, frame):
    ev = book.evaluate(frame, as_of=AS_OF)
    assert ev.errors == []
    return ev.frame[list(book.outputs)]


def english_csv(path, book, accounts):
    as_sheet(accounts, book.dictionary, "en").to_csv(path, index=False)
    return path


def chinese_xlsx_in_wan(path, book, accounts):
    """中文 headers, money in 万元 (the unit in the header), a merged title and a totals row."""
    sheet = as_sheet(accounts, book.dictionary, "zh")
    for name in MONEY:
        label = book.dictionary.label(name, "zh")
        sheet[label] = sheet[label].astype("float64") / 10_000
        sheet = sheet.rename(columns={label: f"{label}（万元）"})
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2026年客户台账"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(sheet.columns))
    ws.append(list(sheet.columns))
    for row in sheet.itertuples(index=False):
        ws.append([None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for v in row])
    ws.append(["合计", None, None, None, *[None] * (len(sheet.columns) - 4)])
    wb.save(path)
    return path


def chinese_csv_typed_by_hand(path, book, accounts):
    """中文 headers, amounts typed with 万 or ¥ and thousands separators, dates as 2026年3月1日, full-width digits
    in the credit score, and `-` for an empty cell."""
    sheet = as_sheet(accounts, book.dictionary, "zh").astype(object)
    for name in MONEY:
        label = book.dictionary.label(name, "zh")
        sheet[label] = [("-" if pd.isna(v) else f"{v / 10_000:g}万" if k % 2 else f"¥{v:,.2f}")
                        for k, v in enumerate(sheet[label])]
    for name in DATES:
        label = book.dictionary.label(name, "zh")
        sheet[label] = ["" if pd.isna(v) else f"{v.year}年{v.month}月{v.day}日" for v in sheet[label]]
    label = book.dictionary.label("credit_score", "zh")
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    sheet[label] = ["-" if pd.isna(v) else str(int(v)).translate(full_width) for v in sheet[label]]
    sheet.to_csv(path, index=False, encoding="gb18030")
    return path


def test_chinese_headers_in_wan_and_english_headers_in_yuan_give_identical_results(tmp_path, book, accounts):
    plain = outputs(book, accounts)
    english = read_sheet(english_csv(tmp_path / "en.csv", book, accounts), dictionary=book.dictionary)
    chinese = read_sheet(chinese_xlsx_in_wan(tmp_path / "zh.xlsx", book, accounts), dictionary=book.dictionary)
    typed = read_sheet(chinese_csv_typed_by_hand(tmp_path / "typed.csv", book, accounts), dictionary=book.dictionary)
    assert chinese.header_line == 2 and len(chinese.warnings) == 1  # the title above, the totals row skipped
    assert typed.frame.iloc[1, 4].endswith("万") and typed.frame.iloc[0, 4].startswith("¥")  # really typed
    for sheet in (english, chinese, typed):
        pd.testing.assert_frame_equal(outputs(book, sheet.frame), plain, check_exact=True)


def test_the_sheets_read_the_inputs_exactly(tmp_path, book, accounts):
    chinese = read_sheet(chinese_xlsx_in_wan(tmp_path / "zh.xlsx", book, accounts), dictionary=book.dictionary)
    ev = book.evaluate(chinese.frame, as_of=AS_OF)
    for name in MONEY + ["industry"]:
        got = ev.state.columns[name]
        assert [got.value(i) for i in range(len(accounts))] == [
            None if pd.isna(v) else v for v in accounts[name]], name


def test_the_demo_portfolio_is_a_pyramid_with_an_80_20_shape(book):
    result = outputs(book, synthetic_portfolio(2000))
    tiers = result["tier"].value_counts()
    assert tiers["A"] < tiers["B"] < tiers["C"] < tiers["D"]
    assert 0.15 < (result["pareto_class"] == "key").mean() < 0.35
    assert set(result["segment"].dropna()) == {"loyal", "fast_growing", "sleeping", "worth_cultivating"}
    status = result["credit_status"].value_counts(normalize=True)
    assert set(status.index) == {"ok", "warn", "hold", "guarantee_required"} and status["ok"] > 0.6
    assert not (result["false_big_account"] & (result["tier"] == "A")).any()


def test_every_account_has_entitlements_and_actions_come_most_urgent_first(book):
    result = outputs(book, synthetic_portfolio(500, seed=11))
    assert result["entitlements"].map(lambda v: isinstance(v, list) and len(v) > 0).all()
    order = book.rule("next_actions").output_specs[0]["values"]
    for actions, reasons in zip(result["next_actions"], result["action_reasons"], strict=True):
        if actions is None:
            assert reasons is None
            continue
        assert actions == sorted(actions, key=order.index) and len(reasons) == len(actions)
        assert len(set(actions)) == len(actions)


def test_the_demo_has_every_dictionary_input_and_chinese_names(book):
    frame = synthetic_portfolio(300, seed=5)
    assert set(book.inputs) <= set(frame.columns)
    assert frame["account_name"].str.contains(r"^[\u4e00-\u9fff]+", regex=True).all()
    assert frame["account_id"].is_unique
    assert set(frame["region"]) <= set(book.dictionary.canonical_values("region").values())
    assert set(frame["industry"]) <= set(book.dictionary.canonical_values("industry").values())
    revenue = np.sort(frame["revenue_12m"].to_numpy())[::-1]
    assert revenue[: len(revenue) // 5].sum() / revenue.sum() > 0.6  # a long tail under a few large accounts
    assert frame["first_order_date"].max() <= pd.Timestamp(AS_OF)
    assert frame["last_order_date"].dropna().max() <= pd.Timestamp(AS_OF)


def test_the_demo_is_the_same_for_the_same_seed():
    pd.testing.assert_frame_equal(synthetic_portfolio(50, seed=9), synthetic_portfolio(50, seed=9))
    assert not synthetic_portfolio(50, seed=9).equals(synthetic_portfolio(50, seed=10))


def test_one_account_explained_in_both_languages(book, accounts):
    ev = book.evaluate(accounts, as_of=dt.date.fromisoformat(AS_OF))
    zh, en = ev.explain(0).text("zh"), ev.explain(0).text("en")
    assert "客户分群 [segment]" in zh and "Segment [segment]" in en
    assert "信用状态 [credit_status]" in zh and "Next-best actions [next_actions]" in en


def test_the_demo_dates_hang_together():
    frame = synthetic_portfolio(2000, seed=2)
    ordered = frame.dropna(subset=["last_order_date"])
    assert (ordered["last_order_date"] >= ordered["first_order_date"]).all()
    new = frame["revenue_12m"] == 0  # a first order placed, nothing invoiced yet
    assert new.any() and (frame.loc[new, "open_orders"].dropna() > 0).all()
    assert (frame.loc[new, "order_count_12m"].dropna() == 1).all()
