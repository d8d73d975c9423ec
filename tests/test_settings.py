"""Settings refuse bad environment values naming the variable; migrations match the models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def _load_settings(tmp_path, **env):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestration.settings",
        "TRELLIS_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted: settings only parse it
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "name,value",
    [
        ("DEBUG", "maybe"),
        ("TRELLIS_MAX_NODES", "lots"),
        ("TRELLIS_MAX_NODES", "0"),
        ("TRELLIS_DEFAULT_BACKOFF", "-1"),
        ("REDIS_URL", "http://nope"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("TRELLIS_RETENTION_DAYS", "a month"),
        ("TRELLIS_RETENTION_DAYS", "-1"),
        ("TRELLIS_LOG_FORMAT", "xml"),
    ],
)
def test_bad_environment_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = _load_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]


def test_production_refuses_the_development_secret_key(tmp_path):
    result = _load_settings(tmp_path, DEBUG="false")
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_good_values_load(tmp_path):
    result = _load_settings(tmp_path, DEBUG="false", SECRET_KEY="x" * 50, TRELLIS_MAX_NODES="50")
    assert result.returncode == 0, result.stderr


def _beat_schedule(tmp_path, **env) -> list[str]:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps(sorted(settings.CELERY_BEAT_SCHEDULE)))"
    )
    environment = {
        **{k: v for k, v in os.environ.items() if k != "TRELLIS_RETENTION_DAYS"},
        "DJANGO_SETTINGS_MODULE": "orchestration.settings",
        "TRELLIS_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_retention_is_off_by_default_and_scheduled_when_days_are_set(tmp_path):
    assert _beat_schedule(tmp_path) == ["trellis-reconcile"]
    assert _beat_schedule(tmp_path, TRELLIS_RETENTION_DAYS="30") == [
        "trellis-purge-runs",
        "trellis-reconcile",
    ]


@pytest.mark.django_db
def test_migrations_match_models():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
