"""Every request and response shape of the API, as marshmallow schemas (also the source of the OpenAPI document)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema
from webargs.multidictproxy import MultiDictProxy

LANG_CODES = ("zh", "en")
LANGS = validate.OneOf(LANG_CODES)


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ProblemSchema(Schema):
    class Meta:
        unknown = INCLUDE  # RFC 9457 extension members: more may follow

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "field → messages"})
    problems = fields.List(fields.Dict(), metadata={"description": "rule problems with file, line, rule, row"})
    base = fields.String(metadata={"description": "409: the revision the change was made on"})
    head = fields.String(metadata={"description": "409: the head it would have to be made on"})


# --- evaluate ---

class EvaluateQuery(Strict):
    rev = fields.String(metadata={"description": "evaluate at an earlier rules revision"})
    explain = fields.Boolean(metadata={"description": "include each account's trace"})
    lang = fields.String(validate=LANGS, load_default="en", metadata={"description": "language of trace text"})
    as_of = fields.Date(metadata={"description": "what `today()` means (default: today)"})


_EVALUATE_QUERY = EvaluateQuery()
_EXPLAIN = _EVALUATE_QUERY.fields["explain"]


def load_evaluate_query(args: Mapping[str, str]) -> dict[str, Any]:
    """What webargs makes of the query string (`args`, a werkzeug MultiDict) with `EvaluateQuery` — its
    `.load` of the first value of each key, unknown keys left out — with the same result and the same errors,
    but the usual query (none, or `rev`, `explain`, `lang` of a known value) read by hand: with the body's,
    this load was a tenth of a single-account request's time outside the engine. Anything else (an `as_of` date, a value
    that may not be valid) goes through the schema, so an error is always marshmallow's own."""
    query: dict[str, Any] = {"lang": "en"}
    if not args:
        return query
    rev = args.get("rev")
    if rev is not None:
        query["rev"] = rev
    explain = args.get("explain")
    if explain is not None:
        if explain in _EXPLAIN.truthy:
            query["explain"] = True
        elif explain in _EXPLAIN.falsy:
            query["explain"] = False
        else:
            return _load_query(args)
    lang = args.get("lang")
    if lang is not None:
        if lang not in LANG_CODES:
            return _load_query(args)
        query["lang"] = lang
    if "as_of" in args:
        return _load_query(args)
    return query


def _load_query(args: Mapping[str, str]) -> dict[str, Any]:
    return _EVALUATE_QUERY.load(MultiDictProxy(args, _EVALUATE_QUERY), unknown=EXCLUDE)  # as webargs loads it


class EvaluateRequest(Strict):
    accounts = fields.List(fields.Dict(keys=fields.String()), required=True,
                           metadata={"description": "account rows; keys may be field names or sheet headers "
                                                    "(中文 or English) from the data dictionary"})
    explain = fields.Boolean(load_default=False)
    as_of = fields.Date()


_EVALUATE_REQUEST = EvaluateRequest()  # marshmallow schemas keep no state between loads; making one costs more


def load_evaluate_request(payload: Any) -> dict[str, Any]:
    """`EvaluateRequest().load(payload)` with the same result and the same field-level errors, but the accounts
    checked in one pass rather than through a marshmallow field each (the load took 45 ms per 1,000 accounts).
    A JSON object's keys are always text, so an account needs only to be an object. The usual body (accounts,
    perhaps `explain` as a JSON boolean) is read by hand; the rest of it (`as_of`, anything not valid) by the
    schema, so an error is always marshmallow's own."""
    if not isinstance(payload, dict) or not isinstance(payload.get("accounts"), list):
        return EvaluateRequest().load(payload)  # no list of accounts: marshmallow says what is wrong
    accounts = payload["accounts"]
    every_one_a_dict = set(map(type, accounts)) <= {dict}  # by one C loop
    if every_one_a_dict and payload.keys() <= _ACCOUNTS_AND_EXPLAIN and type(payload.get("explain", False)) is bool:
        return {"accounts": accounts, "explain": payload.get("explain", False)}
    errors: dict[str, Any] = {}
    messages = _EVALUATE_REQUEST.fields["accounts"].inner.error_messages  # an account's field, as it says
    bad = {} if every_one_a_dict else {  # a null account is null, as marshmallow says, not a wrong type
        i: [messages["null"] if account is None else messages["invalid"]]
        for i, account in enumerate(accounts) if not isinstance(account, dict)}
    if bad:
        errors["accounts"] = bad
    try:
        body = _EVALUATE_REQUEST.load({**payload, "accounts": []})
    except ValidationError as e:
        errors = {**e.messages, **errors}  # type: ignore[dict-item]
    if errors:
        raise ValidationError(errors)
    body["accounts"] = accounts
    return body


_ACCOUNTS_AND_EXPLAIN = frozenset({"accounts", "explain"})


