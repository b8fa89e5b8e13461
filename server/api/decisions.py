"""Decisions for auditors: look one up, reproduce it at its revision, verify the log's hash chain."""

from __future__ import annotations

from dataclasses import asdict

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import services
from ..auth import requires
from ..encoding import plain, records
from ..problems import PROBLEM_JSON
from ..schemas import DecisionSchema, ProblemSchema

blp = Blueprint("decisions", __name__, url_prefix="/v1/decisions", description="The tamper-evident decision log")


@blp.route("/verify")
class Verify(MethodView):
    @requires("audit")
    @blp.response(200)
    def get(self):
        """Walk the hash chain; names the first record that was altered or removed."""
        result = services().decisions.verify()
        return plain({"ok": result.ok, "records": result.records, "head_hash": result.head_hash,
                      "pruned_through": result.pruned_through,
                      "first_problem": str(result.first) if result.first else None,
                      "findings": [asdict(f) for f in result.findings]})


@blp.route("/<decision_id>")
class Decision(MethodView):
    @requires("audit")
    @blp.response(200, DecisionSchema)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def get(self, decision_id: str):
        """A recorded decision: who, when, rules revision, input digest, inputs, outputs, errors, chain hashes.
        404: no such decision (never recorded, or pruned); 409: its record no longer matches its hash."""
        d = services().decisions.get(decision_id)  # 404 / 409: server.problems
        return {"decision_id": d.id, "time": d.time.isoformat(), "actor": d.actor, "rules_version": d.revision,
                "as_of": d.as_of.isoformat(), "input_digest": d.input_digest, "inputs": records(d.inputs),
                "outputs": records(d.outputs), "errors": [plain(asdict(e)) for e in d.errors],
                "hash": d.hash, "prev_hash": d.prev_hash}


@blp.route("/<decision_id>/reproduce")
class Reproduce(MethodView):
    @requires("audit")
    @blp.response(200)
    @blp.alt_response(404, schema=ProblemSchema, content_type=PROBLEM_JSON)
    @blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)
    def post(self, decision_id: str):
        """Evaluate the stored inputs again at the stored revision and as-of date; identical or the differences.
        404 and 409 as for the decision itself; a 500 when the service cannot reproduce it (its log or rule
        store fails)."""
        result = services().decisions.reproduce(decision_id, services().store)
        return plain({"decision_id": result.decision_id, "rules_version": result.revision,
                      "as_of": result.as_of, "accounts": result.accounts, "identical": result.identical,
                      "differences": [asdict(d) for d in result.differences]})
