"""``manage.py up``: the whole stack on one machine, stopped cleanly with Ctrl-C.

1. Redis: the embedded Valkey when ``REDIS_URL`` is unset (started here if none answers on
   the data dir's port; this process then owns it and stops it last), or the server
   ``REDIS_URL`` names (checked to answer).
2. ``migrate``; an ``admin`` superuser when there is none (password from
   ``TRELLIS_ADMIN_PASSWORD`` or random, printed) and its API token.
3. Every example workflow in ``settings.TRELLIS_EXAMPLES_DIR``, owned by the admin (identical
   specs create no versions), then every Python workflow (``workflow sync``).
4. The processes, each the standard command with the same environment plus ``REDIS_URL`` and
   ``DJANGO_SETTINGS_MODULE``: web (daphne), worker (celery worker), beat (celery beat).

The children run in their own process groups, so a terminal's Ctrl-C reaches this process
only and shutdown is ordered: SIGTERM to every child, up to 10 s, then SIGKILL of what is left
(the child's whole group, e.g. a worker's pool processes), then the Valkey. A second Ctrl-C
kills at once. If a child exits on its own, everything is stopped and the command exits 1.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.ops import embedded_redis
from runs.ops.processes import die_with_parent
from runs.rules.spec import SpecError
from runs.services.workflows import save_workflow

from .workflow import (
    SPEC_SUFFIXES,
    describe_save,
    describe_sync,
    format_errors,
    python_workflow_docs,
    read_spec,
)

STOP_GRACE_SECONDS = 10.0
ADMIN_USERNAME = "admin"
WORKER_NAME = "trellis"  # the worker's node name is trellis@<host>


# --------------------------------------------------------------------------------------
# Set-up steps (plain functions: tested without starting any process)


@dataclass
class AdminAccount:
    username: str
    password: str | None  # None when the account already existed (password unchanged)
    token: str


def ensure_admin() -> AdminAccount:
    """The first superuser (an ``admin`` one is created when none exists) and its API token."""
    from rest_framework.authtoken.models import Token

    users = get_user_model().objects
    admin = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
    password = None
    if admin is None:
        if users.filter(username=ADMIN_USERNAME).exists():
            raise CommandError(
                f"no active superuser exists and the username {ADMIN_USERNAME!r} is taken by a "
                "regular user: create a superuser with manage.py createsuperuser"
            )
        password = os.environ.get("TRELLIS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        admin = users.create_superuser(ADMIN_USERNAME, email="", password=password)
    token, _ = Token.objects.get_or_create(user=admin)
    return AdminAccount(admin.get_username(), password, token.key)


def import_examples(directory: Path, user) -> tuple[list[str], list[str]]:
    """Import every spec in ``directory``; returns (report lines, problem lines).

    An invalid example is reported and skipped: it must not keep the stack from starting.
    """
    lines: list[str] = []
    problems: list[str] = []
    if not directory.is_dir():
        return lines, [f"examples directory {directory} does not exist"]
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in SPEC_SUFFIXES):
        try:
            version, created = save_workflow(read_spec(path), user)
        except SpecError as exc:
            problems.extend(format_errors(exc.errors, str(path)))
        except PermissionError as exc:
            problems.append(f"{path}: {exc}")
        else:
            lines.append(describe_save(version, created))
    return lines, problems


def sync_python_workflows(user) -> tuple[list[str], list[str]]:
    """Save every Python workflow (``workflow sync``); returns (report lines, problem lines).

    Unlike ``workflow sync``, an invalid one is reported and skipped, as an invalid example
    is: it must not keep the stack from starting.
    """
    docs, invalid = python_workflow_docs()
    lines: list[str] = []
    problems = [line for found in invalid.values() for line in found]
    for doc in docs:
        try:
            lines.append(describe_sync(*save_workflow(doc, user)))
        except PermissionError as exc:
            problems.append(f"workflow {doc['name']}: {exc}")
    return lines, problems


def redis_answers(url: str, timeout: float = 3.0) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def worker_answers(name: str) -> bool:
    """Whether the Celery worker ``name`` answers a control ping (it is consuming)."""
    from celery import current_app
    from kombu.exceptions import KombuError

    try:
        return bool(current_app.control.ping(destination=[name], timeout=0.5))
    except (OSError, KombuError):
        return False


def browser_host(host: str) -> str:
    """The address a browser on this machine uses for a bind address."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------------------------------
