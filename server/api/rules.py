"""Rules: list, read, change (PUT / POST / DELETE with `If-Match: <base revision>`), validate, impact."""

from __future__ import annotations

import re
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from kamcore import rulefile, yamlsource
from kamcore.rulebook import RuleBook
from kamcore.store import ValidationFailed

from .. import services
from ..auth import authenticate, requires
from ..encoding import plain
from ..problems import PROBLEM_JSON, ApiProblem, problem_dicts
from ..schemas import (
    ChangeSet,
    ImpactRequest,
    ProblemSchema,
    RuleDelete,
    RuleDetail,
    RuleList,
    RuleQuery,
    RuleWrite,
    ValidateResult,
    WriteResult,
)
from .evaluate import within_row_limit

blp = Blueprint("rules", __name__, url_prefix="/v1/rules", description="Read and change the rule book")

_COMMIT_ID = re.compile(r"^[0-9a-f]{4,40}$")
IF_MATCH = {"in": "header", "name": "If-Match", "required": True, "schema": {"type": "string"},
            "description": "the revision the change was made on (the ETag of GET /v1/rules): 428 without it, "
                           "409 when the rules changed since"}


@blp.route("")
class Rules(MethodView):
    @requires("read")
    @blp.arguments(RuleQuery, location="query")
    @blp.response(200, RuleList, headers={"ETag": {"description": "the revision listed", "schema": {"type": "string"}}})
    def get(self, query: dict[str, Any]):
        """Every rule with its id, kind, labels, area and file, in evaluation order."""
        book = services().rules.book(query.get("rev"))
        return {"revision": book.revision, "rules": [r.describe() for r in book.rules]}, 200, \
            {"ETag": f'"{book.revision}"'}

    @requires("edit")
    @blp.doc(parameters=[IF_MATCH])
    @blp.arguments(RuleWrite)
    @blp.response(201, WriteResult)
    @blp.alt_response(202, schema=WriteResult)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(428, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, body: dict[str, Any]):
        """Add a rule (to `file`, default `<area>.yaml` or `custom.yaml`)."""
        base = if_match()
        doc = _rule_doc(body)
        book = services().store.book(base)
        if doc.get("id") in book:
            raise ApiProblem(409, "The rule exists", f"rule {doc['id']!r} is already in {book.rule(doc['id']).file}; "
                                                     "change it with PUT")
        path = body.get("file") or f"{doc.get('area') or 'custom'}.yaml"
        files = services().store.files(base)
        changes = {path: rulefile.add_rule(files.get(path), doc), **body.get("files", {})}
        return _write(changes, base, body["message"], created=True)


