"""The desktop add-in's score_sheet on a 10,000-row ledger, Python side only: the in-memory sheet model stands in
for Excel, so the figures leave out the COM round trips (one per sheet call; `calls` counts them) and Excel's own
drawing. Offline (local rule book) and remote (`kam serve` on loopback, this process as the client); a first
run, then a re-run over the scored sheet (the in-place update), median of `--repeat`.

    python bench/excel_desktop.py [--rows 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http import free_port, start_server, token  # noqa: E402
from excel_addin.macro import score_sheet  # noqa: E402
from excel_addin.settings import Settings  # noqa: E402
from excel_addin.sheet import SheetModel  # noqa: E402
from kamcore.demo import synthetic_portfolio  # noqa: E402
from kamcore.rulebook import RuleBook  # noqa: E402

RULES = ROOT / "rules"


def ledger(n: int) -> list[list]:
    """A title, 中文 headers, n accounts (dates as the datetimes xlwings hands over), a totals row."""
    frame = synthetic_portfolio(n, 3)
    book = RuleBook.load(RULES)
    headers = [book.dictionary.label(c, "zh") or c for c in frame.columns]
    frame = frame.astype(object).where(frame.notna(), None)
    rows = [[v.to_pydatetime() if hasattr(v, "to_pydatetime") else v for v in r] for r in frame.values.tolist()]
    return [["重点客户台账"], [], headers, *rows, ["合计"]]


def timed(rows: list[list], settings: Settings, repeat: int) -> tuple[float, float, int, int]:
    firsts, reruns, calls, scored = [], [], 0, 0
    for _ in range(repeat):
        sheet = SheetModel.from_rows(rows, "客户台账")
        t = time.perf_counter()
        scored = score_sheet(sheet, settings).scored
        firsts.append(time.perf_counter() - t)
        calls = sheet.calls
        t = time.perf_counter()
        score_sheet(sheet, settings)
        reruns.append(time.perf_counter() - t)
    return statistics.median(firsts), statistics.median(reruns), calls, scored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = ledger(args.rows)
    offline = Settings(rules=RULES)
    score_sheet(SheetModel.from_rows(rows[:50]), offline)  # load and compile the rule book once, as Excel would
    first, again, calls, scored = timed(rows, offline, args.repeat)
    print(f"offline  {scored:,} accounts: first run {first:.2f} s, re-run {again:.2f} s, {calls} sheet calls")
    data = Path(tempfile.mkdtemp(prefix="kam-bench-"))
    port = free_port()
    server = start_server(data, port, threads=4, workers=1, access_log=False)
    try:
        remote = Settings(url=f"http://127.0.0.1:{port}", token=token(data))
        score_sheet(SheetModel.from_rows(rows[:50]), remote)
        first, again, calls, scored = timed(rows, remote, args.repeat)
        print(f"remote   {scored:,} accounts: first run {first:.2f} s, re-run {again:.2f} s, {calls} sheet calls")
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
