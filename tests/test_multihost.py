"""Two hosts: a second worker in its own Linux network namespace, then its link cut mid-run.

The second host is a network namespace (``trellis-h2-<pid>``) with its own address on a veth
pair: 10.231.a.b+2/30 inside, 10.231.a.b+1/30 on the root side (the subnet picked from the
test process's pid, skipping any already in use). The suite's Redis (the embedded Valkey, or
the machine's Redis with REDIS_URL) and PostgreSQL (with DATABASE_URL) listen on loopback only,
so TCP forwarders in the test process listen on the root-side address and pipe to them: the
second host's Celery worker reaches "the first host's Redis and PostgreSQL" only over the link.
The first host is the session's ``worker`` fixture.

With SQLite (the default pass) the database is a file, and the second host opens the same file
through the filesystem: a network namespace isolates the network, not the disk. Cutting the
link then takes the second host off Redis only; it keeps its database, so its heartbeats go on
and the nodes it was running finish there (their messages to Redis are what gets lost). With
PostgreSQL the cut takes both away, the heartbeats stop, and the reconciler re-queues the
second host's RUNNING nodes on the first. The tests check the path their database takes.

Needs root and iproute2; where namespaces cannot be created the tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from runs.engine.reconciler import reconcile
from runs.models import NodeRun, Run, Worker
from runs.ops.processes import database_url
from tests.conftest import SUMMARY_LINES, WorkerProcess, completed_events, wait_for_run
from tests.specs import create, py, start
from tests.testapp.handlers import count_calls

pytestmark = [
    pytest.mark.integration,
    pytest.mark.multihost,
    pytest.mark.django_db(transaction=True),
]

TIMEOUT = 120  # seconds for anything to happen on a loaded 2-core machine
HOST_2_CONCURRENCY = 3
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Forwarders:
    """TCP forwarders on one asyncio loop in a thread of the test process. Each listens on
    ``listen_host`` (a free port) and pipes every connection to one loopback service."""

    def __init__(self, listen_host: str) -> None:
        self.listen_host = listen_host
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="trellis-forwarders", daemon=True
        )
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread.start()

    def forward(self, target_host: str, target_port: int) -> int:
        """Start forwarding to ``target_host:target_port``; return the listening port."""

        async def open_server() -> int:
            server = await asyncio.start_server(
                lambda reader, writer: self._pipe(reader, writer, target_host, target_port),
                self.listen_host,
                0,
            )
            self._servers.append(server)
            return server.sockets[0].getsockname()[1]

        return asyncio.run_coroutine_threadsafe(open_server(), self.loop).result(10)

    async def _pipe(self, client_reader, client_writer, target_host, target_port) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                target_host, target_port
            )
        except OSError:
            client_writer.transport.abort()  # the service refused: so does the forwarder
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(
            self._copy(client_reader, upstream_writer),
            self._copy(upstream_reader, client_writer),
        )
        self._writers -= {client_writer, upstream_writer}

    @staticmethod
    async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            return  # reset by either side: the finally ends the whole connection
        finally:
            # One direction ended: end the whole connection (Redis and PostgreSQL clients never
            # half-close), which also ends the copy in the other direction.
            writer.transport.abort()

    def stop(self) -> None:
        """Close the listeners and every connection at once. abort(), not close(): close()
        would first wait to flush data queued for a host that is no longer reachable. The
        services see their end closed (a PostgreSQL backend rolls back and exits)."""

        def shut() -> None:
            for server in self._servers:
                server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self.loop.call_later(0.2, self.loop.stop)

        if self.loop.is_running():
            self.loop.call_soon_threadsafe(shut)
            self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def free_subnet() -> tuple[str, str]:
    """The root-side and namespace-side addresses of a /30 in 10.231.0.0/16 that no interface
    of the root namespace uses, starting from one picked by the pid (parallel sessions)."""
    used = ip("-o", "-4", "addr", "show").stdout
    first = os.getpid() % 16384
    for step in range(16384):
        third, block = divmod((first + step) % 16384, 64)
        root = f"10.231.{third}.{block * 4 + 1}"
        if f" {root}/" not in used:
            return root, f"10.231.{third}.{block * 4 + 2}"
    raise RuntimeError("no free /30 in 10.231.0.0/16")


class SecondHost:
    """A network namespace on a veth link, forwarders to the services, and a worker in it."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.namespace = f"trellis-h2-{pid}"
        self.root_veth = f"th2-{pid}r"  # interface names: at most 15 characters
        self.ns_veth = f"th2-{pid}n"
        self.root_ip = self.ns_ip = ""
        self.forwarders: Forwarders | None = None
        self.worker: WorkerProcess | None = None
        self.link_cut = False

    def create_network(self) -> None:
        """Create the namespace and the link; skip when this machine does not allow it."""
        if os.geteuid() != 0:
            pytest.skip("creating a network namespace needs root")
        if shutil.which("ip") is None:
            pytest.skip("no `ip` command (iproute2) to create a network namespace")
        self.remove_network()  # what a killed session with this pid may have left
        self.root_ip, self.ns_ip = free_subnet()
        ns = self.namespace
        steps = [
            ("netns", "add", ns),
            ("link", "add", self.root_veth, "type", "veth", "peer", "name", self.ns_veth),
            ("link", "set", self.ns_veth, "netns", ns),
            ("addr", "add", f"{self.root_ip}/30", "dev", self.root_veth),
            ("link", "set", self.root_veth, "up"),
            ("-n", ns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_veth),
            ("-n", ns, "link", "set", self.ns_veth, "up"),
            ("-n", ns, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                self.remove_network()
                reason = f"`ip {' '.join(step)}` failed: {done.stderr.strip()}"
                if step[:2] == ("netns", "add") or "not permitted" in done.stderr.lower():
                    print(f"\nskipping: {reason}")
                    pytest.skip(f"cannot create a network namespace here: {reason}")
                raise RuntimeError(reason)

    def start_forwarders(self) -> dict[str, str]:
        """Forward the root-side address to the services; the URLs the second host uses."""
        self.forwarders = Forwarders(self.root_ip)
        redis = urlsplit(settings.REDIS_URL)
        if redis.scheme == "unix":
            pytest.skip("REDIS_URL is a unix socket, which cannot be reached over a link")
        redis_port = self.forwarders.forward(redis.hostname, redis.port or 6379)
        auth = redis.netloc.rpartition("@")[0]
        netloc = f"{auth}@{self.root_ip}:{redis_port}" if auth else f"{self.root_ip}:{redis_port}"
        urls = {"REDIS_URL": urlunsplit(redis._replace(netloc=netloc))}
        db = dict(connection.settings_dict)
        if connection.vendor == "postgresql":
            if (db.get("HOST") or "").startswith("/"):
                pytest.skip("PostgreSQL is reached through a unix socket, not over a link")
            db_port = self.forwarders.forward(db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432)
            db.update(HOST=self.root_ip, PORT=db_port)
        urls["DATABASE_URL"] = database_url(db)  # SQLite: the same file, through the disk
        return urls

    def check_link(self, port: int) -> None:
        """Fail clearly when the namespace cannot reach the forwarders (e.g. a firewall)."""
        probe = f"import socket; socket.create_connection(({self.root_ip!r}, {port}), timeout=10)"
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"the namespace cannot reach the forwarder: {done.stderr}"

    def start_worker(self, env: dict[str, str]) -> None:
        self.worker = WorkerProcess(
            env,
            concurrency=HOST_2_CONCURRENCY,
            name="h2",
            wrapper=["ip", "netns", "exec", self.namespace],
        )
        self.worker.start()  # returns when it answers a ping, which travels over the link

    def cut(self) -> None:
        """Take the root side of the link down: packets both ways are dropped, nothing is
        reset, so the second host's open connections hang as on a real network failure."""
        done = ip("link", "set", self.root_veth, "down")
        assert done.returncode == 0, done.stderr
        self.link_cut = True

    def stop_worker(self) -> None:
        proc = self.worker.proc if self.worker else None
        if proc is None or proc.poll() is not None:
            return
        if self.link_cut:
            # Its processes hang on connections that will never answer: no warm shutdown.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        else:
            self.worker.stop()

    def remove_network(self) -> None:
        # Deleting one end of a veth pair deletes both; deleting the namespace deletes the
        # end inside it. Either may already be gone.
        ip("link", "del", self.root_veth)
        ip("netns", "del", self.namespace)

    def teardown(self) -> None:
        try:
            self.stop_worker()
        finally:
            # Before the test's database flush: closing the forwarded PostgreSQL connections
            # ends any transaction the cut host left open (it would block the TRUNCATE).
            if self.forwarders:
                self.forwarders.stop()
            self.remove_network()


@pytest.fixture
def second_host(worker, transactional_db):
    """A second host with a worker on it (and the session's worker as host 1), both up and
    heart-beating. Everything is removed afterwards, even when the test fails."""
    host = SecondHost()
    try:
        host.create_network()
        urls = host.start_forwarders()
        host.check_link(int(urlsplit(urls["REDIS_URL"]).port))
        host.start_worker(dict(worker.env, **urls))
        wait_for_heartbeats(worker.name, host.worker.name)
        yield host
    finally:
        host.teardown()


def wait_for_heartbeats(*names: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        seen = {
            name
            for name in names
            if Worker.objects.filter(hostname__startswith=f"{name}@", stopped_at=None).exists()
        }
        if seen == set(names):
            return
        time.sleep(0.2)
    raise AssertionError(f"no heartbeat row after {TIMEOUT} s from {set(names) - seen}")


def host_of(hostname: str, worker: WorkerProcess, second_host: SecondHost) -> str:
    if hostname.startswith(f"{worker.name}@"):
        return "host 1"
    if hostname.startswith(f"{second_host.worker.name}@"):
        return "host 2"
    return f"unknown worker {hostname}"


def node_states(run_id) -> list[tuple[str, str, str]]:
    return list(NodeRun.objects.filter(run_id=run_id).values_list("node_id", "state", "worker"))


def report(request, line: str) -> None:
    print("\n" + line)
    request.config.stash.setdefault(SUMMARY_LINES, []).append(line)  # printed at the end


def independent_nodes(key: str, count: int, seconds: float) -> list[dict]:
    """``count`` nodes counting their executions (one counter each) and sleeping, plus a join."""
    nodes = [
        py(f"n{i}", "count_then_sleep", kwargs={"key": f"{key}-n{i}", "seconds": seconds})
        for i in range(count)
    ]
    return [*nodes, py("join", "add", [node["id"] for node in nodes], kwargs={"a": 1, "b": 1})]


def calls(key: str, node: NodeRun) -> int:
    """How many times the node's body started (the join counts nothing: its attempt)."""
    return count_calls(f"{key}-{node.node_id}") if node.node_id != "join" else node.attempt


def test_one_runs_nodes_spread_over_both_hosts_each_once(second_host, worker, api, request):
    key = uuid.uuid4().hex
    run_id = start(api, create(api, independent_nodes(key, 40, seconds=0.2)))
    run = wait_for_run(run_id, timeout=TIMEOUT)
    assert run.status == "COMPLETED", run.error
    nodes = list(NodeRun.objects.filter(run_id=run_id))
    per_host = Counter(host_of(node.worker, worker, second_host) for node in nodes)
    report(request, f"multihost spread: {len(nodes)} nodes, {dict(sorted(per_host.items()))}")
    assert set(per_host) == {"host 1", "host 2"}, per_host
    for node in nodes:
        assert node.state == "COMPLETED" and node.attempt == 1, node
        assert completed_events(run_id, node.node_id) == 1, node
        assert calls(key, node) == 1, node
    assert NodeRun.objects.get(run_id=run_id, node_id="join").output == 2


def test_cutting_a_hosts_link_mid_run_the_run_completes_on_the_other(
    second_host, worker, api, request
):
    key = uuid.uuid4().hex
    seconds = 5.0
    run_id = start(api, create(api, independent_nodes(key, 14, seconds=seconds)))
    h2 = f"{second_host.worker.name}@"

    # Cut while every pool process of host 2 is inside a node's sleep: not in a claim or a
    # commit, which on PostgreSQL would leave row locks behind that nothing releases (a real
    # partition does that too, until the server's TCP keepalive gives up; not tested here).
    deadline = time.monotonic() + TIMEOUT
    while True:
        running = list(
            NodeRun.objects.filter(run_id=run_id, state="RUNNING", worker__startswith=h2)
        )
        ages = [(timezone.now() - node.started_at).total_seconds() for node in running]
        if len(running) == HOST_2_CONCURRENCY and min(ages) >= 0.5 and max(ages) <= seconds - 1.5:
            break
        assert time.monotonic() < deadline, (
            f"host 2 never ran {HOST_2_CONCURRENCY} nodes at once: {node_states(run_id)}"
        )
        time.sleep(0.05)
    cut_nodes = {node.node_id for node in running}
    second_host.cut()
    cut_at, cut_wall = time.monotonic(), timezone.now()

    # No beat process in the tests: reconcile here, as beat would every few seconds.
    repairs: Counter[str] = Counter()
    requeued_after = None
    while True:
        repairs.update(reconcile())
        if repairs["requeued_lost"] and requeued_after is None:
            requeued_after = time.monotonic() - cut_at
        run = Run.objects.get(pk=run_id)
        if run.status in FINAL:
            break
        assert time.monotonic() - cut_at < TIMEOUT, (
            f"run still {run.status} {TIMEOUT} s after the cut: {node_states(run_id)}"
        )
        time.sleep(0.5)
    recovered_after = time.monotonic() - cut_at

    nodes = {node.node_id: node for node in NodeRun.objects.filter(run_id=run_id)}
    per_host = Counter(host_of(node.worker, worker, second_host) for node in nodes.values())
    lost = Counter(
        host_of(attempt["worker"], worker, second_host)
        for node in nodes.values()
        for attempt in node.attempts
        if attempt["state"] == "LOST"
    )
    shared_disk = connection.vendor == "sqlite"
    detected = f"{requeued_after:.1f} s" if requeued_after is not None else "never"
    report(
        request,
        f"multihost link cut ({connection.vendor}): {len(nodes)} nodes completed "
        f"{dict(sorted(per_host.items()))}, {len(cut_nodes)} running on host 2 at the cut, "
        f"lost attempts {dict(lost)}, requeued after {detected}, run completed "
        f"{recovered_after:.1f} s after the cut, repairs {dict(repairs)}",
    )

    assert run.status == "COMPLETED", run.error
    assert NodeRun.objects.get(run_id=run_id, node_id="join").output == 2
    for node in nodes.values():
        # Each node recorded COMPLETED exactly once; every attempt is in its history.
        assert node.state == "COMPLETED", node
        assert completed_events(run_id, node.node_id) == 1, node
        assert len(node.attempts) == node.attempt, node.attempts
        assert node.attempts[-1]["state"] == "COMPLETED", node.attempts
        # Each attempt started the body once (at-least-once: a lost attempt started it too).
        assert calls(key, node) == node.attempt, (node, calls(key, node))
        if node.started_at > cut_wall:
            assert host_of(node.worker, worker, second_host) == "host 1", node

    if shared_disk:
        # The cut host kept the database file: its heartbeats went on and its nodes finished
        # there, once; nothing was lost.
        assert repairs["requeued_lost"] == 0, repairs
        for node_id in cut_nodes:
            node = nodes[node_id]
            assert node.attempt == 1 and node.worker.startswith(h2), node.attempts
    else:
        # The cut host lost the database too: its heartbeats stopped, the reconciler declared
        # it dead and re-queued exactly the nodes it was running, which host 1 completed.
        assert repairs["requeued_lost"] == len(cut_nodes), repairs
        for node_id in cut_nodes:
            node = nodes[node_id]
            assert [a["state"] for a in node.attempts] == ["LOST", "COMPLETED"], node.attempts
            assert node.attempts[0]["worker"].startswith(h2), node.attempts
            assert host_of(node.worker, worker, second_host) == "host 1", node
    assert set(per_host) <= {"host 1", "host 2"}, per_host
