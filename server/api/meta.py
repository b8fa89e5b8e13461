"""Liveness, readiness (is a rule book loaded, which revision) and the data dictionary."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from .. import services
from ..auth import requires
from ..schemas import FieldSchema, ReadySchema

blp = Blueprint("meta", __name__, description="Health, readiness and the data dictionary")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200)
    @blp.doc(security=[])
    def get(self):
        """The process answers (no token needed)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @requires("read")
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema)
    def get(self):
        """Whether a rule book is loaded, the revision served and, if the head does not load, why."""
        readiness = services().rules.readiness()
        return readiness.to_dict(), (200 if readiness.ready else 503)


@blp.route("/v1/fields")
class Fields(MethodView):
    @requires("read")
    @blp.response(200, FieldSchema(many=True))
    def get(self):
        """Every field of the data dictionary with zh / en labels and the sheet headers it answers to, plus the
        outputs the rules compute."""
        book = services().rules.book()
        produced = book.outputs
        found = []
        for f in book.dictionary.fields.values():
            found.append({"name": f.name, "type": str(f.type), "unit": f.unit, "label": f.label,
                          "description": f.description, "aliases": list(f.aliases),
                          "source": produced[f.name].id if f.name in produced else "input"})
        listed = {f["name"] for f in found}
        for name, rule in produced.items():
            if name not in listed:
                output = rule.outputs[name]
                found.append({"name": name, "type": str(output.type), "unit": None,
                              "label": output.label, "description": "",
                              "aliases": [], "source": rule.id})
        return found
