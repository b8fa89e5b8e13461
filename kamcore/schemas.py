"""Marshmallow schemas of the rule-book files: what sales ops may write, checked before anything compiles."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

from .expressions.types import TYPE_NAMES

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HIT_POLICIES = ("UNIQUE", "ANY", "FIRST", "PRIORITY", "RULE ORDER", "OUTPUT ORDER", "COLLECT")
AGGREGATIONS = ("SUM", "MIN", "MAX", "COUNT")
KINDS = ("formula", "decision_table", "scorecard", "ranking")

_identifier = validate.Regexp(IDENTIFIER, error="must start with a letter and use only letters, digits and _")


def _share(value: Any) -> float:
    """20%, "20%", 0.2 → 0.2"""
    if isinstance(value, bool):
        raise ValidationError("must be a share such as 0.2 or 20%")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            pass
    raise ValidationError("must be a share such as 0.2 or 20%")


class Share(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        share = _share(value)
        if not 0 <= share <= 1:
            raise ValidationError("must be between 0 and 100%")
        return share


class Label(fields.Field):
    """`{zh: 客户分级, en: Account tier}`, or one string used for both languages."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if isinstance(value, str):
            return {"zh": value, "en": value}
        if isinstance(value, dict) and value and set(value) <= {"zh", "en"} and all(
            isinstance(v, str) for v in value.values()
        ):
            return {"zh": value.get("zh") or value.get("en"), "en": value.get("en") or value.get("zh")}
        raise ValidationError("must be text, or {zh: ..., en: ...}")


