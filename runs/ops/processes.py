"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import redis
from celery import current_app


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM this child if its parent dies without cleaning up (SIGKILL,
    a timeout): a worker left behind would otherwise take messages from the next server
    that reuses its Redis port."""
    parent = os.getppid()
    try:
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


def start_process_group(argv: list[str], *, env: dict[str, str], log_path, cwd) -> subprocess.Popen:
    """Start ``argv`` in its own process group (so :func:`stop_process_group` reaches its
    children), dying with this process, output appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def celery_worker_argv(
    name: str, queues: str, concurrency: int, loglevel: str, *, include: list[str] = ()
) -> list[str]:
    """``celery worker`` as the tests and the bench start it: prefork, named ``name@host``,
    without gossip and mingle (they only slow start-up on one machine). ``include``: task
    modules to register besides the project's (the bench's raw task)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "orchestration",
        "worker",
        "-P",
        "prefork",
        "-c",
        str(concurrency),
        "-Q",
        queues,
        "-l",
        loglevel,
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        *(f"--include={module}" for module in include),
    ]


def wait_for_worker(name: str, process: subprocess.Popen, log_path, timeout: float = 60) -> None:
    """Until the worker named ``name@…`` answers a ping; RuntimeError (with the end of its
    log) when it exits or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = open(log_path, errors="replace").read()[-3000:]
            raise RuntimeError(f"worker {name} exited; see {log_path}:\n{tail}")
        try:
            replies = current_app.control.ping(timeout=0.5)
        except (OSError, redis.exceptions.ConnectionError):
            # a pooled broker connection from before a Redis restart: the next ping gets a
            # fresh one
            time.sleep(0.2)
            continue
        if any(node.startswith(f"{name}@") for reply in replies for node in reply):
            return
    raise RuntimeError(f"worker {name} not ready after {timeout} s; see {log_path}")
