"""`manage.py bench` in a tiny configuration, so that it cannot rot (no assertion on speed)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_bench_runs_every_workload_and_prints_ratios(tmp_path):
    out = StringIO()
    report = tmp_path / "bench.json"
    call_command(
        "bench", reps=1, warmup=0, scale=0.01, concurrency=1, json_path=str(report), stdout=out
    )
    text = out.getvalue()
    for workload in ("W1", "W2", "W3", "W4", "W5", "events", "SQL"):
        assert f"\n{workload} " in text, text
    assert "W1 vs celery chord" in text and "W4 vs celery chains" in text
    assert "ratios on sqlite" in text or "ratios on postgresql" in text
    assert "(<= 1.0x " in text and "worker CPU per node" in text
    data = json.loads(report.read_text())
    systems = {(row["workload"], row["system"]) for row in data["results"]}
    assert ("W3", "celery client driver") in systems and (
        "W5",
        "trellis create+validate",
    ) in systems
    sql = [row for row in data["results"] if row["workload"] == "SQL"]
    assert sql and all(row["queries_per_node"] > 0 for row in sql)
    print(text)


def test_bench_refuses_unknown_workloads():
    with pytest.raises(CommandError, match="unknown workload"):
        call_command("bench", only="w9", stdout=StringIO())


def test_production_workers_register_no_benchmark_task(worker):
    """Only the bench's own workers load its raw task (--include runs.ops.bench_tasks)."""
    from celery import current_app

    replies = current_app.control.inspect(timeout=5).registered() or {}
    ours = [tasks for name, tasks in replies.items() if name.startswith(f"{worker.name}@")]
    assert ours, replies
    assert "trellis.execute_node" in ours[0]
    assert not [task for task in ours[0] if task.startswith("trellis.bench")]
