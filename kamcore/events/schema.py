"""Marshmallow schemas of an event-rules file (`kind: event_rules`): the events, their fields and the rules."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from ..schemas import Label, Strict, Text, TypeName, _identifier

KIND = "event_rules"
TEST_KIND = "event_tests"
ALERT_LEVELS = ("follow_up", "credit_alert", "hold")
FIELD_TYPES = ("number", "integer", "decimal", "money", "count", "string", "text", "boolean", "bool", "date")
RESERVED = ("id", "account_id", "type", "at")  # keys of every event; a declared field may not reuse them


class EventField(Strict):
    type = TypeName(required=True, validate=validate.OneOf(FIELD_TYPES, error="must be one of {choices}"))
    required = fields.Boolean(load_default=False)
    min = fields.Float()
    label = Label()
    description = fields.String()


class EventType(Strict):
    label = Label(required=True)
    description = fields.String(load_default="")
    fields_ = fields.Dict(keys=fields.String(validate=_identifier), values=fields.Nested(EventField),
                          data_key="fields", load_default=dict)

    @pre_load
    def _short_form(self, data: Any, **kwargs: Any) -> Any:
        # `amount: number` is short for `amount: {type: number}`
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            data = dict(data)
            data["fields"] = {k: {"type": v} if isinstance(v, str) else v for k, v in data["fields"].items()}
        return data

    @validates_schema
    def _reserved(self, data: dict[str, Any], **kwargs: Any) -> None:
        clash = sorted(set(data.get("fields_", {})) & set(RESERVED))
        if clash:
            raise ValidationError({"fields": {clash[0]: [f"{', '.join(RESERVED)} belong to every event; "
                                                         "name the field differently"]}})


class Alert(Strict):
    level = fields.String(required=True, validate=validate.OneOf(ALERT_LEVELS))
    message = Label(required=True)


class Effects(Strict):
    points = Text()
    exposure = Text()
    alert = fields.Nested(Alert)

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("give at least one of points:, exposure:, alert:")


class EventRule(Strict):
    id = fields.String(required=True, validate=_identifier)
    label = Label(required=True)
    description = fields.String(load_default="")
    # `event:`, not `on:` — YAML reads a bare `on` as true.
    event = fields.String(required=True)
    when = Text()
    count = fields.Integer(validate=validate.Range(min=2, max=20))
    within_days = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    then = fields.Nested(Effects, required=True)

    @validates_schema
    def _streak(self, data: dict[str, Any], **kwargs: Any) -> None:
        for have, need in (("count", "within_days"), ("within_days", "count")):
            if have in data and need not in data:
                raise ValidationError({need: [f"is needed with {have}: (e.g. count: 3, within_days: 30 for the "
                                              "third order within 30 days)"]})


class Timer(Strict):
    id = fields.String(required=True, validate=_identifier)
    label = Label(required=True)
    description = fields.String(load_default="")
    since = fields.String(required=True)
    after_days = fields.Float(required=True, validate=validate.Range(min=0, min_inclusive=False))
    then = fields.Nested(Effects, required=True)


class PointsPolicy(Strict):
    expire_after_months = fields.Integer(validate=validate.Range(min=1, max=1200))


class EventRulesFile(Strict):
    kind = fields.String(required=True, validate=validate.Equal(KIND))
    description = fields.String(load_default="")
    events = fields.Dict(keys=fields.String(validate=_identifier), values=fields.Nested(EventType),
                         required=True, validate=validate.Length(min=1))
    points = fields.Nested(PointsPolicy, load_default=dict)
    rules = fields.List(fields.Nested(EventRule), required=True)
    timers = fields.List(fields.Nested(Timer), load_default=list)


class EventTestsFile(Schema):
    kind = fields.String(required=True, validate=validate.Equal(TEST_KIND))
    description = fields.String()
    tests = fields.List(fields.Raw(), required=True)


class ExpectedLine(Strict):
    event = fields.String()
    rule = fields.String()
    measure = fields.String(validate=validate.OneOf(("points", "exposure", "alert")))
    amount = fields.Float()
    level = fields.String(validate=validate.OneOf(ALERT_LEVELS))


class ExpectedError(Strict):
    event = fields.Integer(required=True)
    field = fields.String()


class EventCase(Strict):
    name = fields.String(required=True)
    account = fields.Dict(keys=fields.String(), required=True)
    events = fields.List(fields.Dict(keys=fields.String()), required=True)
    sweep = fields.Raw()
    expect = fields.Nested(lambda: Expectations(), required=True)


class Expectations(Strict):
    ledger = fields.List(fields.Nested(ExpectedLine))
    state = fields.Dict(keys=fields.String())
    errors = fields.List(fields.Nested(ExpectedError))
