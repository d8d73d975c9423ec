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
from rest_framework.test import APIClient

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


@pytest.mark.django_db
def test_the_api_keeps_its_auth_and_error_shape_under_a_permissive_host_drf(settings):
    settings.REST_FRAMEWORK = {
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
        "DEFAULT_AUTHENTICATION_CLASSES": [],
    }
    response = APIClient().get("/api/v1/runs/")
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication credentials were not provided."


def test_nodes_go_to_the_celery_apps_default_queue_unless_told(settings):
    doc = {"name": "q", "dag": {"nodes": [{"id": "a", "handler": "input"}]}}
    settings.CELERY_TASK_DEFAULT_QUEUE = "celery"  # Celery's own default, a host's usual one
    assert parse_spec(doc).nodes["a"].queue == "celery"
    settings.TRELLIS_DEFAULT_QUEUE = "trellis"
    assert parse_spec(doc).nodes["a"].queue == "trellis"