class RowErrorSchema(Schema):
    row = fields.Integer(metadata={"description": "0-based index of the account in the request"})
    field = fields.String(allow_none=True)
    rule = fields.String(allow_none=True)
    message = fields.String()
    severity = fields.String()


class EvaluateResponse(Schema):
    decision_id = fields.String()
    rules_version = fields.String()
    as_of = fields.Date()
    results = fields.List(fields.Dict(), metadata={"description": "one per good row: `row` plus every output"})
    errors = fields.List(fields.Nested(RowErrorSchema))
    warnings = fields.List(fields.Nested(RowErrorSchema))


# --- rules ---

class RuleSummary(Schema):
    id = fields.String()
    kind = fields.String()
    label = fields.Dict()
    description = fields.String()
    area = fields.String()
    file = fields.String()
    line = fields.Integer(allow_none=True)
    outputs = fields.Dict()
    reads = fields.List(fields.String())


class RuleList(Schema):
    revision = fields.String()
    rules = fields.List(fields.Nested(RuleSummary))


class RuleDetail(RuleSummary):
    revision = fields.String()
    rule = fields.Dict(metadata={"description": "the rule as written, as JSON"})
    source = fields.String(metadata={"description": "the rule's YAML lines in its file"})


class RuleQuery(Strict):
    rev = fields.String()


class RuleWrite(Strict):
    rule = fields.Dict(metadata={"description": "the rule as JSON"})
    source = fields.String(metadata={"description": "or the rule as YAML"})
    message = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    file = fields.String(metadata={"description": "POST only: the file to add the rule to (default: its area)"})
    files = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True),
                        metadata={"description": "other files changed in the same commit, e.g. rule tests"})

    @validates_schema
    def _one_body(self, data: dict, **kwargs: object) -> None:
        if ("rule" in data) == ("source" in data):
            raise ValidationError("give the rule either as `rule` (JSON) or as `source` (YAML)", "rule")


class RuleDelete(Strict):
    message = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class WriteResult(Schema):
    revision = fields.String(allow_none=True, metadata={"description": "the new head, when committed"})
    change_request = fields.Dict(allow_none=True, metadata={"description": "when approval is required"})


class ChangeSet(Strict):
    changes = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True),
                          metadata={"description": "file path → new text (null deletes)"})
    rule = fields.Dict()
    source = fields.String()
    base = fields.String(metadata={"description": "revision the change was made on (default: head)"})


class ValidateResult(Schema):
    ok = fields.Boolean()
    base = fields.String()
    problems = fields.List(fields.Dict())


class ImpactRequest(ChangeSet):
    accounts = fields.List(fields.Dict(keys=fields.String()), required=True)
    as_of = fields.Date()


# --- change requests ---

class ChangeRequestSchema(Schema):
    id = fields.String()
    status = fields.String()
    base = fields.String()
    author = fields.String()
    message = fields.String()
    time = fields.String()
    paths = fields.List(fields.String())
    revision = fields.String(allow_none=True)
    reviewer = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    diff = fields.Dict(metadata={"description": "the semantic diff the request would make"})


class ChangeRequestQuery(Strict):
    status = fields.String(validate=validate.OneOf(["open", "approved", "rejected"]))


class RejectRequest(Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=4000))


class RevertRequest(Strict):
    revision = fields.String(required=True)
    message = fields.String(required=True, validate=validate.Length(min=1, max=4000))


# --- history ---

class RevisionSchema(Schema):
    id = fields.String()
    author = fields.String()
    email = fields.String()
    time = fields.String()
    message = fields.String()
    approver = fields.String(allow_none=True)
    change_request = fields.String(allow_none=True)
    reverts = fields.String(allow_none=True)
    parents = fields.List(fields.String())
    paths = fields.List(fields.String())


class HistoryQuery(Strict):
    rule = fields.String()
    path = fields.String()


class DiffQuery(Strict):
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(load_default="HEAD")


class BlameEntrySchema(RevisionSchema):
    element = fields.String()


# --- decisions ---

class DecisionSchema(Schema):
    decision_id = fields.String()
    time = fields.String()
    actor = fields.String()
    rules_version = fields.String()
    as_of = fields.String(allow_none=True)
    input_digest = fields.String()
    inputs = fields.List(fields.Dict())
    outputs = fields.List(fields.Dict())
    errors = fields.List(fields.Dict())
    hash = fields.String()
    prev_hash = fields.String()


# --- meta ---

class FieldSchema(Schema):
    name = fields.String()
    type = fields.String()
    unit = fields.String(allow_none=True)
    label = fields.Dict()
    description = fields.String()
    aliases = fields.List(fields.String())
    source = fields.String(metadata={"description": "input (read from the account table) or the rule that "
                                                    "computes it"})


class ReadySchema(Schema):
    ready = fields.Boolean()
    serving = fields.String(allow_none=True)
    head = fields.String(allow_none=True)
    problem = fields.String(allow_none=True)
