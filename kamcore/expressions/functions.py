"""Built-in functions: each with its type rule and its vectorized implementation over whole columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import temporal
from . import vectors as V
from .types import Type, unify
from .vectors import Vec

Signature = Callable[[Sequence[Type]], "Type | str"]  # returns the result type, or a message saying what is wrong


@dataclass(frozen=True)
class Function:
    name: str
    signature: Signature
    impl: Callable[..., Vec]  # impl(args: list[Vec], as_of: np.datetime64) -> Vec
    usage: str
    deterministic: bool = True


def _arity(types: Sequence[Type], lo: int, hi: int | None) -> str | None:
    if len(types) < lo or (hi is not None and len(types) > hi):
        want = f"{lo}" if hi == lo else (f"{lo} or more" if hi is None else f"{lo} to {hi}")
        return f"takes {want} argument(s), got {len(types)}"
    return None


def _all_of(types: Sequence[Type], allowed: set[Type]) -> Type | str:
    real = [t for t in types if t != Type.NULL]
    if not real:
        return next(iter(allowed)) if len(allowed) == 1 else Type.NULL
    first = real[0]
    if first not in allowed or any(t != first for t in real):
        names = " or ".join(sorted(t.label for t in allowed))
        return f"needs arguments that are all {names}, got {', '.join(t.label for t in types)}"
    return first


def _numeric(n_lo: int, n_hi: int | None) -> Signature:
    def sig(types: Sequence[Type]) -> Type | str:
        return _arity(types, n_lo, n_hi) or _all_of(types, {Type.NUMBER})
    return sig


def _fixed(arg_types: Sequence[set[Type]], result: Type) -> Signature:
    def sig(types: Sequence[Type]) -> Type | str:
        if err := _arity(types, len(arg_types), len(arg_types)):
            return err
        for i, (t, allowed) in enumerate(zip(types, arg_types, strict=True)):
            if t != Type.NULL and t not in allowed:
                return f"argument {i + 1} must be {' or '.join(sorted(a.label for a in allowed))}, not {t.label}"
        return result
    return sig


def _errstate() -> np.errstate:
    return np.errstate(all="ignore")


# --- implementations -----------------------------------------------------------------------------------------


def _min_max(pick: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., Vec]:
    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        args = [a for a in args if a.type != Type.NULL] or args
        if args[0].type == Type.NULL:
            return V.null(Type.NUMBER)
        out = args[0].data
        for a in args[1:]:
            out = pick(out, a.data)  # NaN / NaT propagate: null in, null out
        return Vec(args[0].type, np.asarray(out))
    return impl


def _round(args: list[Vec], as_of: np.datetime64) -> Vec:
    x = args[0].data
    digits = args[1].data if len(args) > 1 else np.asarray(0.0)
    scale = np.power(10.0, np.nan_to_num(digits))
    with _errstate():
        # Half away from zero, as Excel's ROUND does: account managers check our figures against Excel.
        out = np.sign(x) * np.floor(np.abs(x) * scale + 0.5) / scale
    return V.number(np.where(np.isnan(digits), np.nan, out))


def _unary_number(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., Vec]:
    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        with _errstate():
            return V.number(fn(args[0].data))
    return impl


def _coalesce(args: list[Vec], as_of: np.datetime64) -> Vec:
    typed = [a for a in args if a.type != Type.NULL]
    if not typed:
        return args[0]
    result_type = typed[0].type
    if result_type == Type.STRING:
        cats = typed[0].cats
        for a in typed[1:]:
            cats = np.union1d(cats, a.cats).astype(object) if len(a.cats) else cats
        out = V.remap_strings(typed[0], cats)
        for a in typed[1:]:
            out = np.where(out < 0, V.remap_strings(a, cats), out)
        return Vec(Type.STRING, np.asarray(out, dtype=np.int32), cats)
    out = typed[0]
    for a in typed[1:]:
        out = Vec(result_type, np.where(out.nulls(), a.data, out.data).astype(out.data.dtype))
    return out


def _coalesce_sig(types: Sequence[Type]) -> Type | str:
    if err := _arity(types, 1, None):
        return err
    result = Type.NULL
    for t in types:
        u = unify(result, t)
        if u is None:
            return f"needs arguments of one type, got {', '.join(t.label for t in types)}"
        result = u
    return result


def _is_null(args: list[Vec], as_of: np.datetime64) -> Vec:
    return V.boolean(args[0].nulls())


def _date(args: list[Vec], as_of: np.datetime64) -> Vec:
    if len(args) == 3:
        y, m, d = (np.asarray(a.data, dtype=np.float64) for a in args)
        y, m, d = np.broadcast_arrays(y, m, d)
        out = np.full(y.shape, np.datetime64("NaT"), dtype="datetime64[D]")
        for idx in np.ndindex(y.shape):
            try:
                out[idx] = np.datetime64(dt.date(int(y[idx]), int(m[idx]), int(d[idx])), "D")
            except (ValueError, OverflowError):
                pass  # null for an impossible date, e.g. 2024-02-30 or a null part
        return V.date(out)
    a = args[0]
    if a.type == Type.DATE:
        return a
    if a.type == Type.DATE_TIME:
        return V.date(a.data.astype("datetime64[D]"))
    parsed = np.array([_iso_date(c) for c in a.cats] + [np.datetime64("NaT")], dtype="datetime64[D]")
    return V.date(parsed[a.data])


def _iso_date(text: str) -> np.datetime64:
    try:
        return np.datetime64(dt.date.fromisoformat(text.strip()), "D")
    except ValueError:
        return np.datetime64("NaT")


def _date_sig(types: Sequence[Type]) -> Type | str:
    if len(types) == 3:
        return _fixed([{Type.NUMBER}] * 3, Type.DATE)(types)
    return _fixed([{Type.STRING, Type.DATE, Type.DATE_TIME}], Type.DATE)(types)


def _parse_each(type_: Type) -> Callable[..., Vec]:
    """time("10:30:00") / date and time("2024-01-31T10:30:00"): text parsed once per category; bad text is null."""
    def parse(text: str) -> object:
        try:
            return temporal.to_numpy(temporal.parse(text, type_), type_)
        except temporal.TemporalError:
            return temporal.null_value(type_)

    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        a = args[0]
        if a.type == type_:
            return a
        if type_ == Type.TIME and a.type == Type.DATE_TIME:
            return Vec(type_, a.data - a.data.astype("datetime64[D]").astype(a.data.dtype))
        if type_ == Type.DATE_TIME and len(args) == 2:  # date and time(date, time)
            return Vec(type_, a.data.astype("datetime64[us]") + args[1].data)
        if a.type == Type.DATE:  # date and time(date): midnight
            return Vec(type_, a.data.astype("datetime64[us]"))
        lookup = np.array([parse(c) for c in a.cats] + [temporal.null_value(type_)], dtype=temporal.dtype(type_))
        return Vec(type_, lookup[a.data])
    return impl


def _time_sig(types: Sequence[Type]) -> Type | str:
    if len(types) == 3:
        return _fixed([{Type.NUMBER}] * 3, Type.TIME)(types)
    return _fixed([{Type.STRING, Type.TIME, Type.DATE_TIME}], Type.TIME)(types)


def _time(args: list[Vec], as_of: np.datetime64) -> Vec:
    if len(args) == 3:
        h, m, s = (np.asarray(a.data, dtype=np.float64) for a in args)
        ok = (h >= 0) & (h < 24) & (m >= 0) & (m < 60) & (s >= 0) & (s < 60)
        with _errstate():
            micros = np.where(ok, ((h * 60 + m) * 60 + s) * 1e6, 0).astype(np.int64)
        return Vec(Type.TIME, np.where(ok, micros.astype("timedelta64[us]"), temporal.NAT_TD))
    return _parse_each(Type.TIME)(args, as_of)


def _date_time_sig(types: Sequence[Type]) -> Type | str:
    if len(types) == 2:
        return _fixed([{Type.DATE}, {Type.TIME}], Type.DATE_TIME)(types)
    return _fixed([{Type.STRING, Type.DATE, Type.DATE_TIME}], Type.DATE_TIME)(types)


def _years_months(args: list[Vec], as_of: np.datetime64) -> Vec:
    a, b = (x.data.astype("datetime64[us]") for x in args)
    return Vec(Type.YEARS_DURATION, temporal.whole_months(a, b))


def _duration_sig(types: Sequence[Type]) -> str:
    # duration("P1D") with its text written out is read as a literal by the parser; only other uses get here,
    # and those are refused: whether the result is a days or a years duration depends on the text.
    return 'needs its text written out, e.g. duration("P1D") or duration("P1Y2M")'


def _duration(args: list[Vec], as_of: np.datetime64) -> Vec:
    raise AssertionError("duration() is refused by its signature; the parser reads duration(\"...\") as a literal")


_ORDERED = {Type.NUMBER, Type.DATE, Type.TIME, Type.DATE_TIME, Type.DAYS_DURATION, Type.YEARS_DURATION}
_POINTS = {Type.DATE, Type.DATE_TIME}


def _today(args: list[Vec], as_of: np.datetime64) -> Vec:
    return V.date(as_of)


def _days_between(args: list[Vec], as_of: np.datetime64) -> Vec:
    a, b = args[0].data, args[1].data
    diff = (b - a).astype("timedelta64[D]")
    out = diff.astype(np.int64).astype(np.float64)
    return V.number(np.where(np.isnat(diff), np.nan, out))


def _months_between(args: list[Vec], as_of: np.datetime64) -> Vec:
    a, b = args[0].data, args[1].data
    ma, mb = a.astype("datetime64[M]"), b.astype("datetime64[M]")
    day_a = (a - ma.astype("datetime64[D]")).astype(np.int64)
    day_b = (b - mb.astype("datetime64[D]")).astype(np.int64)
    months = mb.astype(np.int64) - ma.astype(np.int64)
    # Whole months, like Excel's DATEDIF(a, b, "M"): a month counts once its day-of-month is reached.
    months = months - ((months > 0) & (day_b < day_a)) + ((months < 0) & (day_b > day_a))
    return V.number(np.where(np.isnat(a) | np.isnat(b), np.nan, months.astype(np.float64)))


def _string_test(test: Callable[[str, str], bool]) -> Callable[..., Vec]:
    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        s, sub = args
        if s.type == Type.NULL or sub.type == Type.NULL:
            return V.null(Type.BOOLEAN)
        if sub.is_scalar:
            needle = sub.value(0)
            if needle is None:
                return V.null(Type.BOOLEAN)
            return V.category_test(s, lambda c: test(c, needle))
        hay, needles = np.broadcast_arrays(V.object_values(s), V.object_values(sub))
        pairs = zip(hay.ravel(), needles.ravel(), strict=True)
        out = np.array([V.NULL if h is None or n is None else (V.TRUE if test(h, n) else V.FALSE) for h, n in pairs],
                       dtype=np.int8)
        return Vec(Type.BOOLEAN, out.reshape(hay.shape))
    return impl


def _case(fn: Callable[[str], str]) -> Callable[..., Vec]:
    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        return V.map_categories(args[0], fn) if args[0].type == Type.STRING else args[0]
    return impl


def _date_part(unit: str) -> Callable[..., Vec]:
    def impl(args: list[Vec], as_of: np.datetime64) -> Vec:
        d = args[0].data
        if unit == "Y":
            out = d.astype("datetime64[Y]").astype(np.int64) + 1970
        else:
            out = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
        return V.number(np.where(np.isnat(d), np.nan, out.astype(np.float64)))
    return impl


_NUM, _STR, _DATE = {Type.NUMBER}, {Type.STRING}, {Type.DATE}

FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("min", lambda t: _arity(t, 1, None) or _all_of(t, _ORDERED), _min_max(np.minimum),
                 "min(a, b, ...)"),
        Function("max", lambda t: _arity(t, 1, None) or _all_of(t, _ORDERED), _min_max(np.maximum),
                 "max(a, b, ...)"),
        Function("abs", _numeric(1, 1), _unary_number(np.abs), "abs(x)"),
        Function("round", _numeric(1, 2), _round, "round(x) or round(x, digits)"),
        Function("floor", _numeric(1, 1), _unary_number(np.floor), "floor(x)"),
        Function("ceil", _numeric(1, 1), _unary_number(np.ceil), "ceil(x)"),
        Function("ceiling", _numeric(1, 1), _unary_number(np.ceil), "ceiling(x)"),
        Function("coalesce", _coalesce_sig, _coalesce, "coalesce(a, b, ...)"),
        Function("is_null", lambda t: _arity(t, 1, 1) or Type.BOOLEAN, _is_null, "is_null(x)"),
        Function("date", _date_sig, _date, 'date("2024-01-31") or date(year, month, day)'),
        Function("today", lambda t: _arity(t, 0, 0) or Type.DATE, _today, "today()", deterministic=False),
        Function("time", _time_sig, _time, 'time("10:30:00") or time(hour, minute, second)'),
        Function("date and time", _date_time_sig, _parse_each(Type.DATE_TIME),
                 'date and time("2024-01-31T10:30:00") or date and time(date, time)'),
        Function("duration", _duration_sig, _duration, 'duration("P1D") or duration("P1Y2M")'),
        Function("years and months duration", _fixed([_POINTS, _POINTS], Type.YEARS_DURATION), _years_months,
                 "years and months duration(from, to)"),
        Function("days_between", _fixed([_DATE, _DATE], Type.NUMBER), _days_between, "days_between(from, to)"),
        Function("months_between", _fixed([_DATE, _DATE], Type.NUMBER), _months_between,
                 "months_between(from, to)"),
        Function("year", _fixed([_DATE], Type.NUMBER), _date_part("Y"), "year(d)"),
        Function("month", _fixed([_DATE], Type.NUMBER), _date_part("M"), "month(d)"),
        Function("contains", _fixed([_STR, _STR], Type.BOOLEAN), _string_test(lambda h, n: n in h),
                 "contains(text, part)"),
        Function("starts_with", _fixed([_STR, _STR], Type.BOOLEAN), _string_test(str.startswith),
                 "starts_with(text, prefix)"),
        Function("ends_with", _fixed([_STR, _STR], Type.BOOLEAN), _string_test(str.endswith),
                 "ends_with(text, suffix)"),
        Function("lower", _fixed([_STR], Type.STRING), _case(str.lower), "lower(text)"),
        Function("upper", _fixed([_STR], Type.STRING), _case(str.upper), "upper(text)"),
    ]
}
