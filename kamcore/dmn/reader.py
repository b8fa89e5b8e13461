"""A DMN model as KAM rule documents: one `decision_table` rule per decision, a data dictionary of its input data,
and readable YAML files of both (what `kam import-dmn` writes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element

import yaml

from ..expressions import ast
from ..expressions.parser import parse_unary_tests
from ..expressions.types import Type
from . import feel
from .document import FEEL, Document, Where

# DMN type names (DMN 1.5 §7.3.2, §10.3.2.1), the XML Schema names of DMN 1.1, and the Java names some tools write.
BUILTIN_TYPES = {
    "string": Type.STRING, "number": Type.NUMBER, "boolean": Type.BOOLEAN, "date": Type.DATE, "time": Type.TIME,
    "date and time": Type.DATE_TIME, "datetime": Type.DATE_TIME, "days and time duration": Type.DAYS_DURATION,
    "daytimeduration": Type.DAYS_DURATION, "duration": Type.DAYS_DURATION,
    "years and months duration": Type.YEARS_DURATION, "yearmonthduration": Type.YEARS_DURATION,
    "integer": Type.NUMBER, "int": Type.NUMBER, "long": Type.NUMBER, "double": Type.NUMBER, "float": Type.NUMBER,
    "decimal": Type.NUMBER, "any": None,
}
REFUSED_TYPES = {"context", "list", "function", "range"}
# Decision logic other than a decision table (DMN 1.5 §6.3.7, chapters 7 and 8): refused by name.
OTHER_LOGIC = {
    "literalExpression": "a literal expression", "context": "a boxed context", "invocation": "an invocation",
    "relation": "a relation", "list": "a boxed list", "functionDefinition": "a function definition",
    "conditional": "a boxed conditional", "for": "a boxed `for` iteration", "every": "a boxed `every`",
    "some": "a boxed `some`", "filter": "a boxed filter",
}
REFUSED_ELEMENTS = {
    "businessKnowledgeModel": "business knowledge models (BKMs) are not evaluated",
    "decisionService": "decision services are not evaluated",
    "import": "imported models are not read; put every decision in one file",
}
IGNORED_ELEMENTS = {"description", "extensionElements", "knowledgeSource", "textAnnotation", "association", "group",
                    "elementCollection", "performanceIndicator", "organizationUnit"}
ROW_ID = re.compile(r"^[\w.-]+$")
LIST_POLICIES = ("COLLECT", "RULE ORDER", "OUTPUT ORDER")


@dataclass
class Decision:
    """Where a DMN decision went: its rule, and the field each of its outputs is written to."""

    name: str
    rule_id: str
    outputs: dict[str, str]  # DMN output name → field (one output: keyed by the decision name)
    single: bool
    list_result: bool  # COLLECT without aggregation, RULE ORDER, OUTPUT ORDER
    where: Where


@dataclass
class Model:
    """A DMN model read as rule documents, with the maps from DMN names to fields and rows to file lines."""

    file: str
    version: str
    name: str
    fields: list[dict[str, Any]]
    rules: list[dict[str, Any]]  # required decisions first
    decisions: dict[str, Decision]  # by DMN name
    names: dict[str, str]  # DMN name or dotted path → field
    places: dict[tuple[str, str | None], Where]  # (rule id, row id or None) → the DMN element

    @property
    def slug(self) -> str:
        return feel.identifier(self.name)

    def files(self) -> dict[str, str]:
        """Readable YAML: `fields_<model>.yaml` for the input data and `<rule id>.yaml` per decision."""
        files = {f"fields_{self.slug}.yaml": self._fields_yaml()}
        for rule in self.rules:
            files[f"{rule['id']}.yaml"] = self._rule_yaml(rule)
        return files

    def _fields_yaml(self) -> str:
        lines = [f"# Input data of {self.file} (DMN {self.version}), imported by `kam import-dmn`.",
                 f"description: {_flow(f'Input data of DMN model {self.name}')}"]
        lines.append("fields:" if self.fields else "fields: []")
        lines += [f"  - {_flow(f)}" for f in self.fields]
        return "\n".join(lines) + "\n"

    def _rule_yaml(self, rule: dict[str, Any]) -> str:
        where = self.places[(rule["id"], None)]
        name = next(d.name for d in self.decisions.values() if d.rule_id == rule["id"])
        lines = [f"# Imported by `kam import-dmn` from {self.file} (DMN {self.version}): decision {name!r} "
                 f"(id {where.id}, line {where.line}).",
                 "# Row ids are the DMN rule ids; cells are FEEL unary tests, with DMN names as field names.",
                 "rules:"]
        first = True
        for key, value in rule.items():
            prefix = "  - " if first else "    "
            first = False
            if key in ("inputs", "outputs", "rows"):
                lines.append(f"{prefix}{key}:" if value else f"{prefix}{key}: []")
                lines += [f"      - {_flow(item)}" for item in value]
            else:
                lines.append(f"{prefix}{key}: {_flow(value)}")
        return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    """One value as a single line of YAML (flow style), quoted only where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=1 << 30)
    return text.strip().removesuffix("...").strip()


