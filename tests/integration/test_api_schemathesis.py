"""Schemathesis against the published OpenAPI of the app on real Redis: no server errors.

The app serves the same document as docs/openapi.json (test_api checks they match), so the
operations fuzzed here are the published ones. Examples are bounded (about 30 per operation).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.integration.api_support import ADMIN_TOKEN, load, simulated
from valeur_monitor.api.app import create_app

pytestmark = pytest.mark.integration
CHECKS = [checks.not_a_server_error, checks.response_schema_conformance,
          checks.status_code_conformance, checks.content_type_conformance]


def test_no_server_errors(redis_db_url: str) -> None:
    loaded = load(redis_db_url, simulated(seed=9, customers=30, days=4))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(loaded.context()))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    calls: dict[str, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def fuzz(case: Any) -> None:
            response = case.call_and_validate(
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, checks=CHECKS)
            key = f"{case.operation.label} {response.status_code}"
            calls[key] = calls.get(key, 0) + 1

        fuzz()
    # every operation was exercised, and the fuzzer reached both answers and refusals
    assert {k.rsplit(" ", 1)[0] for k in calls} == {op.label for op in operations}
    assert any(k.endswith(" 200") for k in calls) and any(k.endswith(" 400") for k in calls)
