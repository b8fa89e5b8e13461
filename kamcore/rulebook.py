"""A rule book: a folder of YAML rule files, validated, ordered by dependencies and compiled."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError

from . import schemas, yamlsource
from .dictionary import Dictionary, field_def
from .errors import Problem, RuleBookError
from .events.rules import EventRules
from .events.schema import KIND as EVENT_RULES
from .expressions.types import Type
from .kinds.base import Context, Rule, Scope
from .kinds.decision_table import DecisionTableRule
from .kinds.formula import FormulaRule
from .kinds.ranking import RankingRule
from .kinds.scorecard import ScorecardRule

if TYPE_CHECKING:
    from .evaluation import Evaluation

RULE_CLASSES: dict[str, type[Rule]] = {
    "formula": FormulaRule,
    "decision_table": DecisionTableRule,
    "scorecard": ScorecardRule,
    "ranking": RankingRule,
}
TESTS_DIR = "tests"
MAX_FILES = 500


@dataclass(frozen=True)
class SourceFile:
    path: str  # relative to the rule book's root, with forward slashes
    text: str


class RuleBook:
    """Compiled rules in evaluation order, the data dictionary, and any warnings found while loading."""

    def __init__(self, rules: list[Rule], dictionary: Dictionary, problems: list[Problem],
                 files: list[SourceFile], revision: str | None = None, event_rules: EventRules | None = None):
        self.rules = rules
        self.event_rules = event_rules  # from `kind: event_rules` files, applied by kamcore.events
        self.dictionary = dictionary
        self.problems = problems
        self.files = files
        self.revision = revision
        self._by_id = {r.id: r for r in rules}

    # --- loading ---

    @classmethod
    def load(cls, folder: str | Path, revision: str | None = None) -> RuleBook:
        """Load and validate every rule file under `folder` (rule tests in `tests/` are not rules).
        Raises RuleBookError listing every problem."""
        root = Path(folder)
        if not root.is_dir():
            raise RuleBookError([Problem(f"rule book folder {str(root)!r} does not exist")])
        files = []
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix in (".yaml", ".yml") and path.is_file() and not rel.startswith(TESTS_DIR + "/"):
                files.append(SourceFile(rel, path.read_text(encoding="utf-8")))
        return cls.from_files(files, revision)

    @classmethod
    def from_files(cls, files: Iterable[SourceFile] | Mapping[str, str], revision: str | None = None) -> RuleBook:
        """Load from file texts (path → YAML), e.g. read out of a git revision."""
        if isinstance(files, Mapping):
            files = [SourceFile(p, t) for p, t in sorted(files.items())]
        files = list(files)
        if len(files) > MAX_FILES:
            raise RuleBookError([Problem(f"a rule book holds at most {MAX_FILES} files, this one {len(files)}")])
        return _Loader(files).build(revision)

    # --- using ---

    def rule(self, rule_id: str) -> Rule:
        return self._by_id[rule_id]

    def __contains__(self, rule_id: str) -> bool:
        return rule_id in self._by_id

    @cached_property
    def outputs(self) -> dict[str, Rule]:
        """Every output field and the rule that writes it, in evaluation order."""
        return {name: r for r in self.rules for name in r.outputs}

    @cached_property
    def inputs(self) -> dict[str, Type]:
        """The account fields the rules read (not computed by a rule), with their types."""
        produced = self.outputs
        needed = sorted({name for r in self.rules for name in r.reads} - set(produced))
        return {name: self.dictionary.type_of(name) for name in needed}

    @cached_property
    def digest(self) -> str:
        """A digest of the rule files' paths and texts ("sha256:" and 16 hex digits): names the rules that
        decided a result when the book has no git revision."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            for part in (f.path, f.text):
                data = part.encode("utf-8")
                h.update(len(data).to_bytes(8, "big") + data)  # length-prefixed: no two books hash alike by shifting
        return "sha256:" + h.hexdigest()[:16]

    def evaluate(self, accounts: Any, as_of: dt.date | str | None = None,
                 progress: Callable[[str], None] | None = None, ranks: Mapping[str, Any] | None = None) -> Evaluation:
        """Evaluate every rule over a portfolio (DataFrame or iterable of dicts); `today()` means `as_of`.
        `ranks`: rankings computed over the whole portfolio when `accounts` is one partition of it."""
        from .evaluation import evaluate

        return evaluate(self, accounts, as_of, progress, ranks)

    def __repr__(self) -> str:
        return f"<RuleBook {len(self.rules)} rules, revision={self.revision}>"


