"""``{{ secrets.NAME }}``: resolved on the worker, used by the handler, never stored or shown."""

from __future__ import annotations

import json

import pytest

from runs.models import NodeRun, Run, RunEvent
from tests.conftest import wait_for_run
from tests.specs import run_spec

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VALUE = "tok-7f3a9c1e5b"  # TRELLIS_SECRET_TEST_TOKEN in tests/settings.py


def _everything_stored(run: Run) -> str:
    """Every column of the run, its nodes and its events, as text."""
    rows = [Run.objects.filter(pk=run.pk).values().get()]
    rows += list(NodeRun.objects.filter(run=run).values())
    rows += list(RunEvent.objects.filter(run=run).values())
    return json.dumps(rows, default=str)


def _everything_shown(run: Run, client) -> str:
    """Every API and dashboard page about the run, as ``client`` sees it."""
    pages = [
        f"/api/v1/runs/{run.pk}/",
        f"/api/v1/runs/{run.pk}/events/",
        f"/api/v1/runs/{run.pk}/results/",
        f"/workflows/{run.pk}",
        f"/dashboard/runs/{run.pk}/",
    ]
    pages += [
        f"/dashboard/runs/{run.pk}/nodes/{n.node_id}/" for n in NodeRun.objects.filter(run=run)
    ]
    return "\n".join(client.get(page).content.decode() for page in pages)


def test_a_secret_reaches_the_handler_but_no_output_event_page_or_row(
    worker, user, user_client, admin_client, json_server
):
    seen = []

    def echo_headers(request):
        seen.append(request.headers.get("Authorization"))
        return 200, {"auth": request.headers.get("Authorization"), "note": "ok"}

    url = json_server.route("GET", "/whoami", handler=echo_headers)
    run = run_spec(
        user,
        [
            {
                "id": "call",
                "handler": "call_external_service",
                "config": {
                    "url": url,
                    "headers": {"Authorization": "Bearer {{ secrets.TEST_TOKEN }}"},
                },
            },
            {
                "id": "py",
                "handler": "python",
                "config": {
                    "function": "report",
                    "kwargs": {"steps": 1, "pause": 0, "note": "k={{ secrets.TEST_TOKEN }}"},
                },
            },
            {"id": "out", "handler": "output", "dependencies": ["call", "py"]},
        ],
    )
    run = wait_for_run(run.pk)
    assert run.status == "COMPLETED", run.error
    assert seen == [f"Bearer {VALUE}"]  # the server got the real value
    call = NodeRun.objects.get(run=run, node_id="call")
    assert call.output["data"] == {"auth": "Bearer [secret TEST_TOKEN]", "note": "ok"}
    markdown = RunEvent.objects.get(run=run, kind="node.markdown")
    assert markdown.data == {"text": "k=[secret TEST_TOKEN]"}
    assert VALUE not in _everything_stored(run)
    shown = _everything_shown(run, user_client)
    assert "[secret TEST_TOKEN]" in shown  # the dashboard shows the config with a placeholder
    assert VALUE not in shown
    for page in (
        f"/admin/trellis/run/{run.pk}/change/",
        f"/admin/trellis/noderun/{call.pk}/change/",
    ):
        body = admin_client.get(page).content.decode()
        assert VALUE not in body, page


def test_errors_that_quote_a_secret_are_redacted(worker, user):
    run = run_spec(
        user,
        [
            {
                "id": "leak",
                "handler": "python",
                "config": {
                    "function": "fail",
                    "kwargs": {"message": "bad key {{ secrets.TEST_TOKEN }}!"},
                },
            }
        ],
    )
    run = wait_for_run(run.pk)
    node = NodeRun.objects.get(run=run, node_id="leak")
    assert node.state == "FAILED"
    assert node.error["message"] == "bad key [secret TEST_TOKEN]!"
    assert VALUE not in _everything_stored(run)


def test_a_missing_secret_fails_the_node_naming_it(worker, user):
    run = run_spec(
        user,
        [
            {
                "id": "needs",
                "handler": "python",
                "config": {"function": "echo", "kwargs": {"key": "{{ secrets.NOT_CONFIGURED }}"}},
            }
        ],
    )
    run = wait_for_run(run.pk)
    node = NodeRun.objects.get(run=run, node_id="needs")
    assert node.state == "FAILED"
    assert "secret 'NOT_CONFIGURED' is not set on this worker" in node.error["message"]
    assert "TRELLIS_SECRET_NOT_CONFIGURED" in node.error["message"]
