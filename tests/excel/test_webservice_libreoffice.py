"""`=WEBSERVICE()` against a live `kam serve`, computed by LibreOffice headless.

What LibreOffice does: a workbook *opened* headless (`--convert-to`) is loaded with link updates off
(`UpdateDocMode.NO_UPDATE`, LibreOffice's guard against documents that phone home), so its WEBSERVICE cells stay
an error and no request reaches the server — a user opening the same workbook on a desktop clicks "Allow updating".
LibreOffice's own WEBSERVICE implementation is still reachable headless through its `FunctionAccess` service,
which is what a spreadsheet cell runs once links are allowed: that call, made from a Basic macro inside
LibreOffice, fetches the tier from the live service, the same text a desktop cell shows."""

import html
import json
import shutil
import subprocess
import urllib.parse

import openpyxl
import pytest

from tests.server.conftest import KAM, launch

pytestmark = pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is installed by `make test`")

MACRO = '''
Sub Fetch(url As String, outPath As String)
  service = createUnoService("com.sun.star.sheet.FunctionAccess")
  result = service.callFunction("WEBSERVICE", Array(url))
  n = FreeFile
  Open outPath For Output As #n
  Print #n, result
  Close #n
End Sub
'''
MODULE = ('<?xml version="1.0" encoding="UTF-8"?>\n'
          '<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">\n'
          '<script:module xmlns:script="http://openoffice.org/2000/script" '
          'script:name="Module1" script:language="StarBasic">' + html.escape(MACRO) + '</script:module>')
A = {"revenue_12m": 12_000_000, "dso_days": 45, "gross_profit_12m": 3_600_000}
D = {"revenue_12m": 50_000, "dso_days": 30, "gross_profit_12m": 5_000}


def soffice(profile, *args, timeout=120):
    run = subprocess.run(["soffice", "--headless", "--norestore", f"-env:UserInstallation=file://{profile}", *args],
                         capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("webservice")
    server = launch(root)
    token = subprocess.run([KAM, "token", "create", "--name", "calc", "--role", "viewer", "--data", str(server.data)],
                           check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    yield root, server, token
    server.stop()


def cell_url(server, token, account):
    return f"http://127.0.0.1:{server.port}/v1/cell/tier?{urllib.parse.urlencode({**account, 'token': token})}"


def requests_seen(server):
    """Cell requests in the service's access log (one JSON object a line on stderr)."""
    lines = [line for line in server.err.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    return sum(json.loads(line).get("path") == "/v1/cell/tier" for line in lines)


def test_libreoffice_webservice_fetches_the_tier_from_a_live_service(served):
    root, server, token = served
    profile = root / "lo-profile"
    soffice(profile, "--terminate_after_init")
    (profile / "user/basic/Standard/Module1.xba").write_text(MODULE, encoding="utf-8")
    for account, tier in ((A, "A"), (D, "D")):
        out = root / f"tier-{tier}.txt"
        before = requests_seen(server)
        soffice(profile, f'macro:///Standard.Module1.Fetch("{cell_url(server, token, account)}","{out}")')
        assert out.read_text(encoding="utf-8").strip() == tier
        assert requests_seen(server) > before  # it came from the live service, logged with its decision id


def test_a_workbook_opened_headless_does_not_fetch(served):
    root, server, token = served
    book = root / "cells.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["revenue_12m", "dso_days", "gross_profit_12m", "tier"])
    ws.append([A["revenue_12m"], A["dso_days"], A["gross_profit_12m"], None])
    base = f"http://127.0.0.1:{server.port}/v1/cell/tier"
    ws["D2"] = (f'=_xlfn.WEBSERVICE("{base}?revenue_12m="&A2&"&dso_days="&B2&"&gross_profit_12m="&C2'
                f'&"&token={token}")')
    wb.save(book)
    before = requests_seen(server)
    soffice(root / "lo-profile-2", "--convert-to", "xlsx", "--outdir", str(root / "converted"), str(book))
    recalculated = openpyxl.load_workbook(root / "converted/cells.xlsx", data_only=True).active
    assert recalculated["D2"].value == "#N/A"  # links are not updated on a headless load
    assert requests_seen(server) == before
