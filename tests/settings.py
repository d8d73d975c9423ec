"""Settings for the test suite: its own data dir, a file SQLite test database (so a worker in
another process sees what the tests write), and the test app with its registered functions."""

import os
import shutil
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _own_data_dir() -> str:
    """A data dir per test session (its own Valkey and SQLite file), so that two sessions on
    one machine never share a server or a database. Dirs of finished sessions are removed."""
    parent = _ROOT / ".trellis-test"
    parent.mkdir(exist_ok=True)
    for old in parent.glob("session-*"):
        try:
            os.kill(int(old.name.split("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(old, ignore_errors=True)
        except PermissionError:
            pass
    return str(parent / f"session-{os.getpid()}")


if "TRELLIS_DATA_DIR" not in os.environ:
    # Children (the worker subprocesses) inherit it and find this session's Valkey.
    os.environ["TRELLIS_DATA_DIR"] = _own_data_dir()

# Fast liveness for the crash tests: heartbeats every second, dead after 4 s of silence,
# lost messages re-sent after 3 s. (Inherited by the worker subprocesses too.)
os.environ.setdefault("TRELLIS_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("TRELLIS_WORKER_DEAD_AFTER", "4")
os.environ.setdefault("TRELLIS_RESEND_QUEUED_AFTER", "3")
# The tests' HTTP and LLM servers listen on 127.0.0.1, which the egress policy refuses unless
# allowed; tests of the refusal itself set the allow-list empty.
os.environ.setdefault("TRELLIS_EGRESS_ALLOW", "127.0.0.1,localhost")
# A secret for tests/test_secrets.py (workers inherit it, as they would in production).
os.environ.setdefault("TRELLIS_SECRET_TEST_TOKEN", "tok-7f3a9c1e5b")
# The suite makes thousands of API requests from one address within minutes; the throttle
# itself is tested with its own low rates (tests/test_security_access.py).
os.environ.setdefault("TRELLIS_THROTTLE_ANON", "100000/min")
os.environ.setdefault("TRELLIS_THROTTLE_USER", "100000/min")

from orchestration.settings import *  # noqa: E402,F403
from orchestration.settings import DATABASES, INSTALLED_APPS, TRELLIS_DATA_DIR  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

# A daphne the browser tests start as a host project that mounts Trellis under a prefix
# (tests/testapp/prefixed_urls.py) names its URLconf here.
ROOT_URLCONF = os.environ.get("TRELLIS_TEST_ROOT_URLCONF", ROOT_URLCONF)  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The test database is the database: worker subprocesses started by the tests open the
    # same file through DATABASE_URL.
    DATABASES["default"]["NAME"] = str(TRELLIS_DATA_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(TRELLIS_DATA_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
