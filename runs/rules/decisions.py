"""Per-transition decisions: facts in, the target out. Pure (no ORM, no broker, no settings)."""

from __future__ import annotations

import random

from .states import NodeState, RunState

RUN, SKIP, UPSTREAM_FAILED = "run", "skip", "upstream_failed"


def decide(trigger_rule: str, failed_parents: int, skipped_parents: int) -> str:
    """What a node becomes once every parent has finished.

    - ``all_success``: runs if every parent COMPLETED; any failed parent ⇒ UPSTREAM_FAILED;
      otherwise (some parent skipped) the node is SKIPPED too, as in Airflow.
    - ``none_failed``: runs unless a parent failed (skipped parents are fine) — joins after
      a ``when`` branch.
    - ``all_done``: runs whatever the parents did (clean-up steps).
    """
    if trigger_rule == "all_done":
        return RUN
    if failed_parents:
        return UPSTREAM_FAILED
    if trigger_rule == "none_failed" or not skipped_parents:
        return RUN
    return SKIP


def backoff_delay(backoff: float, attempt: int, *, cap: float, jitter: float = 0.25) -> float:
    """``backoff · 2^(attempt-1)`` seconds, capped, with ±``jitter`` proportional noise."""
    base = min(cap, backoff * (2 ** max(0, attempt - 1)))
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def may_continue(
    *,
    hops: int,
    max_hops: int,
    elapsed: float,
    limits: tuple[float | None, float | None],
    timeout: float,
    grace: float,
) -> bool:
    """May a task that has run ``hops`` nodes after its first, ``elapsed`` seconds since it
    began, run one more node (``timeout``) itself instead of sending it through the broker?

    Only while the task's own time limits (``(hard, soft)`` as its message carries them,
    counted from its start) still leave that node its whole timeout, and the hard limit its
    ``grace`` on top: the node must never be cut short by a limit that was not its own."""
    if hops >= max_hops:
        return False
    hard, soft = limits
    if soft is not None and soft - elapsed < timeout:
        return False
    return hard is None or hard - elapsed >= timeout + grace


def attempt_outcome(succeeded: bool, *, retryable: bool, attempt: int, max_attempts: int) -> str:
    """What a finished attempt makes of its node: COMPLETED, RETRYING while the failure is
    retryable and attempts are left, else FAILED."""
    if succeeded:
        return NodeState.COMPLETED
    if retryable and attempt < max_attempts:
        return NodeState.RETRYING
    return NodeState.FAILED


# --------------------------------------------------------------------------------------
# Policies consulted at a transition, and the sentences that say why something waits


def may_start(active_runs: int, limit: int | None) -> bool:
    """``max_concurrent_runs``: may one more run of the workflow start (RUNNING or PAUSED
    runs hold a slot)?"""
    return not limit or active_runs < limit


def queue_has_room(running: int, limit: int | None) -> bool:
    """``TRELLIS_QUEUE_LIMITS``: may one more node of the queue start?"""
    return not limit or running < limit


def ready_state(run_status: str) -> str:
    """Where a node goes once it may run: QUEUED, or READY while its run is paused (resume
    queues it)."""
    return NodeState.READY if run_status == RunState.PAUSED else NodeState.QUEUED


def slot_wait_reason(workflow: str, limit: int) -> str:
    """Why a triggered run is still PENDING."""
    plural = "s" if limit != 1 else ""
    return (
        f"waiting for a slot: workflow {workflow!r} allows {limit} concurrent run{plural}"
        " (max_concurrent_runs)"
    )


def unserved_queue_reason(queue: str) -> str:
    """Why a QUEUED or READY node waits although nothing is wrong with it."""
    return (
        f"waits in queue {queue!r}, which no live worker serves "
        f"(start one with: celery -A orchestration worker -Q {queue})"
    )
