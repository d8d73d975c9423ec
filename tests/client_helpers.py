"""What the tests of the API client (tests/test_client.py) and of the ``trellis`` command
(tests/test_command_trellis.py) share: the command run as a user runs it, the workflows they
push, and a TCP proxy that drops an SSE stream once, mid-run.

Importing this module needs neither Django nor a database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.specs import py, spec

ROOT = Path(__file__).resolve().parent.parent
#: The command as the tests start it: ``python -m trellis_client`` runs what the installed
#: ``trellis`` script runs (``trellis_client.cli:main``, checked against pyproject.toml),
#: and works from a checkout that is not installed.
TRELLIS = [sys.executable, "-m", "trellis_client"]
#: What a user's shell would not have: the test session's Django and server settings.
SERVER_VARIABLES = ("DJANGO", "TRELLIS", "DATABASE_URL", "REDIS_URL", "CELERY")


def user_env(url: str | None, token: str | None, config_home: Path) -> dict[str, str]:
    """A user's environment: no Django or server variables, the client's own only, the
    checkout importable (an installed package would be), profiles under ``config_home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SERVER_VARIABLES)}
    env.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(config_home), PYTHONUNBUFFERED="1")
    if url:
        env["TRELLIS_URL"] = url
    if token:
        env["TRELLIS_TOKEN"] = token
    return env


def trellis(*args: str, env: dict[str, str], cwd: Path, timeout: float = 90):
    """Run ``trellis ARGS`` in ``cwd``; the CompletedProcess (text stdout and stderr)."""
    return subprocess.run(
        [*TRELLIS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def json_lines(text: str) -> list[Any]:
    """``--json --follow`` output: one JSON document a line."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------
# Workflows (the python functions are in tests/testapp/handlers.py)


def steps_spec(name: str, seconds: float = 0.3) -> dict[str, Any]:
    """Three nodes in a row, each sleeping ``seconds``: events spread over the run."""
    return spec(
        [
            py("first", "add", kwargs={"a": 1, "b": 2}),
            py("second", "sleep", deps=["first"], kwargs={"seconds": seconds}),
            py("third", "sleep", deps=["second"], kwargs={"seconds": seconds}),
        ],
        name=name,
    )


def failing_spec(name: str) -> dict[str, Any]:
    return spec([py("explode", "boom")], name=name)


def waiting_spec(name: str) -> dict[str, Any]:
    """A ``wait_for_event`` node ``approve``, whose data the output node returns."""
    return spec(
        [
            {"id": "approve", "handler": "wait_for_event", "config": {"prompt": "ok?"}},
            {
                "id": "done",
                "handler": "output",
                "dependencies": ["approve"],
                "config": {"value": "{{ approve.output }}"},
            },
        ],
        name=name,
    )


def cyclic_spec(name: str) -> dict[str, Any]:
    return spec([py("left", "echo", deps=["right"]), py("right", "echo", deps=["left"])], name=name)


# --------------------------------------------------------------------------------------
# A proxy that cuts the first SSE stream once


class StreamCuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` (a base URL) that forwards everything, but
    cuts the first ``text/event-stream`` response in the middle of its ``cut_at``-th event
    (a few bytes into it, so the client holds a partial message) by closing both sockets.
    ``url`` is the proxy's base URL; ``streams`` counts the SSE responses it saw."""

    def __init__(self, upstream: str, cut_at: int = 3) -> None:
        address = urlsplit(upstream)
        self.upstream = (address.hostname, address.port)
        self.cut_at = cut_at
        self.cuts = 0
        self.streams = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        seen = b""  # this connection's answers since an SSE response began
        in_stream = False
        try:
            while data := source.recv(65536):
                if answers and not in_stream and b"text/event-stream" in data:
                    in_stream = True
                    with self._lock:
                        self.streams += 1
                if in_stream and self.cuts == 0:
                    before = len(seen)
                    seen += data
                    cut = self._cut_point(seen)
                    if cut is not None:
                        target.sendall(data[: max(cut - before, 0)])
                        with self._lock:
                            self.cuts += 1
                        return
                target.sendall(data)
        except OSError:
            pass  # the other side went away
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _cut_point(self, seen: bytes) -> int | None:
        """Where to cut: 6 bytes into the ``cut_at``-th ``id:`` line, once it is seen."""
        position = -1
        for _ in range(self.cut_at):
            position = seen.find(b"\nid: ", position + 1)
            if position < 0:
                return None
        return position + 6 if len(seen) >= position + 6 else None
