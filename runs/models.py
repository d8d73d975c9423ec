"""Workflow definitions, runs, node runs and the event log.

States are written only by ``runs.transitions`` (compare-and-set); everything here is shape.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from .rules.states import NodeState, RunState, choices

# The app's label is `trellis` (a host project may well have an app called `runs`); the
# tables keep the names they had under the old label, `runs_*`.


class Workflow(models.Model):
    name = models.CharField(max_length=200, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workflows"
    )
    description = models.TextField(blank=True, default="")
    latest_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "runs_workflow"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkflowVersion(models.Model):
    """An immutable spec. Saving a changed spec makes version n+1; identical specs do not."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    spec = models.JSONField()
    spec_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "runs_workflowversion"
        ordering = ["workflow", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "version"], name="unique_workflow_version")
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} v{self.version}"


class Session(models.Model):
    """Shared JSON state across runs (llama_deploy's sessions). Handlers update it atomically
    through ``ctx.session``; templates read it as ``session``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trellis_sessions"
    )
    name = models.CharField(max_length=200, blank=True, default="")
    state = models.JSONField(default=dict, blank=True)
    revision = models.PositiveIntegerField(default=0)  # +1 on every change
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "runs_session"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or str(self.id)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow_version = models.ForeignKey(
        WorkflowVersion, on_delete=models.PROTECT, related_name="runs"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    status = models.CharField(max_length=16, choices=choices(RunState), default=RunState.PENDING)
    inputs = models.JSONField(default=dict, blank=True)
    params = models.JSONField(default=dict, blank=True)
    # Per-node config overrides (seed-004 trigger bodies), merged into node configs.
    overrides = models.JSONField(default=dict, blank=True)
    session = models.ForeignKey(
        Session, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # A child run started by a `workflow` node records that node; its end completes it.
    parent_node = models.ForeignKey(
        "NodeRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_runs"
    )
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Triggered while its workflow was at max_concurrent_runs: PENDING until admitted.
    waiting_since = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        db_table = "runs_run"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "status"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"run {self.id} ({self.status})"

    @property
    def workflow_name(self) -> str:
        return self.workflow_version.workflow.name


class NodeRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="nodes")
    node_id = models.CharField(max_length=100)
    handler = models.CharField(max_length=100)
    state = models.CharField(max_length=16, choices=choices(NodeState), default=NodeState.PENDING)
    # Dependency counting: parents not yet finished, and how the finished ones ended.
    pending_parents = models.PositiveIntegerField(default=0)
    failed_parents = models.PositiveIntegerField(default=0)
    skipped_parents = models.PositiveIntegerField(default=0)
    # A message carries the token it was sent with; only the current token can claim.
    dispatch_token = models.CharField(max_length=32, blank=True, default="")
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    queue = models.CharField(max_length=100, default="default")
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)  # {"message", "type", "traceback"}
    attempts = models.JSONField(default=list, blank=True)  # history of finished attempts
    worker = models.CharField(max_length=200, blank=True, default="")
    worker_pid = models.PositiveIntegerField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)  # when a RETRYING node is sent again

    class Meta:
        db_table = "runs_noderun"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "node_id"], name="unique_node_per_run")
        ]
        indexes = [
            models.Index(fields=["run", "state"]),
            models.Index(fields=["state", "due_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.state})"


class RunEvent(models.Model):
    """Every transition and handler emission: history, dashboard feed and stream at once."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    ts = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=40)
    node_id = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "runs_runevent"
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"])]

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} {self.node_id}"


class Worker(models.Model):
    """A worker process's heartbeat row, written every few seconds while it lives."""

    hostname = models.CharField(max_length=200, unique=True)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=0)
    # Pids of the pool processes executing tasks: a node RUNNING in a pid not listed here
    # (a pool process killed) is lost even though the worker still heart-beats.
    pool_pids = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "runs_worker"
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


class QueueSlot(models.Model):
    """One row per limited queue: its lock serializes claims against TRELLIS_QUEUE_LIMITS."""

    name = models.CharField(max_length=100, primary_key=True)

    class Meta:
        db_table = "runs_queueslot"

    def __str__(self) -> str:
        return self.name
