"""DMN decision tables in and out: a DMN 1.1–1.5 model read as KAM rules and evaluated by the same engine, and a
decision_table rule written back as DMN 1.5.

>>> from kamcore import dmn
>>> book = dmn.load(xml)                                             # a RuleBook
>>> dmn.evaluate(xml, "Approval Status", {"Age": 18, "RiskCategory": "Medium"})
'Approved'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pandas as pd

from ..errors import HitPolicyViolation, InputError, KamError, RuleBookError
from ..kinds.decision_table import DecisionTableRule
from ..rulebook import RuleBook
from . import feel
from .document import DMNError, DMNUnsupported, Where
from .reader import Model, read
from .writer import write

__all__ = ["DMNError", "DMNUnsupported", "Model", "Where", "evaluate", "load", "read", "write"]


def load(xml: str | bytes, file: str = "model.dmn") -> RuleBook:
    """A DMN model as a RuleBook: one decision_table rule per decision, input data as the data dictionary.
    Raises DMNError / DMNUnsupported (an UnsupportedFeature) naming the DMN file and line."""
    return _book(read(xml, file))


def _book(model: Model) -> RuleBook:
    try:
        book = RuleBook.from_files(model.files())
    except RuleBookError as e:
        first = next(p for p in e.problems if p.is_error)
        where = model.places.get((first.rule, first.row)) or model.places.get((first.rule, None))
        more = sum(p.is_error for p in e.problems) - 1
        raise DMNError(first.message + (f" (hint: {first.hint})" if first.hint else "")
                       + (f"; and {more} more problem(s)" if more else ""), where) from e
    for rule in book.rules:
        _feel_only(rule, model)
    return book


def _feel_only(rule: Any, model: Model) -> None:
    """Refuse date-and-number arithmetic: KAM reads `date + 1` as the next day and `date - date` as days, FEEL
    gives null and a duration (DMN 1.5 §10.3.2.3), so the same text would answer differently."""
    if not isinstance(rule, DecisionTableRule):
        return
    trees = [(None, e.tree) for e in rule.inputs if e]
    trees += [(rule.row_ids[r], t.tree) for r, row in enumerate(rule.tests) for t in row if t]
    trees += [(rule.row_ids[r], c.expression.tree) for r, row in enumerate(rule.out_cells) for c in row
              if c.expression]
    for row, tree in trees:
        node = feel.date_number_arithmetic(tree)
        if node is not None:
            where = model.places.get((rule.id, row)) or model.places[(rule.id, None)]
            raise DMNUnsupported(f"date arithmetic with plain numbers ({node.left.type} {node.op} {node.right.type}) "
                                 'differs between FEEL and KAM; use durations, e.g. + duration("P1D")', where)


def evaluate(xml: str | bytes, decision: str, inputs: Mapping[str, Any], as_of: dt.date | None = None,
             file: str = "model.dmn") -> Any:
    """Evaluate one decision of a DMN model for one set of inputs (keyed by DMN names; nested mappings for dotted
    paths such as `Applicant.Age`), DMN-shaped: a value for one output, a dict for several, a list for COLLECT,
    RULE ORDER and OUTPUT ORDER, a number for an aggregation, None when nothing matched and there is no default.
    A UNIQUE overlap or an ANY conflict raises HitPolicyViolation; an unreadable or disallowed input InputError."""
    model, book = _compiled(xml, file)
    if decision not in model.decisions:
        raise DMNError(f"no decision named {decision!r} in {model.file}; its decisions are: "
                       + ", ".join(repr(d) for d in model.decisions))
    target = model.decisions[decision]
    account = {model.names[k]: v for k, v in _flatten(inputs).items() if k in model.names}
    ev = book.evaluate(pd.DataFrame({k: [v] for k, v in account.items()}, index=[0]), as_of=as_of)
    upstream = _upstream(book, target.rule_id)
    for e in ev.errors:
        if e.rule is not None and e.rule not in upstream:
            continue
        name = next(d.name for d in model.decisions.values() if d.rule_id == e.rule) if e.rule else None
        if e.rule is not None and e.field is None:
            rows = [m["row"] for m in book.rule(e.rule).explain(ev.state, 0)["matched"]]
            raise HitPolicyViolation(f"decision {name!r}: {e.message}", rule=name, rows=rows)
        if e.rule is None or e.field in book.rule(e.rule).input_names:
            raise InputError(f"decision {name or decision!r}: {e.field}: {e.message}")
        raise KamError(f"decision {name!r}: {e.field}: {e.message}")
    values = {dmn_name: ev.outputs(0)[f] for dmn_name, f in target.outputs.items()}
    if all(v is None for v in values.values()) and not book.rule(target.rule_id).explain(ev.state, 0)["matched"]:
        return None  # no rule matched and no default (DMN 1.5 §8.3.2)
    if target.single:
        return next(iter(values.values()))
    if target.list_result:
        lists = list(values.values())
        if all(v is None for v in lists):
            return None
        return [dict(zip(values, hit, strict=True)) for hit in zip(*lists, strict=True)]
    return values


@lru_cache(maxsize=16)
def _compiled(xml: str | bytes, file: str) -> tuple[Model, RuleBook]:
    """The model and its rule book, kept for the next call with the same text: reading and compiling a model
    takes far longer than evaluating one set of inputs. Both are only read afterwards."""
    model = read(xml, file)
    return model, _book(model)


def _upstream(book: RuleBook, rule_id: str) -> set[str]:
    """The rule and every rule whose outputs it reads, directly or not."""
    seen, todo = set(), [rule_id]
    while todo:
        rid = todo.pop()
        if rid not in seen:
            seen.add(rid)
            todo += [book.outputs[name].id for name in book.rule(rid).reads if name in book.outputs]
    return seen


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"Applicant": {"Age": 18}}` → `{"Applicant": {...}, "Applicant.Age": 18}`."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        out[path] = value
        if isinstance(value, Mapping):
            out.update(_flatten(value, path + "."))
    return out