class _Loader:
    """The steps of loading: parse YAML, check schemas, read each rule, order by dependencies, compile."""

    def __init__(self, files: list[SourceFile]):
        self.files = files
        self.problems: list[Problem] = []
        self.dictionary = Dictionary()
        self.rules: list[Rule] = []
        self.event_documents: list[tuple[Any, yamlsource.Positions]] = []

    def build(self, revision: str | None) -> RuleBook:
        for f in self.files:
            self._read_file(f)
        self._check_outputs()
        ordered = self._order()
        self._compile(ordered)
        event_rules = self._event_rules()
        if any(p.is_error for p in self.problems):
            raise RuleBookError(self.problems)
        return RuleBook(ordered, self.dictionary, self.problems, self.files, revision, event_rules)

    def _event_rules(self) -> EventRules | None:
        """Event-rule files are checked by their own reader, against the fields and outputs of the batch rules."""
        if not self.event_documents:
            return None
        types = {name: d.type for name, d in self.dictionary.fields.items()}
        types |= {name: out.type or Type.NULL for r in self.rules for name, out in r.outputs.items()}
        return EventRules.read(self.event_documents, types, self.problems)

    def _read_file(self, f: SourceFile) -> None:
        try:
            data, positions = yamlsource.load(f.text, f.path)
        except yamlsource.YamlError as e:
            self.problems.append(e.problem)
            return
        if data is None:
            return
        if isinstance(data, dict) and data.get("kind") == EVENT_RULES:
            self.event_documents.append((data, positions))
            return
        if not isinstance(data, dict) or not ({"rules", "fields"} & set(data)):
            self.problems.append(positions.problem((), "a rule file holds `rules:` (a list of rules) "
                                                   "and/or `fields:` (the data dictionary)"))
            return
        for key in sorted(set(data) - {"rules", "fields", "description"}):
            self.problems.append(positions.problem((key,), f"unknown section {key!r}",
                                                   hint="a rule file holds rules:, fields: and description:"))
        if "fields" in data:
            self._read_fields(data, positions)
        if "rules" in data:
            if not isinstance(data["rules"], list):
                self.problems.append(positions.problem(("rules",), "`rules:` must be a list (each item starts with -)"))
                return
            for i, doc in enumerate(data["rules"]):
                self._read_rule(doc, ("rules", i), positions, Path(f.path).stem)

    def _read_fields(self, data: dict, positions: yamlsource.Positions) -> None:
        try:
            loaded = schemas.FieldsFileSchema().load({"fields": data["fields"]})
        except ValidationError as e:
            self._schema_problems(e, (), positions, schemas.FieldSchema)
            return
        for i, spec in enumerate(loaded["fields_"]):
            if spec["name"] in self.dictionary:
                self.problems.append(positions.problem(("fields", i, "name"),
                                                       f"field {spec['name']!r} is defined twice"))
                continue
            for clash in self.dictionary.add(field_def(spec, positions.file, positions.at(("fields", i))[0])):
                self.problems.append(positions.problem(("fields", i, "name"), f"header {clash}; a sheet column "
                                                       f"with it is read as that field", severity="warning",
                                                       hint=f"remove it from {spec['name']}'s label or aliases"))

    def _read_rule(self, doc: Any, path: tuple, positions: yamlsource.Positions, area: str) -> None:
        if not isinstance(doc, dict):
            self.problems.append(positions.problem(path, "each rule must be a mapping with id, kind, label, ..."))
            return
        kind = doc.get("kind")
        rule_id = doc.get("id") if isinstance(doc.get("id"), str) else None
        schema = schemas.RULE_SCHEMAS.get(kind)
        if schema is None:
            self.problems.append(positions.problem(path + ("kind",), f"unknown rule kind {kind!r}", rule=rule_id,
                                                   hint="kinds: " + ", ".join(schemas.KINDS)))
            return
        try:
            spec = schema().load(doc)
        except ValidationError as e:
            self._schema_problems(e, path, positions, schema, rule_id)
            return
        spec.setdefault("area", area)
        if any(r.id == spec["id"] for r in self.rules):
            self.problems.append(positions.problem(path + ("id",), f"rule id {spec['id']!r} is used twice",
                                                   rule=spec["id"]))
            return
        self.rules.append(RULE_CLASSES[kind](spec, Context(positions, path, spec["id"], self.problems)))

    def _schema_problems(self, e: ValidationError, path: tuple, positions: yamlsource.Positions,
                         schema: type, rule_id: str | None = None) -> None:
        for rel, message in schemas.flatten(e.messages):
            hint = schemas.hint_for(rel, message, schema)
            self.problems.append(positions.problem(path + rel, schemas.plain(rel, message), rule=rule_id, hint=hint,
                                                   at_key=message.startswith("Unknown field")))

    def _check_outputs(self) -> None:
        writer: dict[str, Rule] = {}
        for r in self.rules:
            for name, out in r.outputs.items():
                if name in writer:
                    r.ctx.problem((), f"{name!r} is already computed by rule {writer[name].id!r}",
                                  hint="each field is written by exactly one rule")
                writer[name] = r
                declared = self.dictionary.type_of(name)
                if declared and out.type and out.type not in (declared, Type.LIST) and declared != out.type:
                    r.ctx.problem((), f"{name!r} is {out.type} here but {declared} in the data dictionary")

    def _order(self) -> list[Rule]:
        """Rules sorted so each comes after the rules whose outputs it reads; cycles are reported."""
        writer = {name: r for r in self.rules for name in r.outputs}
        deps = {r.id: sorted({writer[n].id for n in r.reads if n in writer} - {r.id}) for r in self.rules}
        by_id = {r.id: r for r in self.rules}
        ordered: list[Rule] = []
        state: dict[str, int] = {}  # 1 = visiting, 2 = done
        reported: set[frozenset[str]] = set()

        def visit(rid: str, stack: list[str]) -> None:
            if state.get(rid) == 2:
                return
            if state.get(rid) == 1:
                cycle = stack[stack.index(rid):] + [rid]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    for member in sorted(key):
                        by_id[member].ctx.problem((), "dependency cycle: " + " → ".join(cycle),
                                                  hint="a rule cannot use, even indirectly, a field it computes")
                return
            state[rid] = 1
            for d in deps[rid]:
                visit(d, stack + [rid])
            state[rid] = 2
            ordered.append(by_id[rid])

        for r in self.rules:
            visit(r.id, [])
        return ordered

    def _compile(self, ordered: list[Rule]) -> None:
        types = {name: d.type for name, d in self.dictionary.fields.items()}
        for r in ordered:
            if not r.ctx.failed:
                r.compile(Scope(dict(types)))
            for name, out in r.outputs.items():
                # A broken rule's outputs stay visible as untyped, so rules using them do not cascade errors.
                types[name] = out.type if (out.type and not r.ctx.failed) else Type.NULL
