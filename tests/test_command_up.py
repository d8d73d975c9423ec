"""``manage.py up``: the set-up steps in-process, and the whole stack as a subprocess.

The integration test starts ``manage.py up`` in a fresh data dir (its own SQLite database and
embedded Valkey), waits for the banner, checks the web server answers, runs the example
workflow through the API, then sends SIGTERM and checks that every process it started is gone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from runs.authoring import Workflow as PythonWorkflow
from runs.management.commands.up import (
    browser_host,
    ensure_admin,
    import_examples,
    sync_python_workflows,
)
from runs.models import Workflow
from tests.webserver import free_port

ROOT = Path(__file__).resolve().parent.parent
BANNER_TIMEOUT = 60
EXIT_TIMEOUT = 20


# -- set-up steps ----------------------------------------------------------------------


@pytest.mark.django_db
def test_ensure_admin_creates_superuser_with_env_password_and_token(monkeypatch, django_user_model):
    monkeypatch.setenv("TRELLIS_ADMIN_PASSWORD", "s3cret-admin-pw")

    account = ensure_admin()

    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("s3cret-admin-pw")
    assert account.password == "s3cret-admin-pw"
    assert account.token == Token.objects.get(user=admin).key


@pytest.mark.django_db
def test_ensure_admin_random_password_then_reuses_the_account(monkeypatch, django_user_model):
    monkeypatch.delenv("TRELLIS_ADMIN_PASSWORD", raising=False)

    first = ensure_admin()
    second = ensure_admin()

    assert first.password and len(first.password) >= 12
    assert django_user_model.objects.get(username="admin").check_password(first.password)
    assert second.password is None  # existing account: password unchanged, not printed
    assert second.token == first.token
    assert django_user_model.objects.count() == 1


@pytest.mark.django_db
def test_ensure_admin_uses_an_existing_superuser(user, django_user_model):
    # alice (``user``), a regular account, is older; the superuser is not named "admin".
    boss = django_user_model.objects.create_superuser("boss", password="pw-for-tests")

    account = ensure_admin()

    assert account.username == "boss"
    assert account.token == Token.objects.get(user=boss).key
    assert not django_user_model.objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_import_examples_is_idempotent_and_skips_invalid_files(tmp_path, admin_user):
    for path in (ROOT / "examples").iterdir():
        if path.is_file():  # examples/hostproject/ is a project, not a spec
            (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "broken.json").write_text('{"name": "broken", "dag": {"nodes": [{"id": 1}]}}')

    lines, problems = import_examples(tmp_path, admin_user)
    again, _ = import_examples(tmp_path, admin_user)

    assert "imported hello v1" in lines
    assert "imported Simple LLM Workflow v1" in lines
    assert problems and all(p.startswith(f"{tmp_path / 'broken.json'}: ") for p in problems)
    assert "hello unchanged (v1)" in again
    assert set(Workflow.objects.values_list("name", "owner__username")) == {
        ("hello", "admin"),
        ("Simple LLM Workflow", "admin"),
    }


@pytest.mark.django_db
def test_sync_python_workflows_saves_the_valid_and_skips_the_invalid(admin_user, python_workflows):
    fine = PythonWorkflow("py-up")
    fine.output(value=1)
    PythonWorkflow("py-up-broken").node("a", "no_such_handler")

    lines, problems = sync_python_workflows(admin_user)
    again, _ = sync_python_workflows(admin_user)

    assert lines == ["py-up: created v1"] and again == ["py-up: unchanged v1"]
    assert problems and all(p.startswith("workflow py-up-broken: ") for p in problems)
    assert list(Workflow.objects.values_list("name", flat=True)) == ["py-up"]


def test_browser_host():
    assert browser_host("0.0.0.0") == "127.0.0.1"
    assert browser_host("::") == "[::1]"
    assert browser_host("::1") == "[::1]"
    assert browser_host("localhost") == "localhost"


# -- the whole stack -------------------------------------------------------------------


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Output:
    """Collects a process's output lines in a thread (children write to the same pipe)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float, process: subprocess.Popen) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text, re.MULTILINE)
            if match:
                return match
            if process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen in time; output:\n{self.text[-5000:]}")


