"""`manage.py bench`: the same DAG shapes through Trellis and through raw Celery, on the same
Redis and the same worker processes, with no-op node bodies.

Workloads
- W1: N independent nodes + one join            raw: chord(group, callback)
- W2: a chain of N nodes                        raw: chain
- W3: L layers x W, each node needs 2 parents   raw: chain of per-layer chords, and a
                                                client-side dependency-counting driver
- W4: R runs of a 3-node chain at once          raw: R chains at once (latency p50/p95)
- W5: create + validate a 10,000-node DAG, then run it (per-node cost vs W1)
- events: worker-side emit -> a subscriber of the run's channel group, p50/p95
Queries per node are counted by executing a workload's nodes in this process under Django's
query log (their messages go to a queue no worker reads).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from celery import chain, chord, current_app, group
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.ops.processes import (
    celery_worker_argv,
    database_url,
    start_process_group,
    stop_process_group,
    wait_for_worker,
)

from ..engine.scheduler import create_run, start_run
from ..models import NodeRun, Run
from ..rules.spec import parse_spec
from ..services.runs import start_new_run
from ..services.workflows import save_workflow
from ..store.publish import run_group
from ..tasks import execute_node
from .bench_tasks import bench_noop as noop

BENCH_QUEUE = "trellis-bench"
INLINE_QUEUE = "trellis-bench-inline"  # nobody consumes it: the bench runs those nodes itself


# --------------------------------------------------------------------------------------
# Shapes as Trellis specs


def _raw():
    """A raw no-op signature routed to the bench workers (chains and chords send later
    tasks with each signature's own options)."""
    return noop.si().set(queue=BENCH_QUEUE)


def _node(node_id: str, deps: list[str] = (), queue: str = BENCH_QUEUE) -> dict[str, Any]:
    return {
        "id": node_id,
        "handler": "python",
        "dependencies": list(deps),
        "config": {"function": "trellis_noop"},
        "queue": queue,
    }


def fan_in_spec(n: int, queue: str = BENCH_QUEUE) -> list[dict[str, Any]]:
    nodes = [_node(f"n{i}", queue=queue) for i in range(n)]
    nodes.append(_node("join", [f"n{i}" for i in range(n)], queue=queue))
    return nodes


def chain_spec(n: int, queue: str = BENCH_QUEUE) -> list[dict[str, Any]]:
    return [_node(f"n{i}", [f"n{i - 1}"] if i else [], queue=queue) for i in range(n)]


def lattice_deps(layers: int, width: int) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for layer in range(layers):
        for i in range(width):
            parents = [f"l{layer - 1}_{i}", f"l{layer - 1}_{(i + 1) % width}"] if layer else []
            deps[f"l{layer}_{i}"] = parents
    return deps


def lattice_spec(layers: int, width: int, queue: str = BENCH_QUEUE) -> list[dict[str, Any]]:
    return [_node(nid, deps, queue=queue) for nid, deps in lattice_deps(layers, width).items()]


# --------------------------------------------------------------------------------------
# Measurement


@dataclass
class Result:
    workload: str
    system: str  # "trellis" | "celery" | …
    nodes: int
    times: list[float] = field(default_factory=list)  # seconds per repetition
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    def row(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "system": self.system,
            "nodes": self.nodes,
            "median_s": round(self.median, 4),
            "min_s": round(min(self.times), 4) if self.times else None,
            "max_s": round(max(self.times), 4) if self.times else None,
            "ms_per_node": round(1000 * self.median / self.nodes, 3) if self.nodes else None,
            "nodes_per_s": round(self.nodes / self.median, 1) if self.median else None,
            "reps": len(self.times),
            **self.extra,
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class WorkerPool:
    """A `celery worker` subprocess serving the bench queue (or none: use running workers)."""

    def __init__(self, concurrency: int, external: bool, log: Path) -> None:
        self.concurrency = concurrency
        self.external = external
        self.log = log
        self.process: subprocess.Popen | None = None
        self.name = f"bench-{os.getpid()}"

    def __enter__(self) -> WorkerPool:
        if self.external:
            return self
        env = dict(os.environ, REDIS_URL=settings.REDIS_URL)
        env.setdefault("DJANGO_SETTINGS_MODULE", "orchestration.settings")
        # The database this process uses (in the tests: the test database).
        env["DATABASE_URL"] = database_url(connection.settings_dict)
        self.process = start_process_group(
            celery_worker_argv(
                self.name,
                BENCH_QUEUE,
                self.concurrency,
                "warning",
                include=["runs.ops.bench_tasks"],
            ),
            env=env,
            log_path=self.log,
            cwd=settings.BASE_DIR,
        )
        wait_for_worker(self.name, self.process, self.log)
        return self

    def __exit__(self, *exc: Any) -> None:
        stop_process_group(self.process, timeout=30)

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) used so far by the worker and its pool processes, or None
        (running workers, or no /proc). Unlike wall-clock time it hardly moves when other
        programs load the machine."""
        if self.process is None or not Path("/proc").is_dir():
            return None
        tick = os.sysconf("SC_CLK_TCK")
        pids = [self.process.pid]
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                pids += [int(pid) for pid in (task / "children").read_text().split()]
            total = 0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            return None
        return total / tick


class Bench:
    """Runs the workloads. ``scale`` shrinks every size (the test uses a tiny one)."""

    def __init__(
        self,
        user,
        *,
        reps: int,
        warmup: int,
        scale: float,
        out: Callable[[str], None],
        cpu: Callable[[], float | None] = lambda: None,
    ):
        self.user = user
        self.cpu = cpu  # the workers' CPU seconds so far (WorkerPool.cpu_seconds)
        self.reps = reps
        self.warmup = warmup
        self.scale = scale
        self.out = out
        self.results: list[Result] = []

    def size(self, n: int, minimum: int = 2) -> int:
        return max(minimum, round(n * self.scale))

    # -- helpers ---------------------------------------------------------------------

    def _repeat(self, result: Result, once: Callable[[], float]) -> Result:
        for _ in range(self.warmup):
            once()
        cpu = []
        for _ in range(self.reps):
            before = self.cpu()
            result.times.append(once())
            after = self.cpu()
            if before is not None and after is not None:
                cpu.append(after - before)
        if cpu and result.nodes:
            # Includes what the workers do between repetitions (heartbeats): a few ms.
            result.extra["worker_cpu_ms_per_node"] = round(
                1000 * statistics.median(cpu) / result.nodes, 3
            )
        self.results.append(result)
        self.out(f"  {result.system:<22} {result.workload:<4} median {result.median:.3f} s")
        return result

    def _workflow(self, nodes: list[dict[str, Any]], label: str):
        doc = {"name": f"bench-{label}-{uuid.uuid4().hex[:8]}", "dag": {"nodes": nodes}}
        version, _ = save_workflow(doc, self.user)
        return version

    def _run_trellis(self, version) -> float:
        started = time.perf_counter()
        run = start_new_run(version, self.user)
        while True:
            status = Run.objects.values_list("status", flat=True).get(pk=run.pk)
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                break
            time.sleep(0.002)
        took = time.perf_counter() - started
        if status != "COMPLETED":
            raise RuntimeError(f"bench run {run.pk} ended {status}")
        return took

    # -- workloads -------------------------------------------------------------------

    def w1(self) -> None:
        n = self.size(1000)
        self.out(f"W1: {n} independent nodes + one join")
        version = self._workflow(fan_in_spec(n), "w1")
        self._repeat(Result("W1", "trellis", n + 1), lambda: self._run_trellis(version))

        def raw() -> float:
            started = time.perf_counter()
            result = chord(group(_raw() for _ in range(n)), _raw()).apply_async(queue=BENCH_QUEUE)
            result.get(timeout=600, interval=0.005)
            return time.perf_counter() - started

        self._repeat(Result("W1", "celery chord", n + 1), raw)

    def w2(self) -> None:
        n = self.size(200)
        self.out(f"W2: a chain of {n} nodes")
        version = self._workflow(chain_spec(n), "w2")
        self._repeat(Result("W2", "trellis", n), lambda: self._run_trellis(version))

        def raw() -> float:
            started = time.perf_counter()
            chain(_raw() for _ in range(n)).apply_async(queue=BENCH_QUEUE).get(
                timeout=600, interval=0.005
            )
            return time.perf_counter() - started

        self._repeat(Result("W2", "celery chain", n), raw)

    def w3(self) -> None:
        layers, width = self.size(20), self.size(10)
        n = layers * width
        self.out(f"W3: a {layers}-layer x {width} lattice, 2 parents per node")
        version = self._workflow(lattice_spec(layers, width), "w3")
        self._repeat(Result("W3", "trellis", n), lambda: self._run_trellis(version))

        def layered_canvas() -> float:
            started = time.perf_counter()
            steps = [group(_raw() for _ in range(width)) for _ in range(layers)]
            chain(*steps, _raw()).apply_async(queue=BENCH_QUEUE).get(timeout=600, interval=0.005)
            return time.perf_counter() - started

        self._repeat(Result("W3", "celery layered chords", n), layered_canvas)
        deps = lattice_deps(layers, width)
        self._repeat(Result("W3", "celery client driver", n), lambda: self._client_driver(deps))

    def _client_driver(self, deps: dict[str, list[str]]) -> float:
        """Dependency counting on the client: send ready tasks, decrement on results."""
        children: dict[str, list[str]] = {nid: [] for nid in deps}
        for nid, parents in deps.items():
            for parent in parents:
                children[parent].append(nid)
        pending = {nid: len(parents) for nid, parents in deps.items()}
        started = time.perf_counter()
        in_flight: dict[str, str] = {}

        def send(nid: str) -> None:
            in_flight[noop.apply_async(queue=BENCH_QUEUE).id] = nid

        for nid, count in pending.items():
            if count == 0:
                send(nid)
        done = 0
        while in_flight:
            for task_id, _meta in current_app.backend.get_many(
                list(in_flight), timeout=600, interval=0.001
            ):
                nid = in_flight.pop(task_id)
                done += 1
                for child in children[nid]:
                    pending[child] -= 1
                    if pending[child] == 0:
                        send(child)
                break  # new tasks may have been sent: wait on the new set
        return time.perf_counter() - started

    def w4(self) -> None:
        runs = self.size(200, minimum=3)
        self.out(f"W4: {runs} runs of a 3-node chain submitted at once")
        version = self._workflow(chain_spec(3), "w4")
        trellis_p95: list[float] = []
        raw_p95: list[float] = []

        def trellis_once() -> float:
            started = time.perf_counter()
            created = {}
            for _ in range(runs):
                run = start_new_run(version, self.user)
                created[run.pk] = time.perf_counter()
            latencies = []
            remaining = set(created)
            while remaining:
                done = Run.objects.filter(pk__in=remaining, status="COMPLETED").values_list(
                    "pk", flat=True
                )
                now = time.perf_counter()
                for pk in done:
                    latencies.append(now - created[pk])
                    remaining.discard(pk)
                time.sleep(0.005)
            trellis_p95.append(percentile(latencies, 0.95))
            return statistics.median(latencies) if latencies else time.perf_counter() - started

        def raw_once() -> float:
            sent = {}
            for _ in range(runs):
                result = chain(_raw(), _raw(), _raw()).apply_async(queue=BENCH_QUEUE)
                sent[result.id] = time.perf_counter()
            latencies = []
            for task_id, _meta in current_app.backend.get_many(
                list(sent), timeout=600, interval=0.002
            ):
                latencies.append(time.perf_counter() - sent[task_id])
            raw_p95.append(percentile(latencies, 0.95))
            return statistics.median(latencies)

        trellis = self._repeat(Result("W4", "trellis", 3 * runs), trellis_once)
        trellis.extra["p50_run_latency_s"] = round(trellis.median, 4)
        trellis.extra["p95_run_latency_s"] = round(statistics.median(trellis_p95[-self.reps :]), 4)
        raw = self._repeat(Result("W4", "celery chains", 3 * runs), raw_once)
        raw.extra["p50_run_latency_s"] = round(raw.median, 4)
        raw.extra["p95_run_latency_s"] = round(statistics.median(raw_p95[-self.reps :]), 4)

    def w5(self) -> None:
        n = self.size(10000)
        self.out(f"W5: create + validate a {n}-node DAG, then run it")
        nodes = fan_in_spec(n - 1)
        create_times = []
        version = None
        for _ in range(max(1, self.reps)):
            doc = {"name": f"bench-w5-{uuid.uuid4().hex[:8]}", "dag": {"nodes": nodes}}
            started = time.perf_counter()
            parse_spec(doc)  # what the API's validation does
            version, _ = save_workflow(doc, self.user)
            create_times.append(time.perf_counter() - started)
        create = Result("W5", "trellis create+validate", n, times=create_times)
        self.results.append(create)
        self.out(f"  {'trellis create+validate':<22} W5   median {create.median:.3f} s")
        run = Result("W5", "trellis run", n)
        for _ in range(max(1, min(self.reps, 2))):  # 10k nodes: two runs are enough
            run.times.append(self._run_trellis(version))
        self.results.append(run)
        self.out(f"  {'trellis run':<22} W5   median {run.median:.3f} s")

    def events(self, samples: int = 50) -> None:
        """Worker-side emit -> a subscriber of the run's channel group (what the WebSocket
        consumer relays), p50/p95. Each sample: a node records an event with its wall clock;
        the subscriber notes when it arrives."""
        samples = self.size(samples, minimum=3)
        self.out(f"events: {samples} emits from a worker to a channel-group subscriber")
        version = self._workflow(
            [
                {
                    "id": "emit",
                    "handler": "python",
                    "queue": BENCH_QUEUE,
                    "config": {"function": "trellis_emit_clock", "kwargs": {"count": samples}},
                }
            ],
            "events",
        )
        layer = get_channel_layer()
        latencies: list[float] = []

        async def listen(run_id: str) -> None:
            channel = await layer.new_channel()
            await layer.group_add(run_group(run_id), channel)
            try:
                while len(latencies) < samples:
                    message = await asyncio.wait_for(layer.receive(channel), timeout=60)
                    now = time.time()
                    for event in message.get("events", []):
                        if event["kind"] == "node.event" and "clock" in (event["data"] or {}):
                            latencies.append(now - event["data"]["clock"])
            finally:
                await layer.group_discard(run_group(run_id), channel)

        async def main() -> None:
            run = await sync_to_async(create_run)(version, self.user)
            listener = asyncio.ensure_future(listen(str(run.pk)))
            await asyncio.sleep(0.2)  # subscribed before the node starts
            await sync_to_async(start_run)(run)
            await listener

        asyncio.run(main())
        result = Result("events", "emit -> subscriber", samples, times=latencies)
        result.extra["p50_ms"] = round(1000 * percentile(latencies, 0.5), 2)
        result.extra["p95_ms"] = round(1000 * percentile(latencies, 0.95), 2)
        self.results.append(result)
        self.out(
            f"  event latency p50 {result.extra['p50_ms']} ms, p95 {result.extra['p95_ms']} ms"
        )

    def queries_per_node(self) -> None:
        """Execute nodes in this process under the query log: SQL per node, for two sizes of
        the same shape (a count that grows with size would be an N+1)."""
        self.out("queries per node (nodes executed in-process under the query log)")
        for label, nodes in (
            ("fan-in 20", fan_in_spec(19, INLINE_QUEUE)),
            ("fan-in 200", fan_in_spec(199, INLINE_QUEUE)),
            ("lattice 5x4", lattice_spec(5, 4, INLINE_QUEUE)),
            ("lattice 50x4", lattice_spec(50, 4, INLINE_QUEUE)),
            ("chain 10", chain_spec(10, INLINE_QUEUE)),
            ("chain 100", chain_spec(100, INLINE_QUEUE)),
        ):
            connection.queries_log.clear()  # it keeps 9,000 entries at most
            version = self._workflow(nodes, "queries")
            run = create_run(version, self.user)
            with CaptureQueriesContext(connection) as trigger:
                start_run(run)
            executed = 0
            with CaptureQueriesContext(connection) as queries:
                while True:
                    batch = list(
                        NodeRun.objects.filter(run=run, state="QUEUED").values_list(
                            "pk", "dispatch_token"
                        )
                    )
                    if not batch:
                        break
                    for pk, token in batch:
                        execute_node.run(pk, token)
                        executed += 1
            result = Result("SQL", label, executed, times=[0.0])
            result.extra["queries_per_node"] = round(len(queries) / executed, 2)
            result.extra["trigger_queries"] = len(trigger)
            self.results.append(result)
            self.out(
                f"  {label:<14} {len(queries) / executed:.2f} queries per node "
                f"(+{len(trigger)} to trigger)"
            )
        with current_app.connection_for_write() as conn:
            conn.default_channel.queue_purge(INLINE_QUEUE)


def format_table(results: list[Result]) -> str:
    """The table the command prints, with Trellis / raw Celery ratios."""
    lines = [
        f"{'workload':<7} {'system':<24} {'nodes':>6} {'median s':>9} {'min-max s':>15} "
        f"{'ms/node':>8} {'nodes/s':>9}  notes",
    ]
    for r in results:
        row = r.row()
        notes = {
            k: v
            for k, v in row.items()
            if k
            not in {
                "workload",
                "system",
                "nodes",
                "median_s",
                "min_s",
                "max_s",
                "ms_per_node",
                "nodes_per_s",
                "reps",
            }
        }
        span = f"{row['min_s']:.3f}-{row['max_s']:.3f}" if row["min_s"] is not None else ""
        lines.append(
            f"{r.workload:<7} {r.system:<24} {r.nodes:>6} {row['median_s']:>9.3f} {span:>15} "
            f"{row['ms_per_node'] or 0:>8.3f} {row['nodes_per_s'] or 0:>9.1f}  "
            + " ".join(f"{k}={v}" for k, v in notes.items())
        )
    lines.append("")
    lines.append(
        f"ratios on {connection.vendor} (Trellis / raw Celery, lower is better;"
        f" targets: issue #15, worker CPU per node <= {CPU_TARGET:.1f}x):"
    )
    for workload, baseline, field_name, target in ratio_pairs():
        t = _find(results, workload, "trellis")
        b = _find(results, workload, baseline)
        if t and b:
            tv = t.extra.get(field_name, t.median) if field_name else t.median
            bv = b.extra.get(field_name, b.median) if field_name else b.median
            ratio = tv / bv
            line = f"  {workload} vs {baseline:<24} {ratio:6.2f}x  {_verdict(ratio, target)}" + (
                f"  ({field_name})" if field_name else ""
            )
            tc, bc = t.extra.get("worker_cpu_ms_per_node"), b.extra.get("worker_cpu_ms_per_node")
            if tc and bc:
                line += f"   worker CPU per node {tc / bc:.2f}x {_verdict(tc / bc, CPU_TARGET)}"
            lines.append(line)
    w5 = _find(results, "W5", "trellis run")
    w1 = _find(results, "W1", "trellis")
    if w5 and w1:
        ratio = (w5.median / w5.nodes) / (w1.median / w1.nodes)
        lines.append(f"  W5 per-node run cost vs W1's               {ratio:6.2f}x")
    return "\n".join(lines)


CPU_TARGET = 1.5


def _verdict(ratio: float, target: float) -> str:
    return f"(<= {target:.1f}x {'met' if ratio <= target else 'NOT met'})"


def ratio_pairs() -> list[tuple[str, str, str | None, float]]:
    """(workload, raw Celery baseline, the field compared or None for the median, target)."""
    return [
        ("W1", "celery chord", None, 1.0),
        ("W2", "celery chain", None, 1.0),
        ("W3", "celery layered chords", None, 0.5),
        ("W3", "celery client driver", None, 1.5),
        ("W4", "celery chains", "p95_run_latency_s", 1.5),
    ]


def _find(results: list[Result], workload: str, system: str) -> Result | None:
    return next((r for r in results if r.workload == workload and r.system == system), None)
