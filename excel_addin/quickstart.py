"""`kam excel quickstart DIR`: a workbook + module pair, as `xlwings quickstart` writes them. The workbook is
xlwings' own quickstart template (BSD licence, shipped inside the xlwings package: its VBA project holds the
`SampleCall` macro that runs `DIR.main()`), given a sample account sheet and an `xlwings.conf` sheet with our
settings; the module imports the add-in's functions and macro so xlwings finds them beside the workbook."""

from __future__ import annotations

import datetime as dt
import importlib.util
import keyword
import shutil
from pathlib import Path

import click
import openpyxl
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from kamcore.demo import synthetic_portfolio
from kamcore.rulebook import RuleBook
from kamcore.sheetscore import HEADER_FILL

from .settings import CONF_SHEET, SHIPPED_RULES

ACCOUNT_SHEET = "客户台账"
SAMPLE_ACCOUNTS = 8
TEMPLATES = {False: "quickstart.xlsm", True: "quickstart_standalone.xlsm"}
CONF_ROWS = [  # key, value, what it is (column C is ours to explain; xlwings reads A and B only)
    ("KAM_URL", None, "KAM 服务地址，如 http://127.0.0.1:8080；留空则用本地规则库离线评分 / the service URL; "
                      "empty: score offline against KAM_RULES"),
    ("KAM_TOKEN", None, "令牌（kam token create）；建议放在环境变量 KAM_TOKEN 中而非工作簿里 / the bearer token; "
                        "better kept in the KAM_TOKEN environment variable than in the workbook"),
    ("KAM_LANG", "zh", "结果列标题语言 zh 或 en / result headers in zh or en"),
    ("KAM_RULES", None, "离线时使用的规则库文件夹；留空为随附规则 / the rule book folder offline; empty: the shipped "
                        "rules"),
]

MODULE = '''"""KAM Rules in {name}.xlsm: the worksheet functions =KAM_TIER(headers, rows), =KAM_EVALUATE(table) and
=KAM_EXPLAIN(headers, rows) (Windows: xlwings add-in > Import Functions), and the score_sheet macro (the
SampleCall button, or RunPython "import {name}; {name}.main()"). Settings: the xlwings.conf sheet or the
environment (KAM_URL, KAM_TOKEN, KAM_LANG, KAM_RULES); without KAM_URL it scores offline."""

import xlwings as xw

from excel_addin.desktop import KAM_EVALUATE, KAM_EXPLAIN, KAM_TIER, score_sheet  # noqa: F401 - found here by xlwings


def main():
    """Score the active sheet: result columns, colours and notes beside its account table."""
    score_sheet()


if __name__ == "__main__":
    xw.Book("{name}.xlsm").set_mock_caller()
    main()
'''


class QuickstartError(click.ClickException):
    pass


def xlwings_template(standalone: bool = False) -> Path:
    """xlwings' quickstart workbook, from the installed xlwings package."""
    spec = importlib.util.find_spec("xlwings")
    if spec is None or spec.origin is None:
        raise QuickstartError("xlwings is not installed: pip install 'kam-rules[excel]'")
    template = Path(spec.origin).parent / TEMPLATES[standalone]
    if not template.is_file():
        raise QuickstartError(f"the installed xlwings has no {template.name} template")
    return template


def quickstart(target: Path, standalone: bool = False, rules: Path = SHIPPED_RULES) -> tuple[Path, Path]:
    """Write TARGET/NAME.xlsm and TARGET/NAME.py (NAME: the folder's name); refuses an existing folder."""
    target = Path(target)
    name = target.name
    if not name.isidentifier() or keyword.iskeyword(name):
        raise QuickstartError(f"{name!r}: the folder name must work as a Python module name (letters, digits, _; "
                              "not starting with a digit), as RunPython imports it / 文件夹名须可作 Python 模块名")
    if target.exists():
        raise QuickstartError(f"{target} already exists; choose a new folder / 目录已存在")
    template = xlwings_template(standalone)
    target.mkdir(parents=True)
    workbook, module = target / f"{name}.xlsm", target / f"{name}.py"
    shutil.copyfile(template, workbook)
    wb = openpyxl.load_workbook(workbook, keep_vba=True)
    accounts = wb.worksheets[0]
    accounts.title = ACCOUNT_SHEET
    sample_accounts(accounts, RuleBook.load(rules))
    conf = wb.create_sheet(CONF_SHEET)
    for key, value, hint in CONF_ROWS:
        conf.append([key, value, hint])
    conf.column_dimensions["A"].width, conf.column_dimensions["B"].width = 14, 36
    wb.active = 0
    wb.save(workbook)
    module.write_text(MODULE.format(name=name), encoding="utf-8")
    return workbook, module


