"""A decision table or a scorecard as an xlsx workbook that sales ops edit in Excel, and the edited workbook read
back as a rule change. The shared grid code (`rulegrid`) turns the sheets' rows into the rule; the rule store
validates, tests and commits it like any other change. Every refusal names its cell: `tier!C7: message`.

The workbook: one sheet per decision table, one sheet per scorecard indicator. Above each grid, the rule's
settings (hit policy, output defaults; an indicator's value, weight and points when missing) are shown, not
edited: a changed setting is refused with its cell. A hidden sheet `_kam` holds the rule id, its file and the
revision the table was exported at, so an import knows its base and a table exported before someone else changed
the rule's file is refused, naming that change."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openpyxl
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from . import rulefile
from .dictionary import header_key
from .errors import InputError, KamError, Problem
from .portfolio import XLSX_FAILURES
from .rulebook import RuleBook
from .rulegrid import NOTE, CellError, Layout, file_text, text
from .sheetscore import FORMULA_STARTS
from .store import StaleBase, ValidationFailed

if TYPE_CHECKING:
    from .store import Revision, RuleStore

FORMAT = "kam-rule-table/1"
META_SHEET = "_kam"
MAX_BYTES = 2 * 1024 * 1024  # a rule table is a few kB; anything near this is not one
MAX_UNPACKED = 32 * 1024 * 1024  # what the xlsx zip may unpack to: no zip bombs
MAX_ROWS = 5000  # rows read per sheet
EXTRA_COLUMNS = 30  # columns a sheet may hold beyond its table's (notes beside it); a cell far right is refused
_REVISION = re.compile(r"^([0-9a-f]{40}|sha256:[0-9a-f]{8,64})$")  # a commit, or a rules folder file's hash
ROW_ID = "id"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_FIXED = {  # the grid's own columns, as headed in the workbook
    ROW_ID: {"zh": "行ID", "en": "Row ID"},
    NOTE: {"zh": "备注", "en": "Note"},
    "when": {"zh": "条件", "en": "Condition"},
    "points": {"zh": "得分", "en": "Points"},
}
_HINT = ("在白色单元格中修改；条件写法如 >= 3000000、[1000000..3000000)、\"A\", \"B\"，空白表示任意；"
         "上方设置仅供查看。 / "
         "Edit the white cells; conditions read >= 3000000, [1000000..3000000), \"A\", \"B\"; empty means any. "
         "The settings above are shown, not edited here.")
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_SETTING_FILL = PatternFill("solid", fgColor="F2F2F2")


class TableRefused(KamError):
    """The edited table is not a valid rule, or the changed rule book fails its checks or rule tests."""

    def __init__(self, problems: list[TableProblem]):
        self.problems = problems
        shown = "; ".join(map(str, problems[:3])) + (" …" if len(problems) > 3 else "")
        super().__init__(f"the table was refused, {len(problems)} problem(s): {shown}")


class StaleTable(StaleBase):
    """The rule's file changed after the table was exported: importing it would undo that change."""

    def __init__(self, base: str, head: str, file: str, changes: list[Revision]):
        super().__init__(base, head)
        self.file, self.changes = file, changes
        named = "; ".join(f"{r.id[:10]} by {r.author} on {r.time:%Y-%m-%d %H:%M}: {r.message.splitlines()[0]}"
                          for r in changes[:3]) or f"the head is now {head[:10]}"
        self.args = (f"{file} changed since this table was exported at {base[:10]} ({named}); export the table "
                     "again and redo your edit on top of that change",)


@dataclass(frozen=True)
class TableProblem:
    """One reason a table was refused: at a cell (`sheet`, `cell`), at a sheet, or elsewhere (a rule test)."""

    message: str
    sheet: str | None = None
    cell: str | None = None

    def __str__(self) -> str:
        if self.sheet is None:
            return self.message
        where = _sheet_ref(self.sheet) + (f"!{self.cell}" if self.cell else "")
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "cell": self.cell, "message": self.message, "text": str(self)}


@dataclass(frozen=True)
class _Sheet:
    """What one sheet shows: the grid (`layout`, `columns` left to right) and the settings above it."""

    title: str
    layout: Layout
    columns: tuple[str, ...]
    headers: tuple[dict[str, str], ...]  # each column's {zh, en} label
    settings: tuple[tuple[str, dict[str, str], str], ...]  # (key, label, value as text)
    caption: str
    number_columns: frozenset[str] = frozenset()
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


# --- export ----------------------------------------------------------------------------------------------------


