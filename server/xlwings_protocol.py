"""`POST /xlwings/score-sheet`: the xlwings Server protocol for Excel on the web, Office Scripts, Google Sheets and
VBA `RunRemotePython` — the book payload in, the actions that write the results beside the account table out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request

from excel_addin.protocol import actions, active_rows
from kamcore.errors import InputError
from kamcore.sheetscore import NOTE_RULES, score_rows, sheet_outputs

from . import services
from .api.evaluate import evaluate_accounts
from .auth import requires
from .problems import ApiProblem

blp = Blueprint("xlwings", __name__, url_prefix="/xlwings")


@blp.route("/score-sheet", methods=["POST"])
@requires("read")
def score_sheet():
    """Score the active sheet of the posted book payload. Query: `lang=zh|en` (result headers and labels, default
    zh), `notes=false` for stock xlwings clients (they lack our `addNote` action), `as_of`, `rev`."""
    lang = request.args.get("lang", "zh")
    if lang not in ("zh", "en"):
        raise ApiProblem(422, "The request is not valid", "lang must be zh or en")
    notes = request.args.get("notes", "true").lower() not in ("0", "false", "no")
    rev, as_of = request.args.get("rev"), request.args.get("as_of")
    book = services().rules.book(rev)

    def evaluate(accounts: list[dict[str, Any]]) -> dict[str, Any]:
        return evaluate_accounts(accounts, explain=notes, explain_rules=NOTE_RULES, as_of=as_of, rev=rev, lang=lang)

    try:
        position, name, rows = active_rows(request.get_json(silent=True))
        scored = score_rows(rows, book, evaluate, lang, name)
    except InputError as e:
        raise ApiProblem(422, "The sheet cannot be scored", str(e)) from None
    return jsonify({"actions": actions(scored, position, sheet_outputs(book), notes),
                    "kam": {"sheet": name, "rules_version": scored.revision, "decision_id": scored.decision_id,
                            "scored": scored.scored, "errors": scored.errors, "warnings": scored.warnings[:100]}})


def register(app: Flask) -> None:
    app.register_blueprint(blp)
