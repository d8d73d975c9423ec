"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM this child if its parent dies without cleaning up (SIGKILL,
    a timeout): a worker left behind would otherwise take messages from the next server
    that reuses its Redis port."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


die_with_parent = _die_with_parent if sys.platform.startswith("linux") else None


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database a connection uses, for child processes (a worker the
    tests or the bench start must open the same database, e.g. the test database)."""
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    if engine.endswith("postgresql"):
        user = settings_dict.get("USER") or ""
        password = settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    raise RuntimeError(f"no DATABASE_URL form for the database engine {engine}")


def stop_process_group(process, timeout: float = 20.0) -> None:
    """SIGTERM a child started with ``start_new_session=True`` and its whole group (a worker
    and its pool processes); SIGKILL what is left after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
