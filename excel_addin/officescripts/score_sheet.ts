// KAM Rules: score the active sheet (Excel on the web / Office Scripts). Paste into Automate > New Script.
// Set URL and TOKEN below, or put them in a sheet named "xlwings.conf" (A: key, B: value: URL, TOKEN, LANG).
// It sends the book payload of the xlwings protocol and applies the actions the service answers.
const URL = "http://127.0.0.1:8080/xlwings/score-sheet";
const TOKEN = "";
const LANG = "zh";

async function main(workbook: ExcelScript.Workbook): Promise<void> {
  const config: { [key: string]: string } = {};
  const confSheet = workbook.getWorksheet("xlwings.conf");
  if (confSheet) {
    for (const row of confSheet.getRange("A1").getSurroundingRegion().getValues()) {
      config[String(row[0])] = String(row[1]);
    }
  }
  const url = config["URL"] || URL;
  const token = config["TOKEN"] || TOKEN;
  const lang = config["LANG"] || LANG;
  const sheets = workbook.getWorksheets();
  const active = workbook.getActiveWorksheet();
  const payload = {
    client: "Office Scripts",
    version: "kam-1",
    book: { name: workbook.getName(), active_sheet_index: active.getPosition(), selection: "A1" },
    names: [],
    sheets: sheets.map((sheet) => {
      const used = sheet.getUsedRange(true);
      if (!used || sheet.getPosition() !== active.getPosition()) {
        return { name: sheet.getName(), values: [[]], pictures: [], tables: [] };
      }
      const last = used.getLastCell();
      const range = sheet.getRangeByIndexes(0, 0, last.getRowIndex() + 1, last.getColumnIndex() + 1);
      return { name: sheet.getName(), values: range.getValues(), pictures: [], tables: [] };
    }),
  };
  const response = await fetch(`${url}?lang=${lang}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify(payload),
  });
  if (response.status !== 200) {
    throw new Error(`KAM Rules answered ${response.status}: ${await response.text()}`);
  }
  const answer: { actions: Action[]; kam: { scored: number; errors: object[] } } = await response.json();
  for (const action of answer.actions) {
    const sheet = sheets[action.sheet_position];
    const range = sheet.getRangeByIndexes(action.start_row, action.start_column, action.row_count,
      action.column_count);
    switch (action.func) {
      case "setValues": range.setValues(action.values); break;
      case "clearContents": range.clear(ExcelScript.ClearApplyTo.contents); break;
      case "setRangeColor": range.getFormat().getFill().setColor(String(action.args[0])); break;
      case "setNumberFormat": range.setNumberFormat(String(action.args[0])); break;
      case "setAutofit": range.getFormat().autofitColumns(); break;
      case "addNote": {
        const cell = range.getCell(0, 0);
        const old = workbook.getCommentByCell(cell);
        if (old) { old.delete(); }
        if (String(action.args[0])) { workbook.addComment(cell, String(action.args[0])); }  // empty: note removed
        break;
      }
      default: throw new Error(`unknown action ${action.func}`);
    }
  }
  console.log(`KAM Rules: ${answer.kam.scored} accounts scored, ${answer.kam.errors.length} with errors`);
}

interface Action {
  func: string;
  args: (string | number | boolean)[];
  values: (string | number | boolean)[][];
  sheet_position: number;
  start_row: number;
  start_column: number;
  row_count: number;
  column_count: number;
}