def read(xml: str | bytes, file: str = "model.dmn") -> Model:
    """Read a DMN 1.1–1.5 model. Raises DMNError for a file that cannot be read and DMNUnsupported (a
    kamcore.errors.UnsupportedFeature) for a feature outside the supported subset, each naming file and line."""
    return _Reader(Document(xml, file)).read()


class _Reader:
    def __init__(self, doc: Document):
        self.doc = doc
        self.items: dict[str, Element] = {}
        self.input_data: dict[str, Element] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self.names: dict[str, str] = {}  # DMN name → field
        self.decisions: dict[str, Decision] = {}
        self.places: dict[tuple[str, str | None], Where] = {}
        self.taken: set[str] = set()

    # --- the model ---

    def read(self) -> Model:
        doc, root = self.doc, self.doc.root
        self._language(root)
        decisions: list[Element] = []
        for el in root:
            local = doc.local(el)
            if local.startswith("{"):
                continue  # another namespace: diagrams (DMNDI), vendor extensions
            if local == "itemDefinition":
                self.items[self._name(el)] = el
            elif local == "inputData":
                self.input_data[self._name(el)] = el
            elif local == "decision":
                decisions.append(el)
            elif local in REFUSED_ELEMENTS:
                raise doc.unsupported(el, f"<{local}>: {REFUSED_ELEMENTS[local]}")
            elif local not in IGNORED_ELEMENTS:
                raise doc.unsupported(el, f"<{local}> is not a DMN element KAM Rules reads")
        for name, el in self.input_data.items():
            type_, _ = self._type(el.find(doc.tag("variable")), el)
            if type_ is not False:
                self._field(name, type_, el.get("label") or name)
        tables = {id(el): self._plan(el) for el in decisions}
        ordered = self._order(decisions)
        rules = [self._rule(el, tables[id(el)]) for el in ordered]
        for f in self.fields.values():
            f.setdefault("type", "string")
        fields = [self.fields[k] for k in sorted(self.fields)]
        name = root.get("name") or root.get("id") or "model"
        return Model(doc.file, doc.version, name, fields, rules, self.decisions, self.names, self.places)

    def _language(self, el: Element) -> None:
        lang = el.get("expressionLanguage")
        if lang is not None and lang.strip().lower() not in {x.lower() for x in FEEL}:
            raise self.doc.unsupported(el, f"expression language {lang!r}: only FEEL is evaluated")

    def _name(self, el: Element) -> str:
        name = (el.get("name") or "").strip()
        if not name:
            raise self.doc.error(el, f"<{self.doc.local(el)}> has no name; DMN requires one (DMN 1.5 §6.3.2)")
        return name

    def _field(self, dmn_name: str, type_: Type | None, label: str) -> str:
        """The field a DMN name is read from, created on first use."""
        if dmn_name in self.names:
            found = self.names[dmn_name]
            if type_ is not None and found in self.fields and "type" not in self.fields[found]:
                self.fields[found]["type"] = str(type_)
            return found
        ident = self._unique(feel.identifier(dmn_name))
        self.names[dmn_name] = ident
        self.fields[ident] = {"name": ident, **({"type": str(type_)} if type_ else {}), "label": label}
        return ident

    def _unique(self, ident: str) -> str:
        out, k = ident, 2
        while out in self.taken:
            out, k = f"{ident}_{k}", k + 1
        self.taken.add(out)
        return out

    # --- types ---

    def _type(self, holder: Element | None, context: Element) -> tuple[Type | None | bool, str | None]:
        """The type a `typeRef` names and any allowed values its item definition adds: (type, unary tests).
        (False, None) for a structure or collection, which only its dotted paths may use."""
        if holder is None:
            return None, None
        ref = holder.get("typeRef")
        if ref is None:
            ref = self.doc.text(holder, "typeRef")  # DMN 1.1 writes it as a child element
        if ref is None or not ref.strip():
            return None, None
        return self._named_type(ref.strip(), context, frozenset())

    def _named_type(self, ref: str, context: Element,
                    seen: frozenset[str]) -> tuple[Type | None | bool, str | None]:
        bare = ref.split(":", 1)[1] if ":" in ref else ref
        key = " ".join(bare.split()).lower()
        if key in BUILTIN_TYPES:
            return BUILTIN_TYPES[key], None
        if key in REFUSED_TYPES:
            raise self.doc.unsupported(context, f"typeRef {ref!r}: {key} values are not evaluated")
        item = self.items.get(bare) or self.items.get(ref)
        if item is None or bare in seen:
            raise self.doc.unsupported(context, f"unknown typeRef {ref!r} (neither a DMN type nor an itemDefinition)")
        if item.get("isCollection") == "true" or self.doc.children(item, "itemComponent"):
            return False, None
        base_ref = self._ref(item)
        base, allowed = self._named_type(base_ref.strip(), item, seen | {bare}) if base_ref else (None, None)
        own = self.doc.text(self.doc.child(item, "allowedValues"))
        return base, (own.strip() if own and own.strip() else allowed)

    def _path_type(self, path: str, context: Element) -> Type | None:
        """The type of `Applicant.Age` from the item definition of `Applicant`, when the model says."""
        head, *rest = path.split(".")
        holder = self.input_data.get(head)
        if holder is None:
            return None
        ref = self._ref(holder.find(self.doc.tag("variable")))
        for part in rest:
            item = self.items.get(ref.split(":", 1)[-1]) if ref else None
            comp = next((c for c in self.doc.children(item, "itemComponent") if c.get("name") == part), None) \
                if item is not None else None
            if comp is None:
                return None
            ref = self._ref(comp)
        if not ref:
            return None
        type_, _ = self._named_type(ref, context, frozenset())
        return type_ if type_ is not False else None

    def _ref(self, holder: Element | None) -> str | None:
        if holder is None:
            return None
        return holder.get("typeRef") or self.doc.text(holder, "typeRef")

    # --- decisions ---

    def _plan(self, el: Element) -> Element:
        """Check a decision's logic and name its rule and output fields, before any table is read, so tables may
        refer to decisions defined further down."""
        doc = self.doc
        name = self._name(el)
        if name in self.decisions:
            raise doc.error(el, f"a second decision named {name!r}")
        for req in doc.children(el, "knowledgeRequirement"):
            raise doc.unsupported(req, f"decision {name!r} invokes business knowledge; BKMs are not evaluated")
        table = doc.child(el, "decisionTable")
        if table is None:
            other = next((c for c in el if doc.local(c) in OTHER_LOGIC), None)
            if other is not None:
                raise doc.unsupported(other, f"decision {name!r} is {OTHER_LOGIC[doc.local(other)]}; only "
                                      "decision tables are evaluated")
            raise doc.unsupported(el, f"decision {name!r} has no decision table (no decision logic to evaluate)")
        self._language(table)
        outputs = doc.children(table, "output")
        if not outputs:
            raise doc.error(table, f"the decision table of {name!r} has no output")
        rule_id = self._unique(feel.identifier(name))
        if len(outputs) == 1:
            fields = {name: rule_id}
            self.names[name] = rule_id
        else:
            fields = {}
            for out in outputs:
                out_name = (out.get("name") or "").strip()
                if not out_name:
                    raise doc.error(out, f"output of {name!r} has no name; with several outputs each needs one "
                                    "(DMN 1.5 §8.3.3)")
                fields[out_name] = self._unique(f"{rule_id}_{feel.identifier(out_name)}")
                self.names[f"{name}.{out_name}"] = fields[out_name]
        policy = (table.get("hitPolicy") or "UNIQUE").strip().upper().replace("_", " ")
        list_result = policy in LIST_POLICIES and not table.get("aggregation")
        self.decisions[name] = Decision(name, rule_id, fields, len(outputs) == 1, list_result, doc.where(el))
        self.places[(rule_id, None)] = doc.where(el)
        return table

    def _order(self, decisions: list[Element]) -> list[Element]:
        """Decisions after the decisions they require (informationRequirement/requiredDecision)."""
        by_id = {el.get("id"): el for el in decisions if el.get("id")}
        done: list[Element] = []
        state: dict[int, int] = {}

        def visit(el: Element) -> None:
            if state.get(id(el)) == 2:
                return
            if state.get(id(el)) == 1:
                raise self.doc.error(el, f"decision {el.get('name')!r} requires itself, directly or through others")
            state[id(el)] = 1
            for req in self.doc.children(el, "informationRequirement"):
                target = self.doc.child(req, "requiredDecision")
                if target is None:
                    continue
                href = (target.get("href") or "").split("#")[-1]
                if href not in by_id:
                    raise self.doc.error(target, f"requiredDecision {target.get('href')!r} names no decision here")
                visit(by_id[href])
            state[id(el)] = 2
            done.append(el)

        for el in decisions:
            visit(el)
        return done

    def _rule(self, el: Element, table: Element) -> dict[str, Any]:
        doc = self.doc
        decision = self.decisions[el.get("name").strip()]
        rule: dict[str, Any] = {"id": decision.rule_id, "kind": "decision_table",
                                "label": el.get("label") or decision.name}
        description = (doc.text(el, "description") or "").strip()
        if description:
            rule["description"] = description
        policy = (table.get("hitPolicy") or "UNIQUE").strip().upper().replace("_", " ")
        rule["hit_policy"] = policy
        aggregation = table.get("aggregation")
        if aggregation:
            if policy != "COLLECT":
                raise doc.error(table, f"aggregation {aggregation} only goes with hitPolicy COLLECT (DMN 1.5 §8.3.1)")
            if not decision.single:
                raise doc.unsupported(table, f"COLLECT {aggregation} over {len(decision.outputs)} outputs: KAM "
                                      "Rules aggregates exactly one output")
            rule["aggregation"] = aggregation.strip().upper()
        inputs = doc.children(table, "input")
        specs, input_names, input_types = [], [], []
        for col in inputs:
            spec, type_ = self._input(col)
            name = spec if isinstance(spec, str) else spec["name"]
            if name in input_names:  # the same expression twice: the second column gets its own key
                spec = {**({"expr": spec} if isinstance(spec, str) else spec), "name": self._column(name, input_names)}
                name = spec["name"]
            specs.append(spec)
            input_names.append(name)
            input_types.append(type_)
        rule["inputs"] = specs
        outputs = doc.children(table, "output")
        rule["outputs"] = [self._output(out, decision, el, table) for out in outputs]
        out_types = [Type(o["type"]) if "type" in o else None for o in rule["outputs"]]
        annotations = doc.children(table, "annotation")
        rows, ids = [], set()
        for k, r in enumerate(doc.children(table, "rule")):
            row = self._row(r, k, inputs, input_names, rule["outputs"], out_types, len(annotations), ids)
            rows.append(row)
            self.places[(decision.rule_id, row["id"])] = doc.where(r)
        rule["rows"] = rows
        self._infer_input_types(rule, input_types)
        if policy in ("PRIORITY", "OUTPUT ORDER") and not any("values" in o for o in rule["outputs"]):
            raise doc.error(table, f"{policy} needs outputValues: they give the priority order (DMN 1.5 §8.2.11)")
        return rule

    @staticmethod
    def _column(name: str, taken: list[str]) -> str:
        k = 2
        while f"{name}_{k}" in taken:
            k += 1
        return f"{name}_{k}"

    def _input(self, col: Element) -> tuple[str | dict[str, Any], Type | None]:
        doc = self.doc
        expr_el = doc.child(col, "inputExpression")
        if expr_el is None:
            raise doc.error(col, "input has no inputExpression")
        self._language(expr_el)
        text = (doc.text(expr_el) or "").strip()
        type_, allowed = self._type(expr_el, expr_el)
        if type_ is False:
            raise doc.unsupported(expr_el, f"input {text!r} is a structure or collection; use its dotted paths")
        if text in self.names:
            ident = self.names[text]
            if ident in self.fields and type_ is not None and "type" not in self.fields[ident]:
                self.fields[ident]["type"] = str(type_)
        elif text in self.decisions:
            raise doc.unsupported(expr_el, f"input {text!r} is a decision with several outputs (a context); "
                                  f"use one of {', '.join(f'{text}.{o}' for o in self.decisions[text].outputs)}")
        elif text in self.input_data:
            raise doc.unsupported(expr_el, f"input data {text!r} is a structure or collection; use its dotted paths")
        elif feel.is_name(text):
            head = text.split(".")[0]
            if head in self.decisions:
                raise doc.error(expr_el, f"decision {head!r} has no output {text[len(head) + 1:]!r}")
            ident = self._field(text, type_ or self._path_type(text, expr_el), text)
        else:
            raise doc.unsupported(expr_el, f"input expression {text!r} is not a name or dotted path; KAM Rules "
                                  "reads inputs by name (compute it in a decision of its own)")
        spec: dict[str, Any] = {"name": ident, "expr": ident}
        if col.get("label"):
            spec["label"] = col.get("label")
        values = doc.text(doc.child(col, "inputValues"))
        if values is not None and values.strip():
            spec["values"] = feel.translate(values, self.names, True, self._refuse(doc.child(col, "inputValues")))
        elif allowed:
            spec["values"] = feel.translate(allowed, self.names, True, self._refuse(expr_el))
        if type_ is None and ident in self.fields and "type" in self.fields[ident]:
            type_ = Type(self.fields[ident]["type"])
        return (ident if set(spec) == {"name", "expr"} else spec), type_

    def _output(self, out: Element, decision: Decision, el: Element, table: Element) -> dict[str, Any]:
        doc = self.doc
        type_, allowed = self._type(out, out)
        if type_ is None and decision.single:
            type_, allowed = self._type(el.find(doc.tag("variable")), el)
            if type_ is None:
                type_, allowed = self._type(table, table)
        if type_ is False:
            raise doc.unsupported(out, "outputs that are structures or collections are not evaluated")
        dmn_name = decision.name if decision.single else out.get("name").strip()
        spec: dict[str, Any] = {"name": decision.outputs[dmn_name]}
        if type_ is not None:
            spec["type"] = str(type_)
        label = out.get("label") or (out.get("name") or "").strip()
        if label:
            spec["label"] = label
        values_el = doc.child(out, "outputValues")
        values = doc.text(values_el)
        if values is None or not values.strip():
            values, values_el = allowed, out
        if values and values.strip():
            spec["values"] = self._listed(values, values_el, type_)
        default_el = doc.child(out, "defaultOutputEntry")
        if default_el is not None:
            self._language(default_el)
            text = doc.text(default_el) or ""
            is_literal, value, value_type = feel.literal(text, self._refuse(default_el))
            if not is_literal:
                raise doc.unsupported(default_el, f"default output {text.strip()!r} is an expression; KAM Rules "
                                      "defaults are plain values")
            if type_ is None and value_type not in (None, Type.NULL):
                spec["type"] = str(value_type)
            spec["default"] = feel.yaml_value(value, value_type)
        return spec

    def _listed(self, text: str, where: Element, type_: Type | None) -> list[Any]:
        """outputValues as a list of plain values (their order is the priority order)."""
        values = []
        for part in _split_values(text):
            is_literal, value, value_type = feel.literal(part, self._refuse(where))
            if not is_literal:
                raise self.doc.unsupported(where, f"outputValues {text.strip()!r}: only a list of values is read")
            values.append(feel.yaml_value(value, value_type or type_))
        return values

    def _row(self, r: Element, k: int, inputs: list[Element], input_names: list[str], outputs: list[dict[str, Any]],
             out_types: list[Type | None], n_annotations: int, ids: set[str]) -> dict[str, Any]:
        doc = self.doc
        entries, results = doc.children(r, "inputEntry"), doc.children(r, "outputEntry")
        if len(entries) != len(inputs) or len(results) != len(outputs):
            raise doc.error(r, f"rule has {len(entries)} input and {len(results)} output entries; the table has "
                            f"{len(inputs)} inputs and {len(outputs)} outputs")
        rid = r.get("id") or ""
        if not ROW_ID.match(rid) or rid in ids:
            rid = f"r{k + 1}"
        ids.add(rid)
        when = {}
        for name, entry in zip(input_names, entries, strict=True):
            self._language(entry)
            text = (doc.text(entry) or "").strip()
            if text in ("", "-"):
                continue
            when[name] = feel.translate(text, self.names, True, self._refuse(entry))
        then = {}
        for spec, out_type, entry in zip(outputs, out_types, results, strict=True):
            self._language(entry)
            text = (doc.text(entry) or "").strip()
            if not text:
                raise doc.error(entry, "empty output entry; write null for no value")
            then[spec["name"]] = self._cell(text, out_type, entry)
        notes = [(doc.text(r, "description") or "").strip()]
        notes += [(doc.text(a) or "").strip() for a in doc.children(r, "annotationEntry")[:max(n_annotations, 0)]]
        row: dict[str, Any] = {"id": rid, "when": when,
                               "then": next(iter(then.values())) if len(then) == 1 else then}
        note = "; ".join(n for n in notes if n)
        if note:
            row["note"] = note
        return row

    def _cell(self, text: str, out_type: Type | None, entry: Element) -> Any:
        """An output entry: a plain value where it is one (text, number, boolean, null), else `= expression`."""
        refuse = self._refuse(entry)
        is_literal, value, value_type = feel.literal(text, refuse)
        plain = is_literal and value_type in (Type.STRING, Type.NUMBER, Type.BOOLEAN, Type.NULL)
        if plain and not (isinstance(value, str) and value.lstrip().startswith("=")):
            return value
        return "= " + feel.translate(text, self.names, False, refuse)

    def _infer_input_types(self, rule: dict[str, Any], input_types: list[Type | None]) -> None:
        """A field with no typeRef anywhere takes the type of the literals its cells compare it with."""
        for k, spec in enumerate(rule["inputs"]):
            name = spec if isinstance(spec, str) else spec["name"]
            ident = spec if isinstance(spec, str) else spec["expr"]
            if input_types[k] is not None or ident not in self.fields or "type" in self.fields[ident]:
                continue
            for row in rule["rows"]:
                if name in row["when"]:
                    found = _literal_type(row["when"][name])
                    if found is not None:
                        self.fields[ident]["type"] = str(found)
                        break

    def _refuse(self, el: Element | None) -> feel.Refuse:
        where = el if el is not None else self.doc.root
        return lambda message: self.doc.unsupported(where, message)


def _split_values(text: str) -> list[str]:
    """`"a", "b, c", date("2024-01-01")` → its top-level comma-separated parts."""
    depth, start, quoted, parts = 0, 0, False, []
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _literal_type(cell: str) -> Type | None:
    for node in parse_unary_tests(cell).walk():
        if isinstance(node, ast.Literal) and node.literal_type != Type.NULL:
            return node.literal_type
        if isinstance(node, ast.Call) and node.func in ("date", "time", "date and time"):
            return {"date": Type.DATE, "time": Type.TIME, "date and time": Type.DATE_TIME}[node.func]
    return None
