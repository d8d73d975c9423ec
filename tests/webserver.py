"""A real `daphne orchestration.asgi:application` process (or another ASGI app, such as a host
project's) for the SSE and browser tests, on a free port, with the test session's database and
Redis (as the worker fixture's)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from runs.ops.processes import start_process_group, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DaphneProcess:
    def __init__(
        self, env: dict[str, str], app: str = "orchestration.asgi:application", name: str = ""
    ) -> None:
        self.env = env
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"daphne{'-' + name if name else ''}.log"

    def start(self, timeout: float = 30) -> None:
        self.proc = start_process_group(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                self.app,
            ],
            env=self.env,
            log_path=self.log_path,
            cwd=ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (
                f"daphne exited; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
            )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne not listening after {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        stop_process_group(self.proc, timeout=10)
