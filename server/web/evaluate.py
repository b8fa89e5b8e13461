"""The evaluate page: one account typed into a form, its results and the explanation (logged as a decision)."""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from .. import services
from ..api.evaluate import evaluate_accounts
from . import blp, i18n
from .signin import page, show


@blp.route("/evaluate", methods=["GET", "POST"])
@page("read")
def evaluate():
    book = services().rules.book()
    fields = [book.dictionary.fields[name] for name in book.inputs if name in book.dictionary.fields]
    values = {f.name: request.form.get(f.name, "").strip() for f in fields}
    data: dict[str, Any] = {"revision": book.revision, "result": None, "api": url_for("evaluate.Evaluate"),
                            "fields": [{"name": f.name, "label": f.label, "type": str(f.type), "unit": f.unit,
                                        "values": [v.value for v in f.values]} for f in fields]}
    if request.method == "POST":
        account = {k: _typed(v) for k, v in values.items() if v != ""}
        data["result"] = evaluate_accounts([account], explain=True, lang=i18n.lang())
    output_labels = {name: rule.outputs[name].label for name, rule in book.outputs.items()}
    return show("evaluate.html", data, values=values, output_labels=output_labels)


def _typed(text: str) -> Any:
    """A number when the text is one (the engine converts by the dictionary's type either way)."""
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return text
    return int(number) if number.is_integer() else number