def export_table(book: RuleBook, rule_id: str, source: str, base: str) -> bytes:
    """The xlsx workbook for one decision table or scorecard; `source` is its file's text at revision `base`."""
    rule = _rule(book, rule_id)
    doc = rulefile.rule_doc(source, rule_id)
    sheets = _sheets(book, rule, doc)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        _write_sheet(wb.create_sheet(sheet.title), sheet, doc, base)
    meta = wb.create_sheet(META_SHEET)
    meta.append(["KAM Rules: 导入时使用，请勿修改 / used by the import, do not edit"])
    for key, value in (("format", FORMAT), ("rule_id", rule_id), ("kind", rule.kind), ("file", rule.file),
                       ("base", base), ("exported", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))):
        meta.append([key, value])
    for sheet in sheets:
        meta.append(["sheet", sheet.title, sheet.layout.indicator or ""])
    for row in meta.iter_rows():
        for cell in row:
            cell.data_type = "s"
    meta.sheet_state = "hidden"
    wb.active = 0
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _write_sheet(ws: Worksheet, sheet: _Sheet, doc: dict[str, Any], base: str) -> None:
    bold = Font(bold=True)
    ws["A1"] = sheet.caption
    ws["A1"].font = Font(bold=True, size=13)
    r = 2
    for _key, label, value in (*sheet.settings, ("revision", _FIXED_REVISION, base)):
        _text_cell(ws.cell(row=r, column=1), _bilingual(label)).font = bold
        _text_cell(ws.cell(row=r, column=2), value).fill = _SETTING_FILL
        r += 1
    hint = _text_cell(ws.cell(row=r, column=1), _HINT)
    hint.font = Font(italic=True, color="595959")
    header = r + 2
    for c, label in enumerate(sheet.headers, start=1):
        cell = _text_cell(ws.cell(row=header, column=c), _bilingual(label))
        cell.font, cell.fill = bold, _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    rows = sheet.layout.rows(doc)
    for i, row in enumerate(rows):
        values = {**row["cells"], ROW_ID: text(row["keep"].get(ROW_ID))}
        for c, column in enumerate(sheet.columns, start=1):
            cell = ws.cell(row=header + 1 + i, column=c)
            value = values.get(column, "")
            number = _as_number(value) if column in sheet.number_columns else None
            if number is not None:
                cell.value = number
            elif value:
                _text_cell(cell, value)
    for c, column in enumerate(sheet.columns, start=1):
        letter = get_column_letter(c)
        longest = max([_width(_bilingual(sheet.headers[c - 1])) // 2 + 2]
                      + [_width(text(row["cells"].get(column, ""))) for row in rows] + [8])
        ws.column_dimensions[letter].width = min(longest + 2, 60)
        options = sheet.choices.get(column)
        if options:
            check = DataValidation(type="list", formula1='"' + ",".join(options) + '"', allow_blank=True,
                                   showErrorMessage=False)
            check.add(f"{letter}{header + 1}:{letter}{header + len(rows) + 200}")
            ws.add_data_validation(check)
    ws.freeze_panes = ws.cell(row=header + 1, column=1)


_FIXED_REVISION = {"zh": "规则版本", "en": "Rules version"}


def _text_cell(cell: Any, value: str) -> Any:
    """A cell holding text that stays text: `=…`, `-…` are never taken for a formula, here or when re-typed."""
    cell.value = value
    cell.data_type = "s"
    if value.startswith(FORMULA_STARTS):
        cell.quotePrefix = True
    return cell


def _sheets(book: RuleBook, rule: Any, doc: dict[str, Any]) -> list[_Sheet]:
    label = _bilingual(rule.label or {}) or rule.id
    if rule.kind == "decision_table":
        layout = Layout.of(rule, doc)
        has_ids = any(r["keep"].get(ROW_ID) is not None for r in layout.rows(doc))
        columns = ((ROW_ID,) if has_ids else ()) + layout.columns
        policy = rule.hit_policy + (f" {rule.aggregation}" if rule.aggregation else "")
        settings: list[tuple[str, dict[str, str], str]] = [("hit_policy", {"zh": "命中策略", "en": "Hit policy"},
                                                            policy)]
        choices: dict[str, tuple[str, ...]] = {}
        for spec in rule.output_specs:
            name = spec["name"]
            if "default" in spec:
                out = _labels(book, name)
                settings.append((f"default:{name}", {"zh": f"默认值：{out.get('zh', name)}",
                                                     "en": f"Default: {out.get('en', name)}"}, text(spec["default"])))
            values = [str(v) for v in spec.get("values") or ()]
            if values and all(v and not set(v) & set(',"') for v in values) and len(",".join(values)) < 250:
                choices[name] = tuple(values)
        numbers = frozenset(n for n, o in rule.outputs.items() if str(o.type) == "number")
        return [_Sheet(_title(rule.id), layout, columns, tuple(_column_label(book, c) for c in columns),
                       tuple(settings), f"{label} ({rule.id})", numbers, choices)]
    if rule.kind != "scorecard":
        raise InputError(f"rule tables are decision tables and scorecards; {rule.id} is a {rule.kind}")
    sheets = []
    for spec in doc.get("indicators") or []:
        layout = Layout.of(rule, doc, spec["name"])
        settings = [("expr", {"zh": "取值", "en": "Value"}, text(spec.get("expr"))),
                    ("weight", {"zh": "权重", "en": "Weight"}, text(spec.get("weight"))),
                    ("missing_points", {"zh": "缺失得分", "en": "Points when missing"},
                     text(spec.get("missing_points", 0)))]
        caption = f"{label} ({rule.id}) — {_bilingual(spec.get('label') or {}) or spec['name']} ({spec['name']})"
        sheets.append(_Sheet(_title(spec["name"]), layout, layout.columns,
                             tuple(_FIXED[c] for c in layout.columns), tuple(settings), caption,
                             frozenset({"points"})))
    return sheets


def _title(name: str) -> str:
    return name[:31]  # rule ids and indicator names are identifiers: no character Excel forbids in a title


def _labels(book: RuleBook, name: str) -> dict[str, str]:
    if name in book.dictionary.fields and book.dictionary.fields[name].label:
        return dict(book.dictionary.fields[name].label)
    producer = book.outputs.get(name)
    if producer is not None and producer.outputs[name].label:
        return dict(producer.outputs[name].label)
    return {}


def _column_label(book: RuleBook, column: str) -> dict[str, str]:
    return _FIXED.get(column) or _labels(book, column) or {"en": column}


def _bilingual(label: Mapping[str, str]) -> str:
    zh, en = label.get("zh"), label.get("en")
    return f"{zh} / {en}" if zh and en and zh != en else (zh or en or "")


def _width(value: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in value)


def _as_number(value: str) -> int | float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


# --- import ----------------------------------------------------------------------------------------------------


@dataclass
class TableWorkbook:
    """An uploaded rule table: what its `_kam` sheet says, and the openpyxl workbook."""

    rule_id: str
    file: str
    base: str
    kind: str
    sheets: dict[str, str]  # sheet title → indicator ('' for a decision table)
    workbook: Any
    name: str


def read_workbook(data: bytes, name: str = "<upload>") -> TableWorkbook:
    """Open an uploaded rule table; InputError when it is no xlsx or no table exported by KAM Rules."""
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: {len(data):,} bytes is more than a rule table ({MAX_BYTES // 1024 // 1024} MiB "
                         "at most)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > MAX_UNPACKED:
            raise InputError(f"{name}: unpacks to {unpacked:,} bytes, more than a rule table "
                             f"({MAX_UNPACKED // 1024 // 1024} MiB at most)")
        wb = openpyxl.load_workbook(io.BytesIO(data))
    except XLSX_FAILURES as e:
        raise InputError(f"{name}: not an xlsx workbook ({e})") from None
    if META_SHEET not in wb.sheetnames or not isinstance(wb[META_SHEET], Worksheet):  # (a chart sheet has no cells)
        raise InputError(f"{name}: not a rule table exported by KAM Rules (it has no {META_SHEET!r} sheet); "
                         "export one with `kam rules export-xlsx RULE_ID -o table.xlsx`")
    meta: dict[str, str] = {}
    sheets: dict[str, str] = {}
    for row in wb[META_SHEET].iter_rows(min_row=2, max_row=200, max_col=3, values_only=True):
        key = str(row[0] or "").strip()
        if key == "sheet":
            sheets[str(row[1] or "")] = str(row[2] or "")
        elif key:
            meta[key] = str(row[1] if row[1] is not None else "").strip()
    if meta.get("format") != FORMAT:
        raise InputError(f"{name}: its {META_SHEET!r} sheet is not a {FORMAT} table (format "
                         f"{meta.get('format')!r}); export the table again")
    missing = [k for k in ("rule_id", "file", "base", "kind") if not meta.get(k)]
    if missing:
        raise InputError(f"{name}: its {META_SHEET!r} sheet lacks {', '.join(missing)}; export the table again")
    if not _REVISION.match(meta["base"]):  # `HEAD` would match whatever the head is: no stale check at all
        raise InputError(f"{name}: its {META_SHEET!r} sheet's base {meta['base']!r} is not a revision; export the "
                         "table again")
    return TableWorkbook(meta["rule_id"], meta["file"], meta["base"], meta["kind"], sheets, wb, name)


@dataclass
class _Placed:
    """Where one sheet's grid sits: grid row → sheet row, grid column → column letter."""

    sheet: _Sheet
    rows: list[int]
    letters: dict[str, str]


@dataclass
class TableEdit:
    """The rule as the workbook has it: the rule file's new text (or `unchanged`), and the cells that could not
    be read (formulas, error values: taken as empty so the rest of the rule is still checked)."""

    rule_id: str
    file: str
    text: str
    unchanged: bool
    placed: list[_Placed]
    problems: list[TableProblem] = field(default_factory=list)

    def located(self, problems: list[Problem]) -> list[TableProblem]:
        """The store's problems with the changed book, each at the cell it points at where it points at one."""
        found = []
        for problem in problems:
            message = problem.message + (f" ({problem.hint})" if problem.hint else "")
            for place in self.placed:
                where = place.sheet.layout.cell_of(problem, self.text, self.file, self.rule_id) \
                    if problem.is_error else None
                if where is not None and where[0] < len(place.rows):
                    found.append(TableProblem(message, place.sheet.title, _address(place, *where)))
                    break
            else:
                found.append(TableProblem(str(problem)))
        return found

    def checked(self, check: Any) -> None:
        """Run `check` (the store's validation of the change) and raise TableRefused with every problem: the
        unreadable cells and what the check found, each at its cell."""
        found = list(self.problems)
        try:
            check()
        except ValidationFailed as e:
            found += self.located(e.problems)
        if found:
            raise TableRefused(found)


def rebuild(upload: TableWorkbook, book: RuleBook, source: str) -> TableEdit:
    """The rule file `source` (at the table's base) with the rule as the workbook's sheets have it. Raises
    TableRefused naming every cell when the sheets cannot make a rule (missing or extra columns, changed
    settings, cells that are no value); cells that only cannot be read are in the edit's `problems`."""
    rule = _rule(book, upload.rule_id)
    if rule.file != upload.file:
        raise InputError(f"{upload.name}: rule {rule.id} is in {rule.file}, not {upload.file}; export the table "
                         "again")
    doc = rulefile.rule_doc(source, rule.id)
    problems: list[TableProblem] = []
    unreadable: list[TableProblem] = []
    placed: list[_Placed] = []
    new_doc, unchanged = doc, True
    for sheet in _sheets(book, rule, doc):
        if sheet.title not in upload.workbook.sheetnames:
            problems.append(TableProblem(f"the workbook has no sheet {sheet.title!r} (it holds "
                                         f"{_what(sheet)}); export the table again"))
            continue
        if not isinstance(upload.workbook[sheet.title], Worksheet):
            problems.append(TableProblem(f"the sheet {sheet.title!r} is a chart, not the grid that holds "
                                         f"{_what(sheet)}; export the table again", sheet.title))
            continue
        rows, place, found, cells = _read_sheet(upload.workbook[sheet.title], sheet)
        problems += found
        unreadable += cells
        if found:
            continue
        placed.append(place)
        unchanged &= _same(rows, sheet.layout.rows(doc))
        try:
            new_doc = sheet.layout.document(new_doc, rows)
        except CellError as e:
            problems += [TableProblem(m, sheet.title, _address(place, r, c)) for r, c, m in e.cells]
    if problems:
        raise TableRefused(problems + unreadable)
    new_text = source if unchanged else file_text(source, rule.id, new_doc)
    return TableEdit(rule.id, rule.file, new_text, unchanged and not unreadable, placed, unreadable)


def _what(sheet: _Sheet) -> str:
    layout = sheet.layout
    return f"the bands of indicator {layout.indicator}" if layout.indicator else "the table's rows"


def _read_sheet(ws: Worksheet, sheet: _Sheet) -> tuple[list[dict[str, Any]], _Placed, list[TableProblem],
                                                     list[TableProblem]]:
    """(grid rows, where they sit, problems that make the sheet unreadable, cells that cannot be read)."""
    problems: list[TableProblem] = []
    cells: list[TableProblem] = []
    if ws.max_row > MAX_ROWS:
        return [], _Placed(sheet, [], {}), [TableProblem(f"{ws.max_row:,} rows: a rule table has at most "
                                                         f"{MAX_ROWS:,}", sheet.title)], []
    if ws.max_column > len(sheet.columns) + EXTRA_COLUMNS:  # every cell of the rectangle would be made
        return [], _Placed(sheet, [], {}), [TableProblem(
            f"a cell in column {get_column_letter(ws.max_column)}: this table has {len(sheet.columns)} columns; "
            f"clear the cells beyond column {get_column_letter(len(sheet.columns) + EXTRA_COLUMNS)}",
            sheet.title)], []
    grid = [list(r) for r in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=max(ws.max_column, 1))]
    wanted = {c: {header_key(k) for k in (c, *label.values(), _bilingual(label)) if k}
              for c, label in zip(sheet.columns, sheet.headers, strict=True)}
    header_at = None
    for r, row in enumerate(grid):
        keys = {header_key(_plain(cell)) for cell in row if _plain(cell)}
        if sum(bool(keys & k) for k in wanted.values()) * 2 >= len(wanted):
            header_at = r
            break
    if header_at is None:
        shown = ", ".join(_bilingual(h) for h in sheet.headers)
        return [], _Placed(sheet, [], {}), [TableProblem(f"no header row naming the table's columns ({shown})",
                                                         sheet.title)], []
    cells += _settings_changed(grid[:header_at], sheet)  # refused, yet the rest of the sheet is still checked
    letters: dict[str, str] = {}
    index: dict[str, int] = {}
    for cell in grid[header_at]:
        value = _plain(cell)
        if not value:
            continue
        key = header_key(value)
        column = next((c for c, keys in wanted.items() if key in keys), None)
        if column is None:
            problems.append(TableProblem(
                f"extra column {value!r}: this table has no such input or output; its columns are "
                + ", ".join(_bilingual(h) for h in sheet.headers) + " (add inputs or outputs in the rule file)",
                sheet.title, cell.coordinate))
        elif column in letters:
            problems.append(TableProblem(f"column {value!r} appears twice (also {letters[column]})", sheet.title,
                                         cell.coordinate))
        else:
            letters[column], index[column] = cell.column_letter, cell.column - 1
    header_row = header_at + 1
    for column, label in zip(sheet.columns, sheet.headers, strict=True):
        if column not in letters:
            problems.append(TableProblem(f"missing column {_bilingual(label) or column!r} ({column}): put it back "
                                         "or export the table again", sheet.title, f"A{header_row}"))
    rows: list[dict[str, Any]] = []
    sheet_rows: list[int] = []
    for r in range(header_at + 1, len(grid)):
        line = grid[r]
        values: dict[str, str] = {}
        for column, c in index.items():
            cell = line[c] if c < len(line) else None
            if cell is None:
                values[column] = ""
                continue
            value, problem = _cell_text(cell)
            if problem:
                cells.append(TableProblem(problem, sheet.title, cell.coordinate))
            values[column] = value
        if not any(values.values()):
            continue  # an empty row: people leave them between groups of rows
        row_id = values.pop(ROW_ID, "")
        rows.append({"cells": {c: v for c, v in values.items()}, "keep": {ROW_ID: row_id} if row_id else {}})
        sheet_rows.append(r + 1)
    return rows, _Placed(sheet, sheet_rows, letters), problems, cells


def _settings_changed(above: list[list[Any]], sheet: _Sheet) -> list[TableProblem]:
    """A shown setting whose cell now says something else: refused, never silently dropped."""
    problems = []
    labels = {header_key(_bilingual(label)): (key, label, value) for key, label, value in sheet.settings}
    for row in above:
        if len(row) < 2 or not _plain(row[0]):
            continue
        found = labels.get(header_key(_plain(row[0])))
        if found is None:
            continue
        key, label, value = found
        now, _ = _cell_text(row[1])
        if not _same_value(now, value):
            problems.append(TableProblem(
                f"{_bilingual(label)} is shown here, not edited: the rule says {value!r}, the cell {now!r}; put "
                f"{value!r} back and change {key.split(':')[0]} in the rule file or the web editor", sheet.title,
                row[1].coordinate))
    return problems


def _same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _as_number(a.rstrip("%")), _as_number(b.rstrip("%"))
    if x is None or y is None:
        return False
    return abs(x / (100 if a.endswith("%") else 1) - y / (100 if b.endswith("%") else 1)) < 1e-12


def _same(rows: list[dict[str, Any]], original: list[dict[str, Any]]) -> bool:
    if len(rows) != len(original):
        return False
    for new, old in zip(rows, original, strict=True):
        cells = {k: v.strip() for k, v in old["cells"].items()}
        if new["cells"] != cells or new["keep"].get(ROW_ID) != old["keep"].get(ROW_ID):
            return False
    return True


def _plain(cell: Any) -> str:
    value = getattr(cell, "value", None)
    return "" if value is None else str(value).strip()


def _cell_text(cell: Any) -> tuple[str, str | None]:
    """A cell as the grid's text, or a problem: numbers without float noise, TRUE as `true`, dates as ISO."""
    value = cell.value
    if cell.data_type == "f":
        return "", (f"an Excel formula ({value}) is not a rule cell: to write a rule expression, type it as text "
                    "with a leading apostrophe ('=…)")
    if cell.data_type == "e":
        return "", f"the cell holds the error {value}"
    if value is None:
        return "", None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value)), None
        return format(value, ".15g"), None
    if isinstance(value, dt.datetime):
        return (value.date().isoformat() if value.time() == dt.time() else value.isoformat()), None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat(), None
    return str(value).strip(), None