def http(url: str, *, token: str | None = None, body: dict | None = None):
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Token {token}")
    data = None
    if body is not None:
        request.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(request, data=data, timeout=10) as response:
        return response.status, response.read()


def start_up(tmp_path, args: list[str], **env: str) -> tuple[subprocess.Popen, Output]:
    """``manage.py up`` with its own data dir and the embedded Valkey and SQLite (the
    suite's REDIS_URL / DATABASE_URL are not passed on), and a reader of its output."""
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    environment.update(
        DJANGO_SETTINGS_MODULE="orchestration.settings",
        TRELLIS_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
        **env,
    )
    up = subprocess.Popen(
        [sys.executable, "manage.py", "up", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return up, Output(up.stdout)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_up_starts_the_stack_and_sigterm_stops_every_process(tmp_path):
    port = free_port()
    up, output = start_up(
        tmp_path,
        ["--port", str(port), "--concurrency", "1"],
        TRELLIS_ADMIN_PASSWORD="up-test-password",
        TRELLIS_EXAMPLES_DIR=str(ROOT / "examples"),
    )
    started: set[int] = set()
    try:
        output.wait_for(r"^Trellis is ready", BANNER_TIMEOUT, up)
        token = output.wait_for(r"API token\s+(\w+)", 1, up).group(1)
        assert "Login      admin / up-test-password" in output.text
        assert f"http://127.0.0.1:{port}/dashboard/" in output.text
        assert "Docs       docs/index.md" in output.text  # where the documentation is
        assert (ROOT / "docs" / "index.md").is_file()
        started = descendants(up.pid)
        names = " ".join(Path(f"/proc/{pid}/cmdline").read_text() for pid in started)
        for expected in ("daphne", "worker", "beat", "valkey-server"):
            assert expected in names

        status, _ = http(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200
        status, _ = http(f"http://127.0.0.1:{port}/api/schema/", token=token)
        assert status == 200
        status, body = http(f"http://127.0.0.1:{port}/")  # -> /dashboard/ -> login page
        assert status == 200 and b"Log in to Trellis" in body
        status, _ = http(f"http://127.0.0.1:{port}/static/frontend/trellis.css")
        assert status == 200

        # The example workflow, started as the banner's curl line does, completes.
        status, body = http(
            f"http://127.0.0.1:{port}/api/v1/runs/",
            token=token,
            body={"workflow": "hello", "inputs": {"name": "Ada"}},
        )
        assert status == 201
        run_id = json.loads(body)["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = json.loads(http(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}/", token=token)[1])
            if run["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.2)
        assert run["status"] == "COMPLETED", (run, output.text[-6000:])

        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=EXIT_TIMEOUT) == 0, output.text[-3000:]
        output.wait_for(r"^stopped$", 5, up)
        leftovers = {pid for pid in started if alive(pid)}
        assert not leftovers, f"processes left running: {leftovers}"
        valkey_port = int((tmp_path / "valkey.port").read_text())
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", valkey_port), timeout=1).close()
    finally:
        print(output.text[-8000:])  # shown by pytest when the test fails
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        for pid in started | descendants(up.pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_up_stops_everything_when_a_child_dies(tmp_path):
    port = free_port()
    up, output = start_up(tmp_path, ["--port", str(port), "--no-worker", "--no-examples"])
    started: set[int] = set()
    try:
        pid = int(output.wait_for(r"started beat \(pid (\d+)\)", BANNER_TIMEOUT, up).group(1))
        output.wait_for(r"^Trellis is ready", BANNER_TIMEOUT, up)
        started = descendants(up.pid)

        os.kill(pid, signal.SIGKILL)

        assert up.wait(timeout=EXIT_TIMEOUT) == 1
        output.wait_for(r"beat \(pid \d+\) exited unexpectedly", 5, up)
        assert not {p for p in started if alive(p)}
    finally:
        print(output.text[-8000:])  # shown by pytest when the test fails
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        for pid in started | descendants(up.pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
