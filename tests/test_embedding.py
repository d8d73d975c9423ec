"""Trellis inside a host project (DESIGN §14): every knob has a default, `manage.py check`
names what is missing, the API keeps its own auth and error shape whatever the host's DRF
defaults, nodes go to the Celery app's default queue."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from runs.checks import check_setup
from runs.rules.config import KNOBS, apply_defaults
from runs.rules.spec import parse_spec

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.unit
def test_a_host_gets_every_knob_it_leaves_out_and_keeps_the_ones_it_sets(tmp_path):
    host = SimpleNamespace(BASE_DIR=tmp_path, TRELLIS_MAX_NODES=50)
    missing = apply_defaults(host)
    assert "TRELLIS_MAX_NODES" not in missing
    assert host.TRELLIS_MAX_NODES == 50
    assert host.TRELLIS_MAX_JSON_DEPTH == KNOBS["TRELLIS_MAX_JSON_DEPTH"].default
    assert host.TRELLIS_DATA_DIR == tmp_path / ".trellis"
    assert set(missing) == set(KNOBS) - {"TRELLIS_MAX_NODES"}
    assert all(hasattr(host, name) for name in KNOBS)


@pytest.mark.unit
def test_every_knob_the_apps_read_is_in_the_table():
    """A `settings.TRELLIS_X` read anywhere in the apps has a default, so a host never meets
    an AttributeError."""
    read = set()
    for package in ("runs", "frontend", "handlers"):
        for path in (ROOT / package).rglob("*.py"):
            read.update(re.findall(r"settings\.(TRELLIS_[A-Z_]+)", path.read_text()))
            read.update(re.findall(r"setting\(\"(TRELLIS_[A-Z_]+)\"", path.read_text()))
    assert read, "the scan found nothing"
    assert read <= set(KNOBS), f"knobs without a default: {sorted(read - set(KNOBS))}"


def test_check_names_a_missing_app():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings_without_sidecar")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "trellis.E001" in result.stderr
    assert "'drf_spectacular_sidecar' in INSTALLED_APPS" in result.stderr


def test_check_names_a_badly_typed_knob_and_a_missing_broker(settings):
    settings.TRELLIS_MAX_NODES = "many"
    settings.TRELLIS_HEARTBEAT_SECONDS = 0.0
    settings.CELERY_BROKER_URL = ""
    found = {(message.id, message.msg.split(" ")[0]) for message in check_setup()}
    assert ("trellis.E004", "TRELLIS_MAX_NODES") in found
    assert ("trellis.E004", "TRELLIS_HEARTBEAT_SECONDS") in found
    assert ("trellis.E003", "CELERY_BROKER_URL") in found


def test_the_standalone_settings_pass_the_checks():
    assert [message.id for message in check_setup()] == []


def test_the_api_keeps_its_auth_and_error_shape_under_a_permissive_host_drf():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings_permissive_drf")
    code = (
        "from django.test import Client; r = Client().get('/api/v1/runs/'); "
        "print(r.status_code, r.json()['error'])"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    answer = result.stdout.strip().splitlines()[-1]
    assert answer == "401 Authentication credentials were not provided."


def test_nodes_go_to_the_celery_apps_default_queue_unless_told(settings):
    doc = {"name": "q", "dag": {"nodes": [{"id": "a", "handler": "input"}]}}
    settings.CELERY_TASK_DEFAULT_QUEUE = "celery"  # Celery's own default, a host's usual one
    assert parse_spec(doc).nodes["a"].queue == "celery"
    settings.TRELLIS_DEFAULT_QUEUE = "trellis"
    assert parse_spec(doc).nodes["a"].queue == "trellis"


def test_a_database_migrated_under_the_old_app_label_needs_no_migration(tmp_path):
    """Until the app label became `trellis` the migrations were recorded under `runs`; such a
    database (its tables and those records) upgrades with nothing to apply and no data lost."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="orchestration.settings",
        TRELLIS_DATA_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:1/0",  # never contacted by these commands
    )
    env.pop("DATABASE_URL", None)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage("migrate", "-v0")
    manage(
        "shell",
        "-c",
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute(\"DELETE FROM django_migrations WHERE app = 'trellis'\")\n"
        "    for name in ('0001_initial', '0002_run_waiting_since', '0003_queue_slot'):\n"
        '        c.execute("INSERT INTO django_migrations (app, name, applied) VALUES"\n'
        "                  \" ('runs', %s, CURRENT_TIMESTAMP)\", [name])\n"
        "    c.execute(\"INSERT INTO runs_queueslot (name) VALUES ('kept')\")\n",
    )
    assert "No migrations to apply." in manage("migrate")
    assert "[X] 0001_initial" in manage("showmigrations", "trellis")
    kept = manage(
        "shell", "-c", "from runs.models import QueueSlot; print(QueueSlot.objects.get().name)"
    )
    assert kept.strip().splitlines()[-1] == "kept"