def _address(place: _Placed, row: int, column: str | None) -> str:
    r = place.rows[row]
    if column is not None and column in place.letters:
        return f"{place.letters[column]}{r}"
    letters = sorted(place.letters.values(), key=lambda x: (len(x), x))
    return f"{letters[0]}{r}:{letters[-1]}{r}" if letters else f"A{r}"


def _sheet_ref(title: str) -> str:
    return quote_sheetname(title) if not title.isidentifier() else title


def _rule(book: RuleBook, rule_id: str) -> Any:
    if rule_id not in book:
        raise InputError(f"no rule {rule_id!r} at revision {book.revision}")
    rule = book.rule(rule_id)
    if rule.kind not in ("decision_table", "scorecard"):
        raise InputError(f"rule tables are decision tables and scorecards; {rule_id} is a {rule.kind}")
    return rule


# --- the change, on the rule store -------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """What an import did: a new head, a change request waiting for approval, or nothing (`unchanged`)."""

    rule_id: str
    file: str
    base: str
    revision: str | None = None
    change_request: Any = None
    unchanged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "file": self.file, "base": self.base, "revision": self.revision,
                "change_request": self.change_request.to_dict() if self.change_request else None,
                "unchanged": self.unchanged}


def import_table(store: RuleStore, data: bytes, author: str, message: str, base: str | None = None,
                 name: str = "<upload>", rule_id: str | None = None) -> Imported:
    """Read an edited rule table and commit it (or propose it, when changes need approval) with `message`.

    The base is `base` when given (an `If-Match`), else the revision the table was exported at. A table whose
    rule file changed since its base is refused (StaleTable, naming the change); one whose file did not change is
    applied to the head. TableRefused names every bad cell, and every problem the changed book or its rule tests
    have, at its cell where it has one. Nothing is written unless everything passes."""
    upload = read_workbook(data, name)
    if rule_id is not None and upload.rule_id != rule_id:
        raise InputError(f"{name} is the table of rule {upload.rule_id!r}, not {rule_id!r}")
    base = store.resolve(base or upload.base)
    head = store.head()
    source = store.read(upload.file, base)
    if head != base:
        if store.files(head).get(upload.file) != source:
            raise StaleTable(base, head, upload.file, _changes_since(store, upload.file, base))
        base = head  # only other files changed: the edit applies to the head exactly as it would to its base
    edit = rebuild(upload, store.book(base), source)
    if edit.problems:
        edit.checked(lambda: store.validate({edit.file: edit.text}, base))
    if edit.unchanged:
        return Imported(edit.rule_id, edit.file, base, unchanged=True)
    try:
        if store.require_approval:
            cr = store.propose({edit.file: edit.text}, base, author, message)
            return Imported(edit.rule_id, edit.file, base, change_request=cr)
        revision = store.commit({edit.file: edit.text}, base, author, message)
    except ValidationFailed as e:
        raise TableRefused(edit.located(e.problems)) from None
    return Imported(edit.rule_id, edit.file, base, revision=revision)


def _changes_since(store: RuleStore, file: str, base: str) -> list[Revision]:
    """The revisions that changed `file` after `base`, newest first."""
    at_base = {r.id for r in store.history(path=file, rev=base)}
    return [r for r in store.history(path=file) if r.id not in at_base]


def file_revision(text: str) -> str:
    """The base a table exported from a rules folder (no repository) records: its file's content hash."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
