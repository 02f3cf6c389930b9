"""schemathesis over the OpenAPI schema: generated requests to every API operation, with a
tenant-scoped analyst token and without one, never get a 500 (bounded: a few examples each)."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.conftest import World

EXAMPLES = 12
BUDGET_SECONDS = 120  # per backend; operations past the budget are left for the next run


@pytest.mark.timeout(300)
def test_no_server_errors_over_the_schema(world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", world.app)
    token = world.tokens["analyst-acme"]
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 15
    started = time.monotonic()
    failures: list[str] = []
    for op in operations:
        if time.monotonic() - started > BUDGET_SECONDS:
            break

        @given(case=op.as_strategy(), auth=st.booleans())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: schemathesis.Case, auth: bool) -> None:
            headers = {"Authorization": f"Bearer {token}"} if auth else {}
            response = case.call(headers=headers)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
                )

        check()
    assert failures == []
