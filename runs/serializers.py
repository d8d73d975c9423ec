"""What the REST API reads and answers, as DRF serializers, and the run list's filters.

Request serializers (``RunStartSerializer``, ``EventSerializer``, the node actions' bodies,
``SessionCreateSerializer``, ``SessionPatchSerializer``) validate bodies in ``runs.api``. The
response serializers only *describe* bodies for the OpenAPI document: the views answer with
the one shape of each object from ``runs.services.shapes`` (and ``runs.api``'s workflow and
version views), and ``tests/test_openapi.py`` checks live answers against these
descriptions, so a field added there and not here (or the other way round) fails a test.

The run list's filters are a django-filter ``FilterSet`` (``RunFilter``), so that they are
listed as query parameters of the list; a bad value keeps its own sentence and answers 400 in
the error shape with the parameter's name as its path (``filter_errors``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Run
from .rules.seed import FINAL_STATUS, SEED_STATES
from .rules.spec.model import TRIGGER_RULES
from .rules.states import NODE_STATES, RUN_STATES
from .services.runs import REJECT_REASON_MAX, needing_input

# --------------------------------------------------------------------------------------
# Vocabularies: one named component each, wherever a field carries it


def _vocabulary(name: str, words: tuple[str, ...], description: str) -> type:
    """A choice field of ``words`` that the document shows as the component ``name``."""

    @extend_schema_field(
        {"type": "string", "enum": list(words), "description": description}, component_name=name
    )
    class VocabularyField(serializers.ChoiceField):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(choices=words, **kwargs)

    VocabularyField.__name__ = f"{name}Field"
    return VocabularyField


RunStatusField = _vocabulary("RunStatus", RUN_STATES, "A run's status.")
NodeStateField = _vocabulary("NodeState", NODE_STATES, "A node's state.")
SeedStateField = _vocabulary(
    "SeedState", SEED_STATES, "The seed-004 routes' closed vocabulary of states."
)

# --------------------------------------------------------------------------------------
# Errors


class ErrorItemSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="where: a JSON path (`$.dag.nodes[0].id`) or a name")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error response: a sentence, and each problem with its path."""

    error = serializers.CharField()
    errors = ErrorItemSerializer(many=True)


class ConflictSerializer(ErrorSerializer):
    """409: an illegal transition, with the state the run or node is in now."""

    current = serializers.CharField(help_text="the run's or node's state now")


# --------------------------------------------------------------------------------------
# Workflow documents (DESIGN §2); the spec checker validates them, these describe them


class SpecNodeSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    handler = serializers.CharField()
    dependencies = serializers.ListField(child=serializers.CharField(), required=False)
    config = serializers.DictField(
        required=False, allow_null=True, help_text="the handler's config; templates allowed"
    )
    retries = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    backoff = serializers.FloatField(required=False, allow_null=True, min_value=0)
    timeout = serializers.FloatField(required=False, allow_null=True, help_text="seconds")
    queue = serializers.CharField(required=False, allow_null=True)
    when = serializers.CharField(
        required=False, allow_null=True, help_text="a template; false-y skips the node"
    )
    map = serializers.CharField(
        required=False, allow_null=True, help_text="a template yielding the list to map over"
    )
    trigger_rule = serializers.ChoiceField(choices=TRIGGER_RULES, required=False, allow_null=True)
    description = serializers.CharField(required=False, allow_null=True)


class SpecDagSerializer(serializers.Serializer):
    nodes = SpecNodeSerializer(many=True)


