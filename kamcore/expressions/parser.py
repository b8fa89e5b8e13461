"""Text → syntax tree, for expressions and for decision-table unary tests (lark, LALR)."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import lark
from lark import Token, Tree

from ..errors import ExpressionSyntaxError
from . import ast, temporal
from .types import Type

MAX_TEXT = 10_000  # one cell or formula; longer is certainly a mistake (and a cheap guard against abuse)


@lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    grammar = resources.files(__package__).joinpath("grammar.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, start=["expression", "positive_tests"], parser="lalr", maybe_placeholders=False)


def parse_expression(text: str) -> ast.Node:
    """Parse a formula or output cell, e.g. `gross_profit_12m / revenue_12m`."""
    return _convert(_parse(text, "expression"), text)


def parse_unary_tests(text: str) -> ast.UnaryTests:
    """Parse an input cell: `-`, `>= 1000000`, `[100..500)`, `"finance", "retail"`, `not("gov")`, `? > x`."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    if stripped in ("", "-"):
        return ast.UnaryTests(lead, [], is_any=True)
    m = re.match(r"not\s*\(", stripped)
    if m and stripped.endswith(")"):
        # `not(...)` around the whole cell. Brackets cannot be matched up front because intervals such as
        # `[1..2)` mix them, so try the inside as tests; `not(a) or not(b)` fails there and is parsed whole.
        start = lead + m.end()
        try:
            return ast.UnaryTests(lead, _positive_tests(text, start, lead + len(stripped) - 1), negated=True)
        except ExpressionSyntaxError as inner:
            try:
                return ast.UnaryTests(lead, _positive_tests(text, 0, len(text)))
            except ExpressionSyntaxError:
                raise inner from None
    return ast.UnaryTests(lead, _positive_tests(text, 0, len(text)))


def _positive_tests(text: str, start: int, end: int) -> list[ast.Node]:
    # Parse the slice but keep offsets relative to the whole cell, so errors point at the right column.
    padded = " " * start + text[start:end]
    tree = _parse(padded, "positive_tests", shown=text)
    return [_convert(t, text) for t in tree.children]


def _parse(text: str, start: str, shown: str | None = None) -> Tree:
    shown = text if shown is None else shown
    if len(text) > MAX_TEXT:
        raise ExpressionSyntaxError(f"text is too long ({len(text)} characters, at most {MAX_TEXT})", "", 0)
    try:
        return _lark().parse(text, start=start)
    except lark.exceptions.UnexpectedCharacters as e:
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        raise ExpressionSyntaxError(f"unexpected character {ch!r}", shown, e.pos_in_stream, _hint(shown)) from None
    except lark.exceptions.UnexpectedEOF as e:
        raise ExpressionSyntaxError(
            f"the text ends too early; expected {_expected(e.expected)}", shown, len(shown.rstrip()), _hint(shown)
        ) from None
    except lark.exceptions.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            msg = f"the text ends too early; expected {_expected(e.expected)}"
            offset = len(shown.rstrip())
        else:
            msg = f"unexpected {tok.value!r}"
            offset = tok.start_pos or 0
        raise ExpressionSyntaxError(msg, shown, offset, _hint(shown)) from None


_READABLE = {
    "NUMBER": "a number", "STRING": 'text in "double quotes"', "NAME": "a field name", "LPAR": "'('",
    "RPAR": "')'", "COMMA": "','", "COMP_OP": "a comparison", "LSQB": "'['", "RSQB": "']'",
    "AT": '@"YYYY-MM-DD"', "QMARK": "'?'", "MINUS": "'-'", "PERCENT": "a percentage", "QUOTED_NAME": "a `name`",
    "IF": "if", "NOT": "not", "TRUE": "true", "FALSE": "false", "NULL": "null", "FEEL_NAME": "a function",
}


def _expected(expected: set[str]) -> str:
    names = sorted({_READABLE.get(e, e.lower()) for e in expected if not e.startswith("__")})
    return ", ".join(names[:6]) or "more"


def _hint(text: str) -> str | None:
    if any(q in text for q in "“”‘’'"):
        return 'write text in straight double quotes, e.g. "finance"'
    if "==" in text:
        return "compare with a single =, e.g. industry = \"retail\""
    if "&&" in text or "||" in text:
        return "use the words and / or"
    if re.search(r"\d,\d{3}", text):
        return "write numbers without thousands separators, e.g. 5000000"
    if "，" in text:
        return "separate values with an ASCII comma ','"
    return None


def _pos(tree: Tree | Token) -> int:
    if isinstance(tree, Token):
        return tree.start_pos or 0
    for child in tree.children:
        if isinstance(child, Token | Tree):
            return _pos(child)
    return 0


