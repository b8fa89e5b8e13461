"""FEEL text of a DMN model ↔ the KAM expression language.

Simple FEEL and our language share their syntax for what decision tables use (literals, comparisons, intervals,
`not(...)`, `?`, arithmetic, `if`, `in`, `between`, dates, times, durations). Two things differ: FEEL names may hold
spaces and dots (`Risk Category`, `Applicant.Age`), which become field identifiers here; and FEEL has constructs our
language does not (`for`, `some`, `every`, functions, contexts, filters), which are refused with their place.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ExpressionError
from ..expressions import ast, temporal
from ..expressions.parser import parse_expression, parse_unary_tests
from ..expressions.types import TEMPORAL, Type

# FEEL built-ins whose meaning our functions share exactly; any other call is refused (DMN 1.5 §10.3.4).
FEEL_FUNCTIONS = {"date", "time", "date and time", "duration", "years and months duration", "min", "max", "abs",
                  "floor", "ceiling", "contains", "today"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_KEYWORDS = {"and", "or", "not", "in", "between", "if", "then", "else", "for", "some", "every", "satisfies",
             "return", "instance", "of", "function", "true", "false", "null"}
_ITERATION = [
    (re.compile(r"\bfor\b.+\bin\b.+\breturn\b", re.S), "a `for ... in ... return` iteration"),
    (re.compile(r"\bsome\b.+\bin\b.+\bsatisfies\b", re.S), "a `some ... satisfies` quantifier"),
    (re.compile(r"\bevery\b.+\bin\b.+\bsatisfies\b", re.S), "an `every ... satisfies` quantifier"),
    (re.compile(r"\bfunction\s*\("), "a function definition"),
    (re.compile(r"\binstance\s+of\b"), "`instance of`"),
    (re.compile(r"\{"), "a context literal {...}"),
    (re.compile(r"[\])]\s*\["), "a filter expression [...]"),
    (re.compile(r"\d\s*%"), "a percent sign (not FEEL)"),
    (re.compile(r"`"), "a back-quoted name (not FEEL)"),
]
FEEL_NAME = re.compile(r"^[^\W\d]\w*(?:[ '?]+\w+)*(?:\.[^\W\d]\w*(?:[ '?]+\w+)*)*$")


def identifier(name: str) -> str:
    """A DMN name (or dotted path) as a KAM field identifier: `Risk Category` → `Risk_Category`,
    `Applicant.Age` → `Applicant_Age`. Other scripts are kept distinct through punycode (`年龄` → `u_...`)."""
    parts = []
    for segment in name.split("."):
        text = segment.strip()
        if not text.isascii():
            text = "u_" + text.encode("punycode").decode("ascii")
        text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"
        parts.append(text)
    out = "_".join(parts)
    return out if re.match(r"[A-Za-z_]", out) else "_" + out


def is_name(text: str) -> bool:
    """Whether input-expression text is a FEEL name or dotted path rather than a computation."""
    words = set(re.split(r"[\s.]+", text.strip()))
    return bool(FEEL_NAME.match(text.strip())) and not (words & _KEYWORDS)


Refuse = Callable[[str], Exception]


def _segments(text: str) -> list[tuple[bool, str]]:
    """(is_string_literal, piece) pieces, so names are never replaced inside quoted text."""
    out, last = [], 0
    for m in _STRING.finditer(text):
        out.append((False, text[last:m.start()]))
        out.append((True, m.group()))
        last = m.end()
    out.append((False, text[last:]))
    return out


def _rename(code: str, names: Mapping[str, str]) -> str:
    """Replace each known DMN name (longest first, whitespace-flexible, not a function call) by its identifier."""
    for name in sorted(names, key=len, reverse=True):
        words = [re.escape(w) for w in re.split(r"\s+", name.strip())]
        pattern = r"(?<![\w.])" + r"\s+".join(words) + r"(?![\w])(?!\s*\()"
        code = re.sub(pattern, lambda _m, n=names[name]: n, code)
    return code


def translate(text: str, names: Mapping[str, str], tests: bool, refuse: Refuse) -> str:
    """FEEL text → our text (names replaced by identifiers), after refusing what our language does not mean the
    same way. `tests` parses as unary tests (an input entry), else as an expression (an output entry)."""
    pieces = _segments(text)
    code = " ".join(p for quoted, p in pieces if not quoted)
    for pattern, what in _ITERATION:
        if pattern.search(code):
            raise refuse(f"{what} in {text.strip()!r} is outside the FEEL that KAM Rules evaluates")
    out = "".join(p if quoted else _rename(p, names) for quoted, p in pieces)
    try:
        tree = parse_unary_tests(out) if tests else parse_expression(out)
    except ExpressionError as e:
        raise refuse(f"{text.strip()!r} is outside the FEEL that KAM Rules evaluates: {e.message}") from None
    if re.search(r"\bif\s*\(", code) and not re.search(r"\bthen\b", code):
        raise refuse(f"{text.strip()!r}: if(a, b, c) is not FEEL; write if a then b else c")
    for node in tree.walk():
        if isinstance(node, ast.Call) and node.func not in FEEL_FUNCTIONS:
            raise refuse(f"function {node.func}() in {text.strip()!r} is not one KAM Rules evaluates as FEEL does "
                         f"(supported: {', '.join(sorted(FEEL_FUNCTIONS))})")
    return out.strip()


def date_number_arithmetic(tree: ast.Node) -> ast.Arithmetic | None:
    """The first `date ± number` or `date - date` in a type-checked tree: KAM reads them as days, FEEL gives
    null and a duration (DMN 1.5 §10.3.2.3), so the same text answers differently."""
    for node in tree.walk():
        if isinstance(node, ast.Arithmetic) and Type.DATE in (node.left.type, node.right.type) \
                and Type.NUMBER in (node.left.type, node.right.type, node.type):
            return node
    return None


def literal(text: str, refuse: Refuse) -> tuple[bool, Any, Type | None]:
    """An output entry or default as a plain value: (is_literal, value, type). Strings, numbers, booleans,
    null, and dates / times / durations written as `date("...")`, `@"..."` and the like."""
    try:
        node = parse_expression(text)
    except ExpressionError:
        return False, None, None  # not a plain value (names with spaces, for one): the caller translates it
    negative = isinstance(node, ast.Negate) and isinstance(node.operand, ast.Literal)
    if negative:
        node = node.operand
    if isinstance(node, ast.Call) and node.func in ("date", "time", "date and time") and len(node.args) == 1 \
            and isinstance(node.args[0], ast.Literal) and node.args[0].literal_type == Type.STRING:
        return _temporal_call(node.func, node.args[0].value, refuse)
    if not isinstance(node, ast.Literal):
        return False, None, None
    value, type_ = node.value, node.literal_type
    if negative:
        if type_ != Type.NUMBER:
            return False, None, None
        value = -value
    if type_ == Type.NUMBER:
        value = int(value) if float(value).is_integer() and abs(value) < 2**53 else value
    return True, value, type_


def _temporal_call(func: str, text: str, refuse: Refuse) -> tuple[bool, Any, Type]:
    try:
        if func == "date":
            return True, dt.date.fromisoformat(text.strip()), Type.DATE
        type_ = Type.TIME if func == "time" else Type.DATE_TIME
        return True, temporal.parse(text, type_), type_
    except (ValueError, temporal.TemporalError) as e:
        raise refuse(f'{func}("{text}"): {e}') from None


def value_text(value: Any, type_: Type | None = None) -> str:
    """A plain value as FEEL text: `"Approved"`, `18`, `true`, `null`, `date("2024-01-31")`, `duration("P1D")`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, dt.datetime):
        return temporal.constructor(value, Type.DATE_TIME)
    if isinstance(value, dt.date):
        return f'date("{value.isoformat()}")'
    if isinstance(value, dt.time | dt.timedelta | temporal.YearsMonths):
        return temporal.constructor(value, type_ or Type.TIME)
    if type_ in TEMPORAL and isinstance(value, str):
        return temporal.constructor(temporal.parse(value, type_), type_)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def yaml_value(value: Any, type_: Type | None) -> Any:
    """A literal as it is written in a rule file: times and durations as ISO text (the output type says what
    they are), everything else as itself."""
    if type_ in TEMPORAL and value is not None:
        return temporal.iso(value)
    return value
