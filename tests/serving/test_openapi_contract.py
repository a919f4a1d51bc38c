"""The served OpenAPI schema, checked by schemathesis against the running server: for every operation,
generated requests (at least 500 in all) never get a 5xx and every answer conforms to the schema (status, content type, body)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

# JSON Schema cannot say "28 x 28 pixels", so schema-valid bodies of other shapes are rightly refused with a
# documented 400; every other check (no 5xx, documented status, content type, response schema) applies.
EXCLUDED = [positive_data_acceptance]


# Generated requests per operation: the one that decodes bodies gets them (a GET without parameters has one
# distinct request, which hypothesis sends once).
EXAMPLES = {"POST /invocations": 500, "GET /ping": 25, "GET /model": 25}


def test_server_conforms_to_its_openapi_schema(live_server):
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= set(EXAMPLES)
    sent: dict[str, int] = {}
    for operation in operations:
        name = f"{operation.method.upper()} {operation.path}"

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES.get(name, 25), deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(timeout=30)
            sent[name] = sent.get(name, 0) + 1
            assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text}"
            case.validate_response(response, excluded_checks=EXCLUDED)
        check()
    assert sum(sent.values()) >= 500, sent