class WorkflowSpecSerializer(serializers.Serializer):
    """A workflow document (JSON, or YAML as `application/yaml` or `text/yaml`)."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_null=True)
    inputs = serializers.DictField(
        required=False, allow_null=True, help_text="a JSON Schema for the run inputs"
    )
    defaults = serializers.DictField(required=False, allow_null=True)
    schedule = serializers.CharField(required=False, allow_null=True, help_text="a cron line")
    max_concurrent_runs = serializers.IntegerField(required=False, allow_null=True)
    dag = SpecDagSerializer()


# --------------------------------------------------------------------------------------
# Workflows


class WorkflowSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    latest_version = serializers.IntegerField()
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WorkflowDetailSerializer(WorkflowSerializer):
    spec = WorkflowSpecSerializer(help_text="the latest version's document")


class WorkflowVersionSummarySerializer(serializers.Serializer):
    workflow = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)


class WorkflowVersionSerializer(WorkflowVersionSummarySerializer):
    spec = WorkflowSpecSerializer()


class WorkflowVersionListSerializer(serializers.Serializer):
    results = WorkflowVersionSummarySerializer(many=True, help_text="newest first")


class WorkflowSavedSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    created = serializers.BooleanField(help_text="false when the spec equals the latest version")


class ValidationResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = ErrorItemSerializer(many=True)
    plan = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="node ids by layer (empty when invalid)",
    )


# --------------------------------------------------------------------------------------
# Runs, nodes and events (runs.services.shapes)


class RunStartSerializer(serializers.Serializer):
    workflow = serializers.CharField(max_length=200)
    session = serializers.UUIDField(required=False, allow_null=True)
    version = serializers.IntegerField(required=False, min_value=1)
    inputs = serializers.JSONField(required=False, default=dict)
    params = serializers.DictField(required=False, default=dict)
    overrides = serializers.DictField(required=False, default=dict)
    wait = serializers.BooleanField(required=False, default=False)
    timeout = serializers.FloatField(required=False, default=30.0, min_value=0, max_value=300)


class NodeSerializer(serializers.Serializer):
    id = serializers.CharField()
    handler = serializers.CharField()
    state = NodeStateField()
    attempt = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    queue = serializers.CharField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True, help_text="`{message, type, traceback}`")
    attempts = serializers.ListField(child=serializers.JSONField(), help_text="finished attempts")
    worker = serializers.CharField(allow_blank=True)
    queued_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    warning = serializers.CharField(allow_null=True, help_text="why it waits unserved")


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    workflow = serializers.CharField()
    version = serializers.IntegerField()
    status = RunStatusField()
    owner = serializers.CharField(allow_null=True)
    inputs = serializers.JSONField()
    params = serializers.DictField()
    session = serializers.UUIDField(allow_null=True)
    parent_node = serializers.IntegerField(allow_null=True, help_text="a child run's parent")
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    waiting = serializers.CharField(allow_null=True, help_text="why a PENDING run waits")
    needs_input = serializers.BooleanField(
        help_text="RUNNING with a WAITING node: a person is asked for something"
    )


class RunDetailSerializer(RunSerializer):
    nodes = NodeSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())
    result = serializers.JSONField(allow_null=True)


class RunResultSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = RunStatusField()
    completed = serializers.BooleanField(help_text="the run is finished")
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class EventSerializer(serializers.Serializer):
    node = serializers.CharField(max_length=100)
    data = serializers.JSONField(
        required=False, default=dict, help_text="completes the node with this output"
    )
    reject = serializers.CharField(
        required=False,
        max_length=REJECT_REASON_MAX,
        help_text="instead of `data`: fail the node with this reason (error type `Rejected`)",
    )

    def validate_reject(self, value: str) -> str:
        # CharField would take 5 as "5"; a reason is text a person wrote.
        if not isinstance(self.initial_data.get("reject"), str):
            raise serializers.ValidationError("a rejection's reason must be a string")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "reject" in attrs and "data" in self.initial_data:
            raise serializers.ValidationError({"reject": ["send either data or reject, not both"]})
        return attrs


class NodeClearSerializer(serializers.Serializer):
    downstream = serializers.BooleanField(
        required=False, default=True, help_text="also run every node below it again"
    )


class NodeMarkSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["COMPLETED", "FAILED"])
    output = serializers.JSONField(
        required=False, allow_null=True, default=None, help_text="COMPLETED: the node's output"
    )
    reason = serializers.CharField(
        required=False, max_length=2000, help_text="FAILED: why (the node's error message)"
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["state"] == "FAILED" and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": ["a FAILED mark needs a reason"]})
        if attrs["state"] == "COMPLETED" and "reason" in attrs:
            raise serializers.ValidationError({"reason": ["a COMPLETED mark takes an output"]})
        if attrs["state"] == "FAILED" and attrs.get("output") is not None:
            raise serializers.ValidationError({"output": ["a FAILED mark takes a reason"]})
        return attrs


class NodeSkipSerializer(serializers.Serializer):
    """No fields: the body may be empty."""


class RunEventSerializer(serializers.Serializer):
    """One event: in the history, in each SSE `data:` line and on the WebSockets."""

    id = serializers.IntegerField(help_text="global, increasing: the resume point")
    run = serializers.UUIDField()
    ts = serializers.DateTimeField(allow_null=True)
    kind = serializers.CharField(help_text="`run.status`, `node.status`, `run.result`, …")
    node = serializers.CharField(allow_blank=True, help_text="the node id, or empty")
    data = serializers.JSONField()


class RunEventListSerializer(serializers.Serializer):
    results = RunEventSerializer(many=True)


class EventDeliveredSerializer(serializers.Serializer):
    node = serializers.CharField()
    state = NodeStateField()


# --------------------------------------------------------------------------------------
# Sessions and workers


class SessionCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    state = serializers.DictField(required=False, default=dict)


class SessionPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    state = serializers.DictField(required=False, help_text="keys merged into the state")
    replace = serializers.BooleanField(
        required=False, default=False, help_text="replace the state instead of merging"
    )


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField(allow_blank=True)
    state = serializers.DictField()
    revision = serializers.IntegerField(help_text="+1 on every change")
    owner = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SessionListSerializer(serializers.Serializer):
    results = SessionSerializer(many=True)


class WorkerSerializer(serializers.Serializer):
    hostname = serializers.CharField()
    pid = serializers.IntegerField()
    queues = serializers.ListField(child=serializers.CharField())
    concurrency = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    liveness = serializers.ChoiceField(choices=["alive", "stale", "dead"])
    nodes_running = serializers.IntegerField()


class QueueLimitSerializer(serializers.Serializer):
    queue = serializers.CharField()
    limit = serializers.IntegerField()
    running = serializers.IntegerField()
    queued = serializers.IntegerField()


class WorkerListSerializer(serializers.Serializer):
    results = WorkerSerializer(many=True)
    queue_limits = QueueLimitSerializer(many=True)


# --------------------------------------------------------------------------------------
# Seed-004 routes (runs.services.seed): the seed's closed vocabulary, Trellis's beside it


class SeedExecutionSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    status = SeedStateField()
    warnings = ErrorItemSerializer(many=True, help_text="config keys ignored, with their path")


class SeedNodeSerializer(serializers.Serializer):
    state = SeedStateField()
    output = serializers.JSONField(help_text="`{}` until it has one; `{error, type?}` if failed")
    trellis_state = NodeStateField()


class SeedStatusSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    status = SeedStateField()
    trellis_status = RunStatusField()
    nodes = serializers.DictField(child=SeedNodeSerializer(), help_text="by node id")


class SeedOutcomeSerializer(serializers.Serializer):
    """Empty until the run ends."""

    final_status = serializers.ChoiceField(
        choices=sorted(set(FINAL_STATUS.values())), required=False
    )
    aggregated_results = serializers.DictField(
        child=serializers.JSONField(), required=False, help_text="outputs by node id"
    )
    error = serializers.CharField(required=False, help_text="when it did not complete")
    failed_nodes = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="each failed node's reason"
    )


class SeedResultsSerializer(serializers.Serializer):
    execution_id = serializers.UUIDField()
    status = SeedStateField()
    trellis_status = RunStatusField()
    completed = serializers.BooleanField()
    results = SeedOutcomeSerializer()
    message = serializers.CharField()


# --------------------------------------------------------------------------------------
# Run list filters


def utc_moment(value: str) -> datetime | None:
    """An ISO 8601 date-time in UTC (PostgreSQL refuses offsets beyond ±15:59), or None."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            return None
        if is_naive(moment):
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


