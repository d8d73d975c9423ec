import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import runs.rules.states


class Migration(migrations.Migration):
    """The whole schema under the app label `trellis` (it was `runs` until the app could be
    added to host projects). A database migrated under the old label has the three `runs`
    migrations recorded: this one then counts as applied and changes nothing."""

    initial = True
    replaces = [
        ("runs", "0001_initial"),
        ("runs", "0002_run_waiting_since"),
        ("runs", "0003_queue_slot"),
    ]

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="NodeRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("node_id", models.CharField(max_length=100)),
                ("handler", models.CharField(max_length=100)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("PENDING", "Pending"),
                            ("READY", "Ready"),
                            ("QUEUED", "Queued"),
                            ("RUNNING", "Running"),
                            ("RETRYING", "Retrying"),
                            ("WAITING", "Waiting"),
                            ("COMPLETED", "Completed"),
                            ("FAILED", "Failed"),
                            ("SKIPPED", "Skipped"),
                            ("UPSTREAM_FAILED", "Upstream Failed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        default=runs.rules.states.NodeState["PENDING"],
                        max_length=16,
                    ),
                ),
                ("pending_parents", models.PositiveIntegerField(default=0)),
                ("failed_parents", models.PositiveIntegerField(default=0)),
                ("skipped_parents", models.PositiveIntegerField(default=0)),
                ("dispatch_token", models.CharField(blank=True, default="", max_length=32)),
                ("attempt", models.PositiveIntegerField(default=0)),
                ("max_attempts", models.PositiveIntegerField(default=1)),
                ("queue", models.CharField(default="default", max_length=100)),
                ("output", models.JSONField(blank=True, null=True)),
                ("error", models.JSONField(blank=True, null=True)),
                ("attempts", models.JSONField(blank=True, default=list)),
                ("worker", models.CharField(blank=True, default="", max_length=200)),
                ("worker_pid", models.PositiveIntegerField(blank=True, null=True)),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("due_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "db_table": "runs_noderun",
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="QueueSlot",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
            ],
            options={
                "db_table": "runs_queueslot",
            },
        ),
        migrations.CreateModel(
            name="Worker",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hostname", models.CharField(max_length=200, unique=True)),
                ("pid", models.PositiveIntegerField()),
                ("queues", models.JSONField(blank=True, default=list)),
                ("concurrency", models.PositiveIntegerField(default=0)),
                ("pool_pids", models.JSONField(blank=True, default=list)),
                ("started_at", models.DateTimeField()),
                ("last_seen", models.DateTimeField(db_index=True)),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "db_table": "runs_worker",
                "ordering": ["hostname"],
            },
        ),
        migrations.CreateModel(
            name="Run",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("PENDING", "Pending"),
                            ("RUNNING", "Running"),
                            ("PAUSED", "Paused"),
                            ("COMPLETED", "Completed"),
                            ("FAILED", "Failed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        default=runs.rules.states.RunState["PENDING"],
                        max_length=16,
                    ),
                ),
                ("inputs", models.JSONField(blank=True, default=dict)),
                ("params", models.JSONField(blank=True, default=dict)),
                ("overrides", models.JSONField(blank=True, default=dict)),
                ("result", models.JSONField(blank=True, null=True)),
                ("error", models.TextField(blank=True, default="")),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("waiting_since", models.DateTimeField(blank=True, db_index=True, null=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="runs",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "parent_node",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="child_runs",
                        to="trellis.noderun",
                    ),
                ),
            ],
            options={
                "db_table": "runs_run",
                "ordering": ["-created_at"],
            },
        ),
        migrations.AddField(
            model_name="noderun",
            name="run",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="nodes", to="trellis.run"
            ),
        ),
        migrations.CreateModel(
            name="RunEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("ts", models.DateTimeField(auto_now_add=True)),
                ("kind", models.CharField(max_length=40)),
                ("node_id", models.CharField(blank=True, default="", max_length=100)),
                ("data", models.JSONField(blank=True, default=dict)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="trellis.run",
                    ),
                ),
            ],
            options={
                "db_table": "runs_runevent",
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="Session",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("name", models.CharField(blank=True, default="", max_length=200)),
                ("state", models.JSONField(blank=True, default=dict)),
                ("revision", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="trellis_sessions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "runs_session",
                "ordering": ["-created_at"],
            },
        ),
        migrations.AddField(
            model_name="run",
            name="session",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="runs",
                to="trellis.session",
            ),
        ),
        migrations.CreateModel(
            name="Workflow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, unique=True)),
                ("description", models.TextField(blank=True, default="")),
                ("latest_version", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "owner",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="workflows",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "runs_workflow",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="WorkflowVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("version", models.PositiveIntegerField()),
                ("spec", models.JSONField()),
                ("spec_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="trellis.workflow",
                    ),
                ),
            ],
            options={
                "db_table": "runs_workflowversion",
                "ordering": ["workflow", "-version"],
            },
        ),
        migrations.AddField(
            model_name="run",
            name="workflow_version",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="trellis.workflowversion",
            ),
        ),
        migrations.AddIndex(
            model_name="noderun",
            index=models.Index(fields=["run", "state"], name="runs_noderu_run_id_43aa1b_idx"),
        ),
        migrations.AddIndex(
            model_name="noderun",
            index=models.Index(fields=["state", "due_at"], name="runs_noderu_state_623130_idx"),
        ),
        migrations.AddConstraint(
            model_name="noderun",
            constraint=models.UniqueConstraint(
                fields=("run", "node_id"), name="unique_node_per_run"
            ),
        ),
        migrations.AddIndex(
            model_name="runevent",
            index=models.Index(fields=["run", "id"], name="runs_runeve_run_id_69c61a_idx"),
        ),
        migrations.AddConstraint(
            model_name="workflowversion",
            constraint=models.UniqueConstraint(
                fields=("workflow", "version"), name="unique_workflow_version"
            ),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["owner", "status"], name="runs_run_owner_i_873827_idx"),
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["status"], name="runs_run_status_a3d5f7_idx"),
        ),
    ]
