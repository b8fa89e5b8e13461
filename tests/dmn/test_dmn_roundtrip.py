"""DMN in and out: `kam import-dmn` writes YAML that passes `kam rules check` and evaluates exactly as the DMN does;
`kam export-dmn` writes DMN 1.5; import → export → import gives back the same rule documents."""

import datetime as dt
import itertools
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kamcore import RuleBook, dmn
from kamcore.cli import main
from kamcore.errors import HitPolicyViolation, InputError, UnsupportedFeature

MODELS = Path(__file__).parent / "models"
GOOD = ["dish_1_1.dmn", "types_1_2.dmn", "approval_1_3.dmn", "unary_tests_1_4.dmn", "hit_policies_1_5.dmn"]
ROOT = Path(__file__).resolve().parents[2]


def kam(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("name", GOOD)
def test_import_export_import_is_lossless(name):
    first = dmn.read((MODELS / name).read_bytes(), name)
    book = dmn.load((MODELS / name).read_bytes(), name)
    for rule in first.rules:
        exported = dmn.write(book, rule["id"])
        assert 'xmlns="https://www.omg.org/spec/DMN/20230324/MODEL/"' in exported
        second = dmn.read(exported, f"{rule['id']}.dmn")
        assert second.version == "1.5"
        again = next(r for r in second.rules if r["id"] == rule["id"])
        assert again == rule
        # and the exported model evaluates: its own book loads
        assert rule["id"] in dmn.load(exported)


def test_export_writes_input_data_and_a_diagram():
    xml = dmn.write(dmn.load((MODELS / "approval_1_3.dmn").read_bytes()), "Approval_Status")
    m = dmn.read(xml)
    assert sorted(m.names) == ["Age", "Approval_Status", "RiskCategory"]
    assert xml.count("<dmndi:DMNShape") == 3 and xml.count("<dmndi:DMNEdge") == 2
    assert '<decision id="Approval_Status" name="Approval_Status" label="Approval Status">' in xml


def test_shipped_rules_export_where_they_are_feel(tmp_path):
    book = RuleBook.load(ROOT / "rules")
    xml = dmn.write(book, "credit_status")
    assert dmn.read(xml).rules[0]["hit_policy"] == "FIRST"
    with pytest.raises(UnsupportedFeature, match="only decision tables"):
        dmn.write(book, "exposure")


def test_export_refuses_cells_that_mean_something_else_in_feel():
    files = {
        "f.yaml": "fields:\n  - {name: since, type: date}\n  - {name: revenue, type: number}\n",
        "t.yaml": "rules:\n  - id: t\n    kind: decision_table\n    label: t\n    hit_policy: FIRST\n"
                  "    inputs: [since, revenue]\n    outputs: [{name: due, type: date}]\n    rows:\n"
                  "      - {when: {revenue: '>= 10%'}, then: '= since + 30'}\n",
    }
    book = RuleBook.from_files(files)
    with pytest.raises(UnsupportedFeature, match="rule t, row r1.*percent"):
        dmn.write(book, "t")


# --- the CLI ------------------------------------------------------------------------------------------------------


def _grid(name):
    """Inputs that exercise every row of a model, nulls included."""
    if name == "hit_policies_1_5.dmn":
        return [dict(zip(("Score", "Segment", "Threshold"), c, strict=True)) for c in itertools.product(
            [None, 1, 5, 20, 55, 85, 95], [None, "vip", "retail"], [None, 1, 10, 60])]
    if name == "unary_tests_1_4.dmn":
        return [dict(zip(("Amount", "Region", "Member", "Since", "Limit"), c, strict=True)) for c in itertools.product(
            [None, 2, 100, 150, 250, 400], [None, "north", "east"], [None, True, False],
            [None, dt.date(2023, 6, 1), dt.date(2024, 6, 1)], [None, 120])]
    if name == "approval_1_3.dmn":
        return [{"Age": a, "RiskCategory": r} for a in (None, 3, 18, 60) for r in (None, "Low", "Medium", "High")]
    if name == "dish_1_1.dmn":
        return [{"season": s, "guestCount": g} for s in (None, "Fall", "Winter", "Spring", "Summer")
                for g in (None, 2, 4, 6, 9)]
    return [{"Customer Name": n, "Amount": a, "Flag": True, "Day": "2024-02-01", "At": "09:00:00",
             "Stamp": "2024-03-01T10:00:00", "Wait": "P2D", "Term": "P1Y6M", "Applicant": {"Age": age,
                                                                                          "Monthly Income": 4000}}
            for n in (None, "Ada") for a in (None, 150) for age in (None, 20, 30)]


def _flat(inputs, names):
    out = {}
    for key, value in inputs.items():
        if isinstance(value, dict):
            out.update({names[f"{key}.{k}"]: v for k, v in value.items() if f"{key}.{k}" in names})
        elif key in names:
            out[names[key]] = value
    return out


@pytest.mark.parametrize("name", GOOD)
def test_imported_yaml_passes_check_and_evaluates_as_the_dmn(tmp_path, name):
    out = tmp_path / "book"
    result = kam("import-dmn", MODELS / name, "--out", out)
    assert result.exit_code == 0, result.output
    check = kam("rules", "check", out)
    assert check.exit_code == 0, check.output
    xml = (MODELS / name).read_bytes()
    model = dmn.read(xml, name)
    grid = _grid(name)
    accounts = [_flat(g, model.names) for g in grid]
    ev = RuleBook.load(out).evaluate(accounts, as_of="2026-01-01")  # the files on disk, not the model in memory
    direct = dmn.load(xml, name).evaluate(accounts, as_of="2026-01-01")
    assert [ev.outputs(i) for i in range(len(grid))] == [direct.outputs(i) for i in range(len(grid))]
    assert [(e.row, e.rule, e.message) for e in ev.errors] == [(e.row, e.rule, e.message) for e in direct.errors]
    for i, inputs in list(enumerate(grid))[::5]:  # and dmn.evaluate, DMN-shaped, account by account (a sample)
        bad = {e.rule for e in ev.errors if e.row == i}
        for decision in model.decisions.values():
            try:
                want = dmn.evaluate(xml, decision.name, inputs, as_of=dt.date(2026, 1, 1), file=name)
            except (HitPolicyViolation, InputError):
                assert bad, (decision.name, inputs)
                continue
            got = {n: ev.outputs(i)[f] for n, f in decision.outputs.items()}
            if want is None:
                assert all(v is None for v in got.values()), (decision.name, inputs)
            elif decision.single:
                assert got[decision.name] == want, (decision.name, inputs)
            elif isinstance(want, dict):
                assert got == want, (decision.name, inputs)
            else:
                assert [dict(zip(got, hit, strict=True)) for hit in zip(*got.values(), strict=True)] == want


def test_import_dmn_never_overwrites(tmp_path):
    out = tmp_path / "book"
    assert kam("import-dmn", MODELS / "approval_1_3.dmn", "--out", out).exit_code == 0
    again = kam("import-dmn", MODELS / "approval_1_3.dmn", "--out", out)
    assert again.exit_code == 1 and "already exist" in again.output


def test_import_dmn_reports_a_refusal_with_its_line(tmp_path):
    result = kam("import-dmn", MODELS / "refuse_context.dmn", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert 'refuse_context.dmn:5: <context id="ctx_1">' in result.output
    assert not (tmp_path / "x").exists()


def test_export_dmn_writes_a_file_that_imports_back(tmp_path):
    out = tmp_path / "book"
    kam("import-dmn", MODELS / "hit_policies_1_5.dmn", "--out", out)
    target = tmp_path / "offer.dmn"
    result = kam("export-dmn", "Offer", "-o", target, "--rules", out)
    assert result.exit_code == 0, result.output
    original = yaml.safe_load((out / "Offer.yaml").read_text())["rules"][0]
    assert dmn.read(target.read_bytes()).rules[0] == original
    missing = kam("export-dmn", "Nope", "-o", tmp_path / "n.dmn", "--rules", out)
    assert missing.exit_code == 1 and "no rule 'Nope'" in missing.output