def _temporal(text: str, source: str, pos: int) -> ast.Literal:
    try:
        type_, value = temporal.parse_literal(text)
    except temporal.TemporalError as e:
        raise ExpressionSyntaxError(str(e), source, pos, 'e.g. @"2024-01-31", @"10:30:00", @"P1D", @"P1Y2M"') from None
    return ast.Literal(pos, value, type_)


def _duration(args: list[ast.Node], source: str, pos: int) -> ast.Literal | None:
    """`duration("P1D")` as a literal: whether it is a days or a years duration depends on the text itself."""
    if len(args) != 1 or not isinstance(args[0], ast.Literal) or args[0].literal_type != Type.STRING:
        return None
    try:
        type_, value = temporal.parse_duration(args[0].value)
    except temporal.TemporalError as e:
        raise ExpressionSyntaxError(str(e), source, args[0].pos, 'e.g. duration("P1D") or duration("P1Y2M")') from None
    return ast.Literal(pos, value, type_)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _string(token: Token) -> str:
    # FEEL's escapes: \" \\ \n \t \r \uXXXX; any other escaped character stands for itself.
    def unescape(m: re.Match) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        return _ESCAPES.get(m.group(2), m.group(2))
    return re.sub(r"\\(?:u([0-9a-fA-F]{4})|(.))", unescape, token.value[1:-1])


_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
_LOGICAL = {"and_": "and", "or_": "or"}


def _as_test(node: ast.Node) -> ast.Node:
    """A list after `in` is a test that matches any of its items."""
    return ast.ValueTest(node.pos, node) if isinstance(node, ast.ListLiteral) else node


def _convert(tree: Tree | Token, src: str) -> ast.Node:
    """Lark tree → our syntax tree."""
    if isinstance(tree, Token):
        raise AssertionError(f"unexpected token {tree!r}")  # the grammar wraps every token in a rule
    kind = tree.data if isinstance(tree.data, str) else tree.data.value
    c = tree.children
    pos = _pos(tree)
    if kind == "number":
        return ast.Literal(pos, float(c[0]), Type.NUMBER)
    if kind == "percent":
        return ast.Literal(pos, float(c[0][:-1]) / 100.0, Type.NUMBER)
    if kind == "string":
        return ast.Literal(pos, _string(c[0]), Type.STRING)
    if kind == "at_literal":
        return _temporal(_string(c[0]), src, pos - 1)
    if kind in ("true", "false"):
        return ast.Literal(pos, kind == "true", Type.BOOLEAN)
    if kind == "null":
        return ast.Literal(pos, None, Type.NULL)
    if kind == "input":
        return ast.Input(pos)
    if kind == "name":
        return ast.Name(pos, str(c[0]))
    if kind == "quoted_name":
        return ast.Name(pos, str(c[0])[1:-1].strip())
    if kind == "call":
        func, args = " ".join(str(c[0]).split()), [_convert(a, src) for a in c[1:]]
        return (_duration(args, src, pos) if func == "duration" else None) or ast.Call(pos, func, args)
    if kind == "list":
        return ast.ListLiteral(pos, [_convert(a, src) for a in c])
    if kind in ("if_expr", "if_call"):
        return ast.If(pos, *(_convert(a, src) for a in c))
    if kind in _BINARY:
        return ast.Arithmetic(_pos(c[0]), _BINARY[kind], _convert(c[0], src), _convert(c[1], src))
    if kind in _LOGICAL:
        return ast.Logical(_pos(c[0]), _LOGICAL[kind], _convert(c[0], src), _convert(c[1], src))
    if kind == "neg":
        return ast.Negate(pos, _convert(c[0], src))
    if kind == "not_":
        return ast.Not(pos, _convert(c[0], src))
    if kind == "compare":
        return ast.Compare(pos, str(c[1]), _convert(c[0], src), _convert(c[2], src))
    if kind == "between":
        x, lo, hi = (_convert(a, src) for a in c)
        test = ast.IntervalTest(lo.pos, lo, hi, True, True)
        return ast.InTests(pos, x, ast.UnaryTests(lo.pos, [test]))
    if kind == "in_":
        target = c[1]  # `positive_tests` or `single_test`; both hold the tests as children
        tests = [_as_test(_convert(t, src)) for t in target.children]
        return ast.InTests(pos, _convert(c[0], src), ast.UnaryTests(_pos(target), tests))
    if kind == "op_test":
        return ast.CompareTest(pos, str(c[0]), _convert(c[1], src))
    if kind == "interval":
        open_, low, _, high, close = c
        return ast.IntervalTest(pos, _convert(low, src), _convert(high, src), open_ == "[", close == "]")
    if kind == "value_test":
        expr = _convert(c[0], src)
        return ast.ValueTest(pos, expr, ast.uses_input(expr))
    raise AssertionError(f"unhandled syntax {kind}")
