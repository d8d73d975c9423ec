"""Settings for the test suite: its own data dir, a file SQLite test database (so a worker in
another process sees what the tests write), and the test app with its registered functions."""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TRELLIS_DATA_DIR", str(_ROOT / ".trellis-test"))

from orchestration.settings import *  # noqa: E402,F403
from orchestration.settings import DATABASES, INSTALLED_APPS, TRELLIS_DATA_DIR  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The test database is the database: worker subprocesses started by the tests open the
    # same file through DATABASE_URL.
    DATABASES["default"]["NAME"] = str(TRELLIS_DATA_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(TRELLIS_DATA_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
