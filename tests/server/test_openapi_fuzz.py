"""Schemathesis over every operation of /openapi.json with an admin token: no 5xx, answers as documented, and
every error a problem+json document."""

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("KAM_FUZZ_EXAMPLES", "25"))  # per operation and mode; raise it to hunt by hand
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schemathesis.serializer("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
def xlsx_body(ctx, value):
    """Whatever bytes the strategy drew: the service must refuse a non-workbook with a problem, not a 5xx."""
    return value if isinstance(value, bytes) else str(value).encode()


def problem_json(ctx, response, case):
    """Every error answer is a problem document."""
    if response.status_code >= 400:
        content_type = (response.headers.get("content-type") or ["(none)"])[0]
        assert content_type.startswith("application/problem+json"), \
            f"{response.status_code} answered as {content_type}"


@pytest.fixture(scope="module")
def admin(module_app):
    return module_app.extensions["kam"].tokens.create("fuzzer", "admin")


@pytest.fixture(scope="module")
def api(module_app, admin):
    return schemathesis.openapi.from_wsgi("/openapi.json", module_app, headers={"Authorization": f"Bearer {admin}"})


def fuzz(operation, store, token):
    """Hypothesis over one operation, schema-valid and schema-breaking requests alike. Half the cases name a rule
    that exists and carry the live head as `If-Match`, so they get past the lookups into the rule file editing and
    validation behind them."""
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    rule_ids = sorted(r.id for r in store.book().rules)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not os.environ.get("KAM_FUZZ_RANDOM"),
              suppress_health_check=list(HealthCheck))
    @given(case=cases, live=st.booleans(), rule_id=st.sampled_from(rule_ids))
    def run(case, live, rule_id):
        if live and "rule_id" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "rule_id": rule_id}
        if live and "if-match" in {k.lower() for k in (case.headers or {})}:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "if-match"}
            case.headers["If-Match"] = store.head()
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS,
                               additional_checks=[problem_json])

    run()


def test_every_operation_answers_without_a_server_error(module_app, api, admin):
    store = module_app.extensions["kam"].store
    failures, tested = [], set()
    for result in api.get_all_operations():
        operation = result.ok()
        tested.add((operation.method.upper(), operation.path))
        try:
            fuzz(operation, store, admin)
        except (Exception, FailureGroup) as e:  # every operation's failures, not only the first one's
            failures.append(f"{operation.method.upper()} {operation.path}: {e}")
    # every JSON API route is documented; web pages (`/`, `/ui`) and the xlwings client protocol are not the API
    routes = {(m, r.rule.replace("<", "{").replace(">", "}")) for r in module_app.url_map.iter_rules()
              if r.rule != "/" and not r.rule.startswith(("/docs", "/static", "/openapi", "/ui/", "/xlwings/"))
              for m in r.methods - {"HEAD", "OPTIONS"}}
    assert routes <= tested, f"not in the OpenAPI document: {sorted(routes - tested)}"
    assert not failures, "\n\n".join(failures)


def strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.dates().map(str) | st.sampled_from(["", " ", "1,000", "12%", "¥3000", "finance", "retail", "A"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5)


def test_any_json_under_real_field_names_answers_every_row(module_app, admin):
    """The OpenAPI document cannot say which keys an account has; here they are the data dictionary's names and
    Chinese / English headers, with any JSON value: every row is answered, as a result or as an error."""
    book = module_app.extensions["kam"].rules.book()
    keys = sorted({k for f in book.dictionary.fields.values() for k in (f.name, *f.label.values(), *f.aliases)
                   if f.name in book.inputs})
    client = module_app.test_client()

    @settings(max_examples=EXAMPLES * 3, deadline=None, database=None,
              derandomize=not os.environ.get("KAM_FUZZ_RANDOM"), suppress_health_check=list(HealthCheck))
    @given(st.lists(st.dictionaries(st.sampled_from(keys), JSON_VALUES, max_size=8), min_size=1, max_size=4))
    def run(rows):
        r = client.post("/v1/evaluate?explain=true", json={"accounts": rows},
                        headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 200, r.get_data(as_text=True)
        body = strict_json(r.get_data(as_text=True))
        answered = {x["row"] for x in body["results"]} | {e["row"] for e in body["errors"]}
        assert answered == set(range(len(rows)))

    run()
