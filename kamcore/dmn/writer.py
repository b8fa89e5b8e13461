"""A decision_table rule as a DMN 1.5 model: the decision, its input data, and a DRD diagram (DMNDI) so modelling
tools such as Camunda Modeler can open and lay it out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - only builds and serialises XML; DMN is read with defusedxml

from ..errors import KamError, UnsupportedFeature
from ..expressions import ast
from ..expressions.types import Type
from ..kinds.decision_table import DecisionTableRule
from ..rulebook import RuleBook
from . import feel

NS = "https://www.omg.org/spec/DMN/20230324/MODEL/"
DMNDI = "https://www.omg.org/spec/DMN/20230324/DMNDI/"
DC = "http://www.omg.org/spec/DMN/20180521/DC/"
DI = "http://www.omg.org/spec/DMN/20180521/DI/"
NCNAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def write(book: RuleBook, rule_id: str) -> str:
    """The decision_table rule `rule_id` as DMN 1.5 XML. Fields it reads become input data (other rules' outputs
    too: the model holds this one decision). Raises UnsupportedFeature for another kind of rule or for cells that
    use what FEEL does not have (percentages, KAM-only functions, date + number)."""
    if rule_id not in book:
        raise KamError(f"no rule {rule_id!r} in the rule book")
    rule = book.rule(rule_id)
    if not isinstance(rule, DecisionTableRule):
        raise UnsupportedFeature(f"rule {rule_id!r} is a {rule.kind}; only decision tables are exported to DMN")
    return _Writer(book, rule).xml()


class _Writer:
    def __init__(self, book: RuleBook, rule: DecisionTableRule):
        self.book = book
        self.rule = rule
        self.ids: set[str] = set()

    def _id(self, wanted: str) -> str:
        out = wanted if NCNAME.match(wanted) else f"_{wanted}"
        k = 2
        while out in self.ids:
            out, k = f"{wanted}_{k}", k + 1
        self.ids.add(out)
        return out

    def _el(self, parent: ET.Element, local: str, text: str | None = None, **attrs: str | None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{NS}}}{local}", {k: v for k, v in attrs.items() if v is not None})
        if text is not None:
            ET.SubElement(el, f"{{{NS}}}text").text = text
        return el

    def xml(self) -> str:
        rule, spec = self.rule, self.rule.spec
        single = len(rule.output_names) == 1
        name = rule.output_names[0] if single else rule.id
        for row_id in rule.row_ids:  # row ids first: they are the ones a reader sees and keeps
            self._id(row_id if NCNAME.match(row_id) else f"row_{row_id}")
        decision_id = self._id(rule.id)
        root = ET.Element(f"{{{NS}}}definitions", {
            "id": self._id(f"definitions_{rule.id}"), "name": rule.label.get("en") or rule.id,
            "namespace": f"urn:kam-rules:{rule.id}", "exporter": "KAM Rules", "exporterVersion": "0.1.0"})
        inputs = sorted(rule.reads)
        input_ids = {}
        for field in inputs:
            data = self._el(root, "inputData", id=self._id(f"input_{field}"), name=field, label=self._label(field))
            input_ids[field] = data.get("id")
            self._el(data, "variable", id=self._id(f"variable_{field}"), name=field, typeRef=self._type(field))
        decision = self._el(root, "decision", id=decision_id, name=name, label=rule.label.get("en"))
        if rule.description:
            ET.SubElement(decision, f"{{{NS}}}description").text = rule.description
        self._el(decision, "variable", id=self._id(f"variable_{rule.id}"), name=name,
                 typeRef=spec["outputs"][0].get("type") if single else None)
        requirements = {}
        for field in inputs:
            req = self._el(decision, "informationRequirement", id=self._id(f"requirement_{field}"))
            self._el(req, "requiredInput", href=f"#{input_ids[field]}")
            requirements[field] = req.get("id")
        self._table(decision)
        self._diagram(root, decision_id, input_ids, requirements)
        ET.register_namespace("", NS)
        for prefix, uri in (("dmndi", DMNDI), ("dc", DC), ("di", DI)):
            ET.register_namespace(prefix, uri)
        ET.indent(root, space="  ")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def _label(self, field: str) -> str | None:
        d = self.book.dictionary.fields.get(field)
        if d is not None:
            return d.label.get("en")
        writer = self.book.outputs.get(field)
        return writer.outputs[field].label.get("en") if writer is not None else None

    def _type(self, field: str) -> str | None:
        t = self.book.dictionary.type_of(field)
        if t is None and field in self.book.outputs:
            t = self.book.outputs[field].outputs[field].type
        return str(t) if t not in (None, Type.NULL, Type.LIST) else None

    def _table(self, decision: ET.Element) -> None:
        rule, spec = self.rule, self.rule.spec
        table = self._el(decision, "decisionTable", id=self._id(f"table_{rule.id}"), hitPolicy=rule.hit_policy,
                         aggregation=rule.aggregation)
        for k, inp in enumerate(spec["inputs"]):
            col = self._el(table, "input", id=self._id(f"input_{rule.id}_{k + 1}"), label=(inp.get("label") or {})
                           .get("en"))
            expr = rule.inputs[k]
            self._el(col, "inputExpression", self._feel(str(inp["expr"]), False, None), id=self._id(
                f"inputExpression_{rule.id}_{k + 1}"), typeRef=str(expr.type) if expr.type != Type.NULL else None)
            if inp.get("values") is not None:
                values = inp["values"]
                text = self._feel(values, True, None) if isinstance(values, str) else \
                    ", ".join(feel.value_text(v) for v in values)
                self._el(col, "inputValues", text, id=self._id(f"inputValues_{rule.id}_{k + 1}"))
        for j, out in enumerate(spec["outputs"]):
            typ = rule.value_types[out["name"]]
            name = None  # one output: the decision's name names its value (DMN 1.5 §8.3.3)
            if len(spec["outputs"]) > 1:
                name = out["name"]
                if name.startswith(rule.id + "_"):
                    name = name[len(rule.id) + 1:]  # an imported DMN output: its own name again
            col = self._el(table, "output", id=self._id(f"output_{rule.id}_{j + 1}"), name=name,
                           label=(out.get("label") or {}).get("en"), typeRef=out.get("type"))
            if out.get("values"):
                self._el(col, "outputValues", ", ".join(feel.value_text(v, typ) for v in out["values"]),
                         id=self._id(f"outputValues_{rule.id}_{j + 1}"))
            if out.get("default") is not None:
                self._el(col, "defaultOutputEntry", feel.value_text(out["default"], typ),
                         id=self._id(f"defaultOutputEntry_{rule.id}_{j + 1}"))
        for r, row_id in enumerate(rule.row_ids):
            row = self._el(table, "rule", id=row_id if NCNAME.match(row_id) else f"row_{row_id}")
            if rule.notes[r]:
                ET.SubElement(row, f"{{{NS}}}description").text = rule.notes[r]
            for k, text in enumerate(rule.cell_texts[r]):
                self._el(row, "inputEntry", self._feel(text, True, row_id),
                         id=self._id(f"inputEntry_{row_id}_{k + 1}"))
            for j, cell in enumerate(rule.out_cells[r]):
                typ = rule.value_types[rule.output_names[j]]
                text = self._feel(cell.text, False, row_id, cell.expression.tree if cell.expression else None) \
                    if cell.is_expression else feel.value_text(cell.raw, typ)
                self._el(row, "outputEntry", text, id=self._id(f"outputEntry_{row_id}_{j + 1}"))

    def _feel(self, text: str, tests: bool, row: str | None, tree: ast.Node | None = None) -> str:
        """A cell written as FEEL, after checking it means the same there."""
        where = f"rule {self.rule.id}" + (f", row {row}" if row else "")

        def refuse(message: str) -> UnsupportedFeature:
            return UnsupportedFeature(f"{where}: {message}")

        out = feel.translate(text, {}, tests, refuse)
        node = feel.date_number_arithmetic(tree) if tree is not None else None
        if node is not None:
            raise refuse(f"{text!r} adds days as plain numbers, which FEEL does not; use a duration")
        return out if text.strip() != "-" else "-"

    def _diagram(self, root: ET.Element, decision_id: str, input_ids: dict[str, str],
                 requirements: dict[str, str]) -> None:
        """A DRD: the decision on top, its input data in a row beneath, an arrow from each."""
        dmndi = ET.SubElement(root, f"{{{DMNDI}}}DMNDI")
        diagram = ET.SubElement(dmndi, f"{{{DMNDI}}}DMNDiagram", id=self._id(f"diagram_{decision_id}"))
        width = max(1, len(input_ids)) * 170
        dx, dy = width / 2 - 90, 80

        def shape(ref: str, x: float, y: float, w: int, h: int) -> None:
            s = ET.SubElement(diagram, f"{{{DMNDI}}}DMNShape", id=self._id(f"shape_{ref}"), dmnElementRef=ref)
            ET.SubElement(s, f"{{{DC}}}Bounds", height=str(h), width=str(w), x=f"{x:g}", y=f"{y:g}")

        shape(decision_id, dx + 20, dy, 180, 80)
        for i, (field, ref) in enumerate(input_ids.items()):
            x = 20 + i * 170
            shape(ref, x, 260, 150, 45)
            edge = ET.SubElement(diagram, f"{{{DMNDI}}}DMNEdge", id=self._id(f"edge_{field}"),
                                 dmnElementRef=requirements[field])
            ET.SubElement(edge, f"{{{DI}}}waypoint", x=f"{x + 75:g}", y="260")
            ET.SubElement(edge, f"{{{DI}}}waypoint", x=f"{dx + 110:g}", y=f"{dy + 80:g}")