# Child processes


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=env,
            cwd=cwd,
            process_group=0,  # our own group: Ctrl-C in the terminal reaches `up` only
            preexec_fn=die_with_parent,
        )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.exit_code() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """SIGKILL the child's process group (it and anything it forked)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = (
        "Start Trellis on this machine: Redis (embedded Valkey unless REDIS_URL is set), "
        "migrations, an admin user, the example workflows, and the web, worker and beat "
        "processes. Ctrl-C stops everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="web bind address (127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="web port (8000)")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes (2)")
        parser.add_argument(
            "--queues",
            default="",
            help="comma-separated queues the worker consumes (default: the default queue)",
        )
        parser.add_argument("--no-web", action="store_true", help="do not start the web server")
        parser.add_argument("--no-worker", action="store_true", help="do not start a worker")
        parser.add_argument("--no-beat", action="store_true", help="do not start celery beat")
        parser.add_argument(
            "--no-examples", action="store_true", help="do not import the example workflows"
        )
        parser.add_argument(
            "--ready-timeout",
            type=float,
            default=60.0,
            help="seconds to wait for the web port to accept connections and the worker to "
            "answer a ping (60)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stop_signal: int | None = None
        self.force = False
        self.children: list[Child] = []
        data_dir = Path(settings.TRELLIS_DATA_DIR)
        embedded_redis.ensure_for_settings(settings)
        redis_url = settings.REDIS_URL
        if not redis_answers(redis_url):
            raise CommandError(f"Redis at {redis_url} does not answer (check REDIS_URL)")

        if not options["no_web"] and port_open(
            browser_host(options["host"]).strip("[]"), options["port"]
        ):
            raise CommandError(f"port {options['port']} is already in use: pass --port")

        call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))
        self.say("database migrated")
        account = ensure_admin()
        owner = get_user_model().objects.get(username=account.username)
        if not options["no_examples"]:
            lines, problems = import_examples(Path(settings.TRELLIS_EXAMPLES_DIR), owner)
            for line in lines:
                self.say(f"example: {line}")
            for line in problems:
                self.say(f"example skipped: {line}", error=True)
        lines, problems = sync_python_workflows(owner)
        for line in lines:
            self.say(f"python workflow: {line}")
        for line in problems:
            self.say(f"python workflow skipped: {line}", error=True)

        self.children = self.plan_children(options, data_dir)
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "TRELLIS_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
        }
        previous = {
            sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        failure: str | None = None
        try:
            for child in self.children:
                child.start(env, Path(settings.BASE_DIR))
                self.say(f"started {child.name} (pid {child.pid}): {shlex.join(child.argv)}")
            failure = self.wait_ready(options)
            if failure is None and self.stop_signal is None:
                self.print_banner(options, account, redis_url)
                failure = self.supervise()
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failure:
            raise CommandError(f"{failure}; stopped everything")
        self.say("stopped")

    # -- processes ---------------------------------------------------------------------

    @staticmethod
    def plan_children(options: dict[str, Any], data_dir: Path) -> list[Child]:
        python = sys.executable
        children = []
        if not options["no_web"]:
            children.append(
                Child(
                    "web",
                    [
                        python,
                        "-m",
                        "daphne",
                        "-b",
                        options["host"],
                        "-p",
                        str(options["port"]),
                        "orchestration.asgi:application",
                    ],
                )
            )
        if not options["no_worker"]:
            argv = [
                python,
                "-m",
                "celery",
                "-A",
                "orchestration",
                "worker",
                "-l",
                "info",
                "-c",
                str(options["concurrency"]),
                "-n",
                f"{WORKER_NAME}@%h",
            ]
            if options["queues"]:
                argv += ["-Q", options["queues"]]
            children.append(Child("worker", argv))
        if not options["no_beat"]:
            children.append(
                Child(
                    "beat",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "orchestration",
                        "beat",
                        "-l",
                        "info",
                        "-s",
                        str(data_dir / "celerybeat-schedule"),
                    ],
                )
            )
        return children

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.stop_signal is not None:
            self.force = True  # a second Ctrl-C: no more waiting
        self.stop_signal = signum

    def exited_child(self) -> str | None:
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                return f"{child.name} (pid {child.pid}) exited unexpectedly with code {code}"
        return None

    def wait_ready(self, options: dict[str, Any]) -> str | None:
        """Wait until the web port accepts connections and the worker answers a ping.

        Returns a failure message if a child dies or the web server is not up in time. A slow
        worker only earns a warning: the stack is usable, runs wait in the queue.
        """
        deadline = time.monotonic() + options["ready_timeout"]
        web_ready = options["no_web"]
        worker_ready = options["no_worker"]
        host, port = browser_host(options["host"]).strip("[]"), options["port"]
        worker = f"{WORKER_NAME}@{socket.gethostname()}"
        while self.stop_signal is None and not (web_ready and worker_ready):
            failure = self.exited_child()
            if failure:
                return failure
            web_ready = web_ready or port_open(host, port)
            worker_ready = worker_ready or worker_answers(worker)
            if time.monotonic() > deadline:
                if not web_ready:
                    return f"the web server did not accept connections on port {port} in time"
                self.say(f"warning: the worker has not answered a ping yet ({worker})", error=True)
                break
            time.sleep(0.2)
        return None

    def supervise(self) -> str | None:
        while self.stop_signal is None:
            failure = self.exited_child()
            if failure:
                return failure
            time.sleep(0.2)
        return None

    def shutdown(self) -> None:
        """SIGTERM every child, wait up to 10 s, SIGKILL the rest; then stop the Valkey."""
        running = [c for c in self.children if c.exit_code() is None]
        if running:
            self.say("stopping " + ", ".join(c.name for c in running) + " ...")
        for child in running:
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(c.exit_code() is None for c in running):
            if self.force or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for child in self.children:
            if child.process is None:
                continue
            if child.exit_code() is None:
                self.say(f"{child.name} did not stop in time: killing it", error=True)
            # Also reaps anything the child left in its group (a worker's pool processes).
            child.kill_group()
            child.process.wait()
        self.stop_valkey()

    def stop_valkey(self) -> None:
        if embedded_redis.stop():
            self.say("stopped the embedded Valkey")

    # -- banner ------------------------------------------------------------------------

    def print_banner(self, options: dict[str, Any], account: AdminAccount, redis_url: str) -> None:
        base = f"http://{browser_host(options['host'])}:{options['port']}"
        password = account.password or "(unchanged; reset with: manage.py changepassword admin)"
        redis_note = " (embedded Valkey)" if settings.TRELLIS_EMBEDDED_REDIS else ""
        body = '{"workflow": "hello", "inputs": {"name": "Ada"}}'
        processes = ", ".join(f"{c.name} pid {c.pid}" for c in self.children) or "none"
        lines = [
            "",
            "Trellis is ready" if not options["no_web"] else "Trellis is ready (no web server)",
            f"  URL        {base}/",
            f"  Dashboard  {base}/dashboard/",
            f"  API docs   {base}/docs",
            "  Docs       docs/index.md (or: .venv/bin/mkdocs serve -a 127.0.0.1:8001)",
            f"  Admin      {base}/admin/",
            f"  Login      {account.username} / {password}",
            f"  API token  {account.token}",
            f"  Redis      {redis_url}{redis_note}",
            f"  Data dir   {settings.TRELLIS_DATA_DIR}",
            f"  Processes  {processes}",
            "",
            "  Start the example workflow:",
            f"    curl -X POST {base}/api/v1/runs/ \\",
            f"      -H 'Authorization: Token {account.token}' \\",
            "      -H 'Content-Type: application/json' \\",
            f"      -d '{body}'",
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
        self.say("\n".join(lines))

    def say(self, text: str, *, error: bool = False) -> None:
        """Write a line and flush it at once (stdout may be a pipe, e.g. ``up | tee``)."""
        stream = self.stderr if error else self.stdout
        stream.write(text)
        stream.flush()
