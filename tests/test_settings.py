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
        ("TRELLIS_QUEUE_LIMITS", "gpu"),
        ("TRELLIS_QUEUE_LIMITS", "gpu=0"),
        ("TRELLIS_THROTTLE_USER", "fast"),
        ("TRELLIS_THROTTLE_ANON", "10/fortnight"),
        ("TRELLIS_HSTS_SECONDS", "-5"),
        ("TRELLIS_SECURE_COOKIES", "sometimes"),
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
        "import json, django; django.setup(); from orchestration.celery import app; "
        "app.loader.import_default_modules(); "  # what beat does before it builds its scheduler
        "print(json.dumps(sorted(app.conf.beat_schedule)))"
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


#: The production environment docs/operations/production.md documents ("HTTPS and cookies").
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "9f8e7d6c5b4a" * 5,
    "ALLOWED_HOSTS": "trellis.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://trellis.example.com",
    "TRELLIS_SSL_REDIRECT": "true",
    "TRELLIS_HSTS_SECONDS": "31536000",
    "TRELLIS_HSTS_INCLUDE_SUBDOMAINS": "true",
    "TRELLIS_HSTS_PRELOAD": "true",
    "TRELLIS_BEHIND_PROXY": "true",
}


def _manage(tmp_path, *args, **env):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "orchestration.settings",
        "TRELLIS_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_check_is_clean_with_the_documented_production_settings(tmp_path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_names_what_is_missing_without_them(tmp_path):
    env = dict(PRODUCTION_ENV, TRELLIS_HSTS_SECONDS="0", TRELLIS_SSL_REDIRECT="false")
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_production_cookies_are_secure_and_throttles_configurable(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.X_FRAME_OPTIONS, "
        "s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'])"
    )
    environment = {
        **os.environ,
        **PRODUCTION_ENV,
        "DJANGO_SETTINGS_MODULE": "orchestration.settings",
        "TRELLIS_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "TRELLIS_THROTTLE_ANON": "off",
        "TRELLIS_THROTTLE_USER": "30/hour",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "True",
        "True",
        "DENY",
        "{'anon':",
        "None,",
        "'user':",
        "'30/hour'}",
    ]


def test_importing_settings_starts_no_server(tmp_path):
    """Without REDIS_URL, settings name the data dir's Valkey (a reserved port) but neither
    start it nor connect to it: that is left to the processes that talk to Redis."""
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(
        DJANGO_SETTINGS_MODULE="orchestration.settings", TRELLIS_DATA_DIR=str(tmp_path)
    )
    script = (
        "import socket, django; django.setup();"
        "from django.conf import settings; print(settings.REDIS_URL);"
        "port = int(settings.REDIS_URL.rsplit(':', 1)[1].split('/')[0]);"
        "s = socket.socket(); print(s.connect_ex(('127.0.0.1', port)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    url, refused = done.stdout.split()
    port = int((tmp_path / "valkey.port").read_text())
    assert url == f"redis://127.0.0.1:{port}/0"
    assert refused != "0"  # nothing listens on the reserved port
    assert not (tmp_path / "valkey").exists()  # no server was started