def sample_accounts(ws: openpyxl.worksheet.worksheet.Worksheet, book: RuleBook) -> None:
    """A ledger as account managers keep one: a title, 中文 headers, a formula column of their own, a totals row."""
    frame = synthetic_portfolio(50 * SAMPLE_ACCOUNTS).sort_values("revenue_12m", ascending=False)
    frame = frame.iloc[[round(q * (len(frame) - 1)) for q in (0, .01, .03, .06, .15, .4, .7, .98)]]  # every tier
    ws["A1"] = "重点客户台账（示例）/ Key accounts (sample)"
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].comment = Comment("运行 score_sheet，结果列写在表格右侧 / run score_sheet: results appear to the right",
                               "KAM Rules")
    columns = list(frame.columns)
    headers = [book.dictionary.label(c, "zh") or c for c in columns] + ["毛利率"]
    ws.append([])
    ws.append(headers)
    for k in range(1, len(headers) + 1):
        ws.cell(row=3, column=k).font = Font(bold=True)
        ws.cell(row=3, column=k).fill = PatternFill("solid", fgColor=HEADER_FILL.lstrip("#"))
    revenue = openpyxl.utils.get_column_letter(columns.index("revenue_12m") + 1)
    profit = openpyxl.utils.get_column_letter(columns.index("gross_profit_12m") + 1)
    for record in frame.to_dict("records"):
        row = []
        for c in columns:
            value = record[c]
            if value != value or value is None:  # NaN: an empty cell
                value = None
            elif c in ("industry", "region"):
                value = book.dictionary.value_label(c, value, "zh")
            elif hasattr(value, "to_pydatetime"):
                value = value.to_pydatetime().date()
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            row.append(value)
        ws.append(row)
        n = ws.max_row
        ws.cell(row=n, column=len(headers), value=f'=IFERROR({profit}{n}/{revenue}{n},"")').number_format = "0.0%"
        for k, value in enumerate(row, start=1):
            if isinstance(value, dt.date):
                ws.cell(row=n, column=k).number_format = "yyyy-mm-dd"
    last = ws.max_row
    ws.append(["合计", None, None, None, f"=SUM({revenue}4:{revenue}{last})"])
    for k, header in enumerate(headers, start=1):
        ws.column_dimensions[openpyxl.utils.get_column_letter(k)].width = max(10, min(24, 2 * len(header) + 2))


@click.group()
def excel() -> None:
    """The Excel desktop add-in (xlwings): a workbook + module to start from."""


@excel.command("quickstart")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.option("--standalone", is_flag=True, help="xlwings' standalone template (its VBA module inside the "
                                                 "workbook, no xlwings Excel add-in needed)")
@click.option("--rules", "rules_dir", default=str(SHIPPED_RULES), type=click.Path(file_okay=False, exists=True),
              help="the rule book whose headers the sample sheet uses")
def quickstart_command(target: Path, standalone: bool, rules_dir: str) -> None:
    """Write TARGET/TARGET.xlsm and TARGET/TARGET.py, as `xlwings quickstart` does."""
    workbook, module = quickstart(target, standalone, Path(rules_dir))
    click.echo(f"wrote {workbook} and {module}")
    click.echo("open the workbook, run SampleCall (score_sheet) / 打开工作簿，运行 SampleCall 评分; Windows: xlwings "
               "> Import Functions for =KAM_TIER, =KAM_EVALUATE, =KAM_EXPLAIN")
