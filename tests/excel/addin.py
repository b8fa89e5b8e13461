"""Shared by the desktop add-in tests: a ledger as people keep one, laid out as a sheet model."""

import datetime as dt
from pathlib import Path

from excel_addin.settings import Settings

RULES = Path(__file__).resolve().parents[2] / "rules"
OFFLINE = Settings(lang="zh", rules=RULES)
TITLE = "2026年重点客户台账"
HEADERS = ["客户编号", "近12个月销售额（万元）", "近12个月毛利（万元）", "平均回款天数", "行业", "首次合作日期",
           "毛利率"]
# row 0 title, row 1 blank, row 2 headers, accounts from row 3 (sheet line 4); G holds the user's own formula
LEDGER = [[TITLE],
          [],
          HEADERS,
          ["KH001", 420, 92.4, 45, "制造业", dt.datetime(2019, 4, 1), "=C4/B4"],
          [],
          ["KH002", "很多", 1, 1, "制造业", None, "=C6/B6"],
          ["KH003", 20, 2, 30, "零售", None, "=C7/B7"],
          ["KH004", 150, 30, 200, "能源", None, "=C8/B8"],
          ["合计", "=SUM(B4:B8)"]]
RESULTS = {(3, 6): 0.22, (5, 6): None, (6, 6): 0.1, (7, 6): 0.2, (8, 1): 590}  # what Excel calculated
