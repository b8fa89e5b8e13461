"""Formula rules: named derived fields such as gross_margin = gross_profit_12m / revenue_12m."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..expressions import Expression
from ..expressions import scalar as S
from ..expressions.types import Type
from ..expressions.vectors import cast_null
from .base import Context, Output, Rule, Scope, State, declared_type


class FormulaRule(Rule):
    kind = "formula"

    def __init__(self, spec: dict[str, Any], ctx: Context):
        super().__init__(spec, ctx)
        self.formulas: dict[str, Expression] = {}
        defined: set[str] = set()
        for name, f in spec["formulas"].items():
            names = ctx.names_in_expression(f["expr"], ("formulas", name, "expr"))
            later = names & (set(spec["formulas"]) - defined - {name})
            for other in sorted(later):
                ctx.problem(("formulas", name, "expr"), f"{name} uses {other}, which is defined further down",
                            hint=f"move {other} above {name}")
            if name in names:
                ctx.problem(("formulas", name, "expr"), f"{name} is defined in terms of itself")
            self.reads |= names - defined
            defined.add(name)
            self.outputs[name] = Output(name, declared_type(f.get("type")), f.get("label") or {})

    def compile(self, scope: Scope) -> None:
        local = Scope(dict(scope.types))
        for name, f in self.spec["formulas"].items():
            expr = self.ctx.expression(f["expr"], ("formulas", name, "expr"), local)
            if expr is None:
                continue
            want = self.outputs[name].type
            if want is not None and expr.type not in (want, expr.type.NULL):
                self.ctx.problem(("formulas", name, "expr"), f"{name} is declared as {want} but gives {expr.type}")
                continue
            self.formulas[name] = expr
            self.outputs[name] = Output(name, want or expr.type, self.outputs[name].label)
            local.types[name] = self.outputs[name].type

    def evaluate(self, state: State) -> None:
        if self.evaluated_per_account(state):
            return
        for name, expr in self.formulas.items():
            state.columns[name] = cast_null(expr.evaluate(state.columns, state.n, state.as_of),
                                            self.outputs[name].type).full(state.n)

    def plan_per_account(self) -> Callable[[State], None] | None:
        compiler = S.Compiler()
        steps = []
        for name, expr in self.formulas.items():
            typ = self.outputs[name].type
            if typ not in (Type.NUMBER, Type.BOOLEAN, Type.DATE) or expr.type not in (typ, Type.NULL):
                raise S.Unsupported(f"a {typ} formula")  # text: its categories depend on the vectorized steps
            fn = None if expr.type == Type.NULL else compiler.expression(expr.tree)
            steps.append((name, typ, fn, S.null_of(typ)))
        # Fields read from the state; a formula's own results are handed to the formulas after it.
        fields = {k: t for k, t in compiler.fields.items() if k not in self.formulas}

        def evaluate(state: State) -> None:
            n, columns = state.n, state.per_account()
            cols = columns.lists(fields)
            done = []
            for name, typ, fn, null in steps:
                if fn is None:
                    values = [null] * n
                elif n == 1:
                    values = [fn(cols, 0, None)]
                else:
                    values = [fn(cols, i, None) for i in range(n)]
                columns.put(name, values)
                done.append((name, S.from_list(typ, values)))
            for name, vec in done:  # written once none can fail
                state.columns[name] = vec
        return evaluate

    def explain(self, state: State, i: int) -> dict[str, Any]:
        return {
            "rule": self.id, "kind": self.kind, "label": self.label,
            "inputs": self.inputs_of(state, i),
            "formulas": {name: expr.text for name, expr in self.formulas.items()},
            "outputs": self.outputs_of(state, i),
        }
