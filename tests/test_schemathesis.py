"""Property-based API fuzzing with schemathesis against the live OpenAPI schema.

A real daphne serves the API (``web_server``); schemathesis reads ``/api/schema/`` from it and
sends generated requests, valid ones and deliberately invalid ones, to every operation, as an
authenticated user. No response may be a 5xx, and every JSON error must have the documented
shape. The number of cases sent is printed (``-s`` or the captured output shows it).
"""

from __future__ import annotations

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.conftest import SUMMARY_LINES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EXAMPLES_PER_OPERATION = 30  # per generation mode
MINIMUM_CASES = 500


def _error_shape(response: requests.Response, label: str) -> None:
    if response.status_code < 400 or "json" not in response.headers.get("Content-Type", ""):
        return
    body = response.json()
    assert isinstance(body, dict), (label, body)
    assert isinstance(body.get("error"), str) and body["error"], (label, response.status_code, body)
    assert isinstance(body.get("errors"), list), (label, body)


def test_generated_requests_never_get_a_server_error(web_server, user, request):
    # Imported here: schemathesis and hypothesis take seconds to import, which every
    # collection (`pytest -m unit` too) would otherwise pay.
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error

    token = Token.objects.create(user=user).key
    headers = {"Authorization": f"Token {token}"}
    schema = schemathesis.openapi.from_url(f"{web_server}/api/schema/")
    session = requests.Session()
    sent: dict[str, int] = {}
    statuses: dict[int, int] = {}

    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case):
                # A stream of a real run would not end; generated ids never name one.
                response = case.call(
                    base_url=web_server, session=session, headers=headers, timeout=30
                )
                sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=[not_a_server_error])
                _error_shape(response, case.operation.label)

            try:
                exercise()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (no parameters, any body).
                assert mode is GenerationMode.NEGATIVE, operation.label

    total = sum(sent.values())
    summary = (
        f"schemathesis: {total} cases over {len(sent)} operations; "
        f"statuses {sorted(statuses.items())}"
    )
    print("\n" + summary)
    request.config.stash.setdefault(SUMMARY_LINES, []).append(summary)  # printed at the end
    assert total >= MINIMUM_CASES, sent
    assert not any(code >= 500 for code in statuses)
