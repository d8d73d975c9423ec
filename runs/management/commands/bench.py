"""`manage.py bench`: Trellis against raw Celery on the same Redis and worker processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from runs.ops.bench import Bench, WorkerPool, format_table

WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "events", "queries")


class Command(BaseCommand):
    help = (
        "Run W1–W5, event latency and queries-per-node through Trellis and raw Celery; print "
        "medians, ratios and (with --json) write them to a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reps", type=int, default=5, help="measured repetitions (median)")
        parser.add_argument("--warmup", type=int, default=1, help="unmeasured repetitions first")
        parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
        parser.add_argument(
            "--concurrency", type=int, default=0, help="worker processes (default: CPUs)"
        )
        parser.add_argument(
            "--running-workers",
            action="store_true",
            help="use workers already serving the trellis-bench queue instead of starting one",
        )
        parser.add_argument(
            "--only", default=",".join(WORKLOADS), help="comma list of " + ",".join(WORKLOADS)
        )
        parser.add_argument("--json", dest="json_path", help="also write the results as JSON here")

    def handle(self, *args, **options):
        chosen = [w.strip() for w in options["only"].split(",") if w.strip()]
        unknown = sorted(set(chosen) - set(WORKLOADS))
        if unknown:
            raise CommandError(
                f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}"
            )
        if options["reps"] < 1 or options["scale"] <= 0:
            raise CommandError("--reps must be at least 1 and --scale positive")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(
                "the database is not migrated: run `python manage.py migrate` first "
                "(./bin/up does it too)"
            )
        user, _ = get_user_model().objects.get_or_create(username="trellis-bench")
        concurrency = options["concurrency"] or len(os.sched_getaffinity(0))
        log = Path(settings.TRELLIS_DATA_DIR) / "bench-worker.log"
        pool = WorkerPool(concurrency, options["running_workers"], log)
        bench = Bench(
            user,
            reps=options["reps"],
            warmup=options["warmup"],
            scale=options["scale"],
            out=lambda line: self.stdout.write(line),
            cpu=pool.cpu_seconds,
        )
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(
            f"Trellis bench: database {db}, Redis {settings.REDIS_URL.split('@')[-1]}, "
            f"{concurrency} worker processes, {options['reps']} reps (+{options['warmup']} warm-up)"
        )
        started = time.perf_counter()
        with pool:
            for name in chosen:
                getattr(bench, "queries_per_node" if name == "queries" else name)()
        self.stdout.write("")
        self.stdout.write(format_table(bench.results))
        self.stdout.write(f"\n(total {time.perf_counter() - started:.0f} s)")
        if options["json_path"]:
            Path(options["json_path"]).write_text(
                json.dumps(
                    {
                        "database": db,
                        "concurrency": concurrency,
                        "reps": options["reps"],
                        "scale": options["scale"],
                        "results": [r.row() for r in bench.results],
                    },
                    indent=2,
                )
            )