class Text(fields.Field):
    """An expression or unary-test cell: text, or a plain number / true / false written without quotes."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
            return value
        raise ValidationError("must be text, a number, true/false or a list of values")


class TypeName(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in TYPE_NAMES:
            raise ValidationError(f"must be one of {', '.join(sorted(TYPE_NAMES))}")
        return text


class Strict(Schema):
    class Meta:
        unknown = RAISE


class FieldValueSchema(Strict):
    value = fields.Raw(required=True)
    label = Label()
    aliases = fields.List(fields.String(), load_default=list)


class FieldValueSpec(fields.Field):
    """A value of a field's vocabulary: `manufacturing`, or `{value: manufacturing, label: {zh: 制造业, ...},
    aliases: [制造]}`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return FieldValueSchema().load(value)
        if isinstance(value, str | int | float | bool):
            return {"value": value, "aliases": []}
        raise ValidationError("must be a value, or {value: ..., label: {zh: ..., en: ...}, aliases: [...]}")


class FieldSchema(Strict):
    name = fields.String(required=True, validate=_identifier)
    type = TypeName(required=True)
    unit = fields.String()
    label = Label()
    description = fields.String()
    aliases = fields.List(fields.String(), load_default=list)
    values = fields.List(FieldValueSpec())


class FieldsFileSchema(Strict):
    fields_ = fields.List(fields.Nested(FieldSchema), data_key="fields", required=True)


class RuleBase(Strict):
    id = fields.String(required=True, validate=_identifier)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    label = Label(required=True)
    description = fields.String(load_default="")
    area = fields.String()


class FormulaSpec(Strict):
    expr = Text(required=True)
    type = TypeName()
    label = Label()
    unit = fields.String()
    description = fields.String()


class FormulaRule(RuleBase):
    formulas = fields.Dict(keys=fields.String(validate=_identifier), values=fields.Nested(FormulaSpec),
                           required=True, validate=validate.Length(min=1))

    @pre_load
    def _short_form(self, data: Any, **kwargs: Any) -> Any:
        # `gross_margin: gross_profit_12m / revenue_12m` is short for `gross_margin: {expr: ...}`
        if isinstance(data, dict) and isinstance(data.get("formulas"), dict):
            data = dict(data)
            data["formulas"] = {k: v if isinstance(v, dict) else {"expr": v} for k, v in data["formulas"].items()}
        return data


class TableInput(Strict):
    name = fields.String(validate=_identifier)
    expr = Text(required=True)
    label = Label()
    values = Text()  # a list of values, or unary tests such as "[18..120]" (DMN's inputValues)


class TableOutput(Strict):
    name = fields.String(required=True, validate=_identifier)
    type = TypeName()
    label = Label()
    values = fields.List(fields.Raw())
    default = fields.Raw(allow_none=True)


class TableRow(Strict):
    id = fields.String(validate=validate.Regexp(r"^[\w.-]+$", error="use letters, digits, _, - or ."))
    when = fields.Dict(keys=fields.String(), values=Text(allow_none=True), load_default=dict)
    then = fields.Raw(required=True)
    note = fields.String()


class DecisionTableRule(RuleBase):
    hit_policy = fields.String(load_default="UNIQUE", validate=validate.OneOf(HIT_POLICIES))
    aggregation = fields.String(validate=validate.OneOf(AGGREGATIONS))
    inputs = fields.List(fields.Raw(), required=True)
    outputs = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    rows = fields.List(fields.Nested(TableRow), required=True)

    @pre_load
    def _short_forms(self, data: Any, **kwargs: Any) -> Any:
        # `inputs: [revenue_12m]` and `outputs: [tier]` are short for `{expr: revenue_12m}` / `{name: tier}`.
        if isinstance(data, dict):
            data = dict(data)
            if isinstance(data.get("hit_policy"), str):
                data["hit_policy"] = data["hit_policy"].strip().upper().replace("_", " ")
            if isinstance(data.get("aggregation"), str):
                data["aggregation"] = data["aggregation"].strip().upper()
        return data

    @validates_schema
    def _nested(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, Any] = {}
        for key, schema, short in (("inputs", TableInput(), "expr"), ("outputs", TableOutput(), "name")):
            loaded, problems = [], {}
            for i, item in enumerate(data.get(key, [])):
                item = {short: item} if isinstance(item, str) else item
                try:
                    loaded.append(schema.load(item))
                except ValidationError as e:
                    problems[i] = e.messages
            if problems:
                errors[key] = problems
            else:
                data[key] = loaded
        if data.get("aggregation") and data.get("hit_policy") != "COLLECT":
            errors["aggregation"] = ["only goes with hit_policy COLLECT"]
        if errors:
            raise ValidationError(errors)


class Band(Strict):
    when = Text(required=True)
    points = fields.Float(required=True)
    note = fields.String()


class Indicator(Strict):
    name = fields.String(required=True, validate=_identifier)
    expr = Text(required=True)
    weight = Share(required=True)
    label = Label()
    bands = fields.List(fields.Nested(Band), required=True, validate=validate.Length(min=1))
    missing_points = fields.Float(load_default=0.0)


class Cutoff(Strict):
    min = fields.Float()
    grade = fields.Raw(required=True)


class NamedOutput(Strict):
    name = fields.String(required=True, validate=_identifier)
    label = Label()


class GradeSpec(NamedOutput):
    cutoffs = fields.List(fields.Nested(Cutoff), required=True, validate=validate.Length(min=1))


def _named(data: Any, key: str) -> Any:
    if isinstance(data, dict) and isinstance(data.get(key), str):
        data = dict(data)
        data[key] = {"name": data[key]}
    return data


class ScorecardRule(RuleBase):
    indicators = fields.List(fields.Nested(Indicator), required=True, validate=validate.Length(min=1))
    score = fields.Nested(NamedOutput, required=True)
    grade = fields.Nested(GradeSpec)

    @pre_load
    def _short_forms(self, data: Any, **kwargs: Any) -> Any:
        return _named(data, "score")


class RankBand(Strict):
    label = fields.Raw(required=True)
    share = Share(required=True)


class RankingRule(RuleBase):
    method = fields.String(required=True, validate=validate.OneOf(("pareto", "quantile")))
    measure = Text(required=True)
    order = fields.String(load_default="descending", validate=validate.OneOf(("descending", "ascending")))
    within = Text()
    ties = fields.String(load_default="split", validate=validate.OneOf(("split", "together")))
    tie_break = fields.List(Text(), load_default=list)
    bands = fields.List(fields.Nested(RankBand), required=True, validate=validate.Length(min=1))
    output = fields.Nested(NamedOutput, required=True)

    @pre_load
    def _short_forms(self, data: Any, **kwargs: Any) -> Any:
        return _named(data, "output")

    @validates_schema
    def _shares(self, data: dict[str, Any], **kwargs: Any) -> None:
        total = sum(b["share"] for b in data.get("bands", []))
        if abs(total - 1.0) > 1e-9:
            raise ValidationError({"bands": [f"shares add up to {total:.4g}, they must add up to 100%"]})


RULE_SCHEMAS: dict[str, type[Schema]] = {
    "formula": FormulaRule,
    "decision_table": DecisionTableRule,
    "scorecard": ScorecardRule,
    "ranking": RankingRule,
}


def flatten(messages: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """marshmallow's nested error dict → (path, message) pairs."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from flatten(value, path if key == "_schema" else path + (_key(key),))
    elif isinstance(messages, list):
        for m in messages:
            yield from flatten(m, path)
    else:
        yield path, str(messages)


def _key(key: Any) -> Any:
    return "fields" if key == "fields_" else key


def hint_for(path: tuple[Any, ...], message: str, schema: type[Schema] | None) -> str | None:
    """A fix suggestion for a schema message: the closest known key for an unknown one."""
    if message.startswith("Unknown field") and path and schema is not None:
        known = list(schema().fields) + list(schema().declared_fields)
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        if close:
            return f"did you mean {close[0]!r}?"
        return "allowed here: " + ", ".join(sorted(set(known)))
    if message.startswith("Missing data"):
        return f"add {path[-1]!r}" if path else None
    return None


def plain(path: tuple[Any, ...], message: str) -> str:
    """marshmallow's wording, made specific to the field at hand."""
    name = next((str(p) for p in reversed(path) if isinstance(p, str)), "value")
    if message.startswith("Unknown field"):
        return f"unknown key {name!r}"
    if message.startswith("Missing data"):
        return f"{name!r} is required"
    return f"{name}: {message[0].lower() + message[1:] if message else message}"