@blp.route("/<rule_id>")
class Rule(MethodView):
    @requires("read")
    @blp.arguments(RuleQuery, location="query")
    @blp.response(200, RuleDetail)
    def get(self, query: dict[str, Any], rule_id: str):
        """One rule: its description, the rule as JSON and its YAML source."""
        book = services().rules.book(query.get("rev"))
        rule = _rule(book, rule_id)
        text = services().store.read(rule.file, book.revision)
        source = rulefile.rule_source(text, rule_id)
        doc = rulefile.rule_doc(text, rule_id)
        return {**rule.describe(), "revision": book.revision, "rule": plain(doc), "source": source}, 200, \
            {"ETag": f'"{book.revision}"'}

    @requires("edit")
    @blp.doc(parameters=[IF_MATCH])
    @blp.arguments(RuleWrite)
    @blp.response(200, WriteResult)
    @blp.alt_response(202, schema=WriteResult)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(428, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def put(self, body: dict[str, Any], rule_id: str):
        """Replace a rule. Needs `If-Match: <base revision>` (428 without, 409 when stale) and a message."""
        base, rule, text = _rule_file(rule_id)
        doc = {"id": rule_id, **_rule_doc(body)}
        if doc["id"] != rule_id:  # a rename would quietly cut the rule off from its history and blame
            raise ApiProblem(422, "The rule is not valid", f"the rule's id {doc['id']!r} is not {rule_id!r}, the "
                             "rule this URL names: add the renamed rule with POST and delete the old one",
                             errors={"rule": {"id": [f"must be {rule_id!r}"]}})
        changes = {rule.file: rulefile.replace_rule(text, rule_id, doc), **body.get("files", {})}
        return _write(changes, base, body["message"])

    @requires("edit")
    @blp.doc(parameters=[IF_MATCH])
    @blp.arguments(RuleDelete)
    @blp.response(200, WriteResult)
    @blp.alt_response(202, schema=WriteResult)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(428, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def delete(self, body: dict[str, Any], rule_id: str):
        """Remove a rule (refused with 422 if other rules or rule tests still need it)."""
        base, rule, text = _rule_file(rule_id)
        return _write({rule.file: rulefile.remove_rule(text, rule_id)}, base, body["message"])


@blp.route("/validate")
class Validate(MethodView):
    @requires("edit")
    @blp.arguments(ChangeSet)
    @blp.response(200, ValidateResult)
    def post(self, body: dict[str, Any]):
        """Check a change without committing it: load the changed book and run its rule tests."""
        base = services().store.resolve(body.get("base", "HEAD"))
        try:
            services().store.validate(_changes(body, base), base)
        except ValidationFailed as e:
            return {"ok": False, "base": base, "problems": problem_dicts(e.problems)}
        return {"ok": True, "base": base, "problems": []}


@blp.route("/impact")
class Impact(MethodView):
    @requires("edit")
    @blp.arguments(ImpactRequest)
    @blp.response(200)
    @blp.alt_response(413, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(422, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, body: dict[str, Any]):
        """What a proposed change would do to a portfolio (tier migration, entitlement / credit-status / segment
        changes, credit-limit, exposure-on-hold and points deltas). Nothing is committed."""
        within_row_limit(len(body["accounts"]))
        store = services().store
        base = store.resolve(body.get("base", "HEAD"))
        report = store.impact(_changes(body, base), body["accounts"], base, body.get("as_of"))
        return plain(report.to_dict())


def if_match() -> str:
    header = request.headers.get("If-Match")
    if not header:
        raise ApiProblem(428, "Precondition required",
                         "send `If-Match: <base revision>` (the ETag of GET /v1/rules) so a change made meanwhile "
                         "is never overwritten")
    base = header.strip().removeprefix("W/").strip('"')
    if not _COMMIT_ID.match(base):  # `HEAD` or `*` would match whatever the head is now: no protection at all
        raise ApiProblem(428, "Precondition required",
                         f"`If-Match: {base}` would match any head: send the commit id your change is based on "
                         "(the ETag of GET /v1/rules)")
    return services().store.resolve(base)


def _rule_file(rule_id: str) -> tuple[str, Any, str]:
    """For a change to one rule: the base revision from `If-Match`, the rule there, and its file's text."""
    base = if_match()
    rule = _rule(services().store.book(base), rule_id)
    return base, rule, services().store.read(rule.file, base)


def _rule(book: RuleBook, rule_id: str) -> Any:
    if rule_id not in book:
        raise ApiProblem(404, "Not found", f"no rule {rule_id!r} at revision {book.revision}")
    return book.rule(rule_id)


def _rule_doc(body: dict[str, Any]) -> dict[str, Any]:
    if "rule" in body:
        data = body["rule"]
    else:
        try:
            data, _ = yamlsource.load(body["source"], "<source>")
        except yamlsource.YamlError as e:
            raise ValidationFailed([e.problem]) from None
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise ApiProblem(422, "The rule is not valid",
                             "`source` must hold one rule: a mapping with id, kind, label…")
    if not isinstance(data.get("id", ""), str):
        raise ApiProblem(422, "The rule is not valid", f"the rule's id must be text, not {data['id']!r}",
                         errors={"rule": {"id": ["must be text"]}})
    return data


def _changes(body: dict[str, Any], base: str) -> dict[str, str | None]:
    """The files a change set touches: given directly, or one rule (added or replaced in its file)."""
    changes = dict(body.get("changes") or {})
    if "rule" in body or "source" in body:
        doc = _rule_doc(body)
        book = services().store.book(base)
        rule_id = doc.get("id")
        if isinstance(rule_id, str) and rule_id in book:
            path = book.rule(rule_id).file
            changes[path] = rulefile.replace_rule(changes.get(path) or services().store.read(path, base), rule_id, doc)
        else:
            path = f"{doc.get('area') or 'custom'}.yaml"
            changes[path] = rulefile.add_rule(changes.get(path) or services().store.files(base).get(path), doc)
    if not changes:
        raise ApiProblem(422, "The change is empty", "give `changes` (path → text) or a `rule` / `source`")
    return changes


def _write(changes: dict[str, str | None], base: str, message: str, created: bool = False):
    store = services().store
    author = authenticate().name
    if store.require_approval:
        cr = store.propose(changes, base, author, message)
        return {"revision": None, "change_request": cr.to_dict()}, 202
    revision = store.commit(changes, base, author, message)
    return {"revision": revision, "change_request": None}, (201 if created else 200), {"ETag": f'"{revision}"'}
