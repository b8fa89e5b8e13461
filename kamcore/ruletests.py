"""Rule tests: example accounts with expected outputs, kept beside the rules (`tests/*.yaml`) and run on
every change."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from . import schemas, yamlsource
from .errors import Problem
from .events.schema import TEST_KIND as EVENT_TESTS
from .rulebook import TESTS_DIR, RuleBook, SourceFile


class _ExpectedError(schemas.Strict):
    row = fields.Integer()
    rule = fields.String()
    field = fields.String()


class _Case(schemas.Strict):
    name = fields.String(required=True)
    as_of = fields.Raw()
    account = fields.Dict(keys=fields.String())
    accounts = fields.List(fields.Dict(keys=fields.String()))
    expect = fields.Raw()
    expect_errors = fields.List(fields.Nested(_ExpectedError))

    @validates_schema
    def _shape(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("account" in data) == ("accounts" in data):
            raise ValidationError("give either `account` (one) or `accounts` (a list)")
        if "expect" not in data and "expect_errors" not in data:
            raise ValidationError("give `expect` (outputs) and/or `expect_errors`")
        many = "accounts" in data
        expect = data.get("expect")
        if expect is not None and many != isinstance(expect, list):
            raise ValidationError({"expect": ["with `accounts`, expect a list (one entry per account); "
                                              "with `account`, a mapping"]})


class _TestFile(Schema):
    tests = fields.List(fields.Raw(), required=True)


@dataclass
class TestResult:
    __test__ = False  # not a pytest class

    name: str
    file: str
    line: int | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        head = f"{self.file}:{self.line}: {self.name}"
        return head + (": ok" if self.passed else "".join(f"\n    {f}" for f in self.failures))


@dataclass
class TestRun:
    __test__ = False

    results: list[TestResult]
    problems: list[Problem]  # test files that could not be read

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.passed for r in self.results)

    @property
    def failed(self) -> list[TestResult]:
        return [r for r in self.results if not r.passed]


def case_files(folder: str | Path) -> list[SourceFile]:
    root = Path(folder)
    tests = root / TESTS_DIR
    if not tests.is_dir():
        return []
    return [SourceFile(p.relative_to(root).as_posix(), p.read_text(encoding="utf-8"))
            for p in sorted(tests.rglob("*.y*ml")) if p.is_file()]


def run(book: RuleBook, files: list[SourceFile]) -> TestRun:
    """Run every test case of the given test files against a loaded rule book."""
    results: list[TestResult] = []
    problems: list[Problem] = []
    for f in files:
        try:
            data, positions = yamlsource.load(f.text, f.path)
        except yamlsource.YamlError as e:
            problems.append(e.problem)
            continue
        if isinstance(data, dict) and data.get("kind") == EVENT_TESTS:
            from .events import ruletests as event_tests  # imports this module's TestResult

            found, unread = event_tests.run_file(book, data, positions)
            results += found
            problems += unread
            continue
        try:
            doc = _TestFile().load(data if isinstance(data, dict) else {})
        except ValidationError:
            problems.append(Problem("a test file holds `tests:`, a list of test cases", f.path, 1, 1))
            continue
        for case, line in checked_cases(doc["tests"], positions, _Case, problems):
            results.append(_run_case(book, case, f.path, line))
    return TestRun(results, problems)


def checked_cases(tests: list[Any], positions: yamlsource.Positions, schema: type[Schema],
                  problems: list[Problem]) -> Iterator[tuple[dict[str, Any], int | None]]:
    """Each test case that `schema` accepts, with its line; every other one adds its problems, placed at the
    offending key, to `problems`."""
    for i, raw in enumerate(tests):
        path = ("tests", i)
        try:
            case = schema().load(raw)
        except ValidationError as e:
            for rel, message in schemas.flatten(e.messages):
                problems.append(positions.problem(path + rel, schemas.plain(rel, message),
                                                  hint=schemas.hint_for(rel, message, schema),
                                                  at_key=message.startswith("Unknown field")))
            continue
        yield case, positions.at(path)[0]


def run_folder(folder: str | Path) -> TestRun:
    """Load the rule book in `folder` and run its tests."""
    return run(RuleBook.load(folder), case_files(folder))


def _run_case(book: RuleBook, case: dict[str, Any], file: str, line: int | None) -> TestResult:
    result = TestResult(case["name"], file, line)
    accounts = case["accounts"] if "accounts" in case else [case["account"]]
    expects = case.get("expect")
    expects = (expects if isinstance(expects, list) else [expects]) if expects is not None else []
    known = set(book.outputs)
    try:
        ev = book.evaluate(accounts, as_of=case.get("as_of") or dt.date(2026, 1, 1))
    except Exception as e:  # a test that crashes the engine is a failing test, with the reason
        result.failures.append(f"evaluation failed: {type(e).__name__}: {e}")
        return result
    wanted_errors = case.get("expect_errors", [])
    for row, expect in enumerate(expects):
        for name, want in (expect or {}).items():
            if name not in known:
                result.failures.append(f"account {row + 1}: {name!r} is not an output of any rule")
                continue
            got = ev.outputs(row)[name] if row < len(accounts) else None
            if not _same(got, want):
                result.failures.append(f"account {row + 1}: {name} expected {want!r}, got {got!r}")
    for want in wanted_errors:
        if not any(_error_matches(e, want) for e in ev.errors):
            result.failures.append(f"expected an error {want}, got {[str(e) for e in ev.errors] or 'none'}")
    if not wanted_errors:
        result.failures.extend(f"unexpected error: {e}" for e in ev.errors)
    return result


def _error_matches(error: Any, want: dict[str, Any]) -> bool:
    return all(getattr(error, key) == value for key, value in want.items())


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float | int) and not isinstance(want, bool) and isinstance(got, float | int):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    return got == want
