"""The distributed deployment: compose.yaml's shape, .env.example, ``manage.py setup`` (the
migrate service) and static files from the web container with DEBUG off."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from asgiref.testing import ApplicationCommunicator
from django.core.management import call_command
from django.test import override_settings

from runs.models import Workflow

ROOT = Path(__file__).resolve().parent.parent
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")
TRELLIS_SERVICES = ("migrate", "web", "worker", "beat")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def env_file_paths(service: dict) -> list[str]:
    entries = service.get("env_file", [])
    entries = [entries] if isinstance(entries, str | dict) else entries
    return [entry["path"] if isinstance(entry, dict) else entry for entry in entries]


def test_compose_has_the_services(compose):
    assert set(compose["services"]) == {"postgres", "redis", "migrate", *LONG_RUNNING}


def test_each_process_runs_its_standard_command(compose):
    services = compose["services"]
    assert services["web"]["command"][0] == "daphne"
    assert services["web"]["command"][-1] == "orchestration.asgi:application"
    worker = services["worker"]["command"]
    assert worker[:3] == ["celery", "-A", "orchestration"] and "worker" in worker
    beat = services["beat"]["command"]
    assert beat[:3] == ["celery", "-A", "orchestration"] and "beat" in beat
    assert services["migrate"]["command"] == ["python", "manage.py", "setup"]
    assert services["migrate"]["restart"] == "no"


def test_the_worker_scales(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "hostname" not in worker  # each replica is celery@<its container id>
    assert worker.get("deploy", {}).get("replicas", 1) >= 1


def test_each_long_running_service_has_a_healthcheck(compose):
    for name in LONG_RUNNING:
        check = compose["services"][name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name


@pytest.mark.django_db(transaction=True)
def test_the_web_healthcheck_probes_readiness_and_passes_on_a_live_server(compose, web_server):
    command = compose["services"]["web"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/ready" in command[3]
    script = command[3].replace("http://127.0.0.1:8000", web_server)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()


def test_migrate_completes_before_the_processes_start(compose):
    services = compose["services"]
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_trellis_services_take_their_environment_from_dot_env(compose):
    for name in (*TRELLIS_SERVICES, "postgres"):
        assert env_file_paths(compose["services"][name]) == [".env"], name
    # Only the web service publishes a port.
    published = [name for name, svc in compose["services"].items() if svc.get("ports")]
    assert published == ["web"]


def test_one_image_built_from_the_dockerfile(compose):
    images = {compose["services"][name]["image"] for name in TRELLIS_SERVICES}
    assert images == {"trellis:local"}
    assert all(compose["services"][name]["build"] == "." for name in TRELLIS_SERVICES)
    assert (ROOT / "Dockerfile").is_file()


def read_env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_example_documents_the_contract_and_loads(tmp_path):
    values = read_env_example()
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"):
        assert name in values, name
    assert values["DEBUG"] == "False"
    assert (
        values["DATABASE_URL"].startswith("postgres://") and "@postgres:" in values["DATABASE_URL"]
    )
    assert values["REDIS_URL"].startswith("redis://redis:")
    # Production settings accept it (nothing is contacted: settings only parse the URLs).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TRELLIS_", "DJANGO_"))},
        **values,
        "DJANGO_SETTINGS_MODULE": "orchestration.settings",
        "TRELLIS_DATA_DIR": str(tmp_path),
    }
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "assert not settings.DEBUG; print(settings.DATABASES['default']['HOST'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "postgres"


@pytest.mark.django_db
def test_setup_migrates_creates_the_admin_and_imports_examples_once(monkeypatch):
    monkeypatch.setenv("TRELLIS_ADMIN_PASSWORD", "a-long-admin-password")
    out = io.StringIO()
    call_command("setup", stdout=out)
    text = out.getvalue()
    assert "database migrated" in text
    assert "admin user 'admin' created, password from TRELLIS_ADMIN_PASSWORD" in text
    assert "a-long-admin-password" not in text
    assert "example: imported hello v1" in text
    assert Workflow.objects.filter(name="hello", latest_version=1).exists()

    again = io.StringIO()
    call_command("setup", stdout=again)
    assert "admin user 'admin' exists" in again.getvalue()
    assert "example: hello unchanged (v1)" in again.getvalue()


async def get(application, path: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "server": ("localhost", 8000),
        "client": ("127.0.0.1", 50000),
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=10)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], body


def test_the_web_process_serves_static_files_with_debug_off():
    """No collectstatic step: with TRELLIS_SERVE_STATIC (the default) daphne's app serves the
    dashboard's, the admin's and Swagger UI's files from the installed apps."""
    from asgiref.sync import async_to_sync

    from orchestration.asgi import application

    with override_settings(DEBUG=False):
        status, body = async_to_sync(get)(application, "/static/frontend/trellis.css")
        assert status == 200 and body
        status, _ = async_to_sync(get)(application, "/static/admin/css/base.css")
        assert status == 200