class UtcDateTimeField(forms.Field):
    """An ISO 8601 date-time, naive ones read as UTC (see :func:`utc_moment`)."""

    default_error_messages = {"invalid": "not an ISO 8601 date-time"}

    def to_python(self, value: Any) -> datetime | None:
        if value in self.empty_values:
            return None
        moment = utc_moment(str(value))
        if moment is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return moment


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class StrictBooleanField(forms.Field):
    """``true`` / ``false`` (or ``1`` / ``0``); anything else is an error, not "no filter"
    (Django's NullBooleanField reads an unknown value as None)."""

    default_error_messages = {"invalid": "not a boolean (true or false)"}
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        if str(value).lower() not in self.VALUES:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return self.VALUES[str(value).lower()]


NEEDS_INPUT_HELP = "true: RUNNING runs with a WAITING node (a person is asked); false: the others"


# drf-spectacular reads a method filter's type from the method; this one is a boolean.
@extend_schema_field({"type": "boolean", "description": NEEDS_INPUT_HELP})
class NeedsInputFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class RunFilter(django_filters.FilterSet):
    """``GET /api/v1/runs/``'s filters; an empty value filters nothing."""

    status = django_filters.ChoiceFilter(
        choices=[(state, state) for state in RUN_STATES],
        error_messages={"invalid_choice": "unknown status %(value)r"},
    )
    workflow = django_filters.CharFilter(
        field_name="workflow_version__workflow__name", help_text="the workflow's name"
    )
    session = django_filters.UUIDFilter(
        field_name="session_id", error_messages={"invalid": "not a session id"}
    )
    created_after = UtcDateTimeFilter(
        field_name="created_at", lookup_expr="gt", help_text="runs created after this moment"
    )
    needs_input = NeedsInputFilter(method="filter_needs_input", help_text=NEEDS_INPUT_HELP)

    class Meta:
        model = Run
        fields = ["status", "workflow", "session", "created_after", "needs_input"]

    def filter_needs_input(self, runs, name: str, value: bool | None):
        if value is None:
            return runs
        waiting = needing_input(runs)
        return waiting if value else runs.exclude(pk__in=waiting.values("pk"))


def filter_errors(filterset: django_filters.FilterSet) -> list[dict[str, str]]:
    """A filterset's errors as ``[{path: parameter, message}]``, in the filters' order."""
    return [
        {"path": name, "message": str(message)}
        for name, messages in filterset.errors.items()
        for message in messages
    ]
