"""Dispatch: the engine's only contact with the broker.

Messages are sent by task name (the Celery adapters in runs.tasks register these names), so
the engine never imports its own tasks; ``current_app`` is the process's Celery app (the
standalone stack's, or a host project's)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import redis
from celery import current_app
from django.conf import settings

from ..rules.spec import NodeSpec

# The names runs.tasks registers (stable: messages already in a queue carry them).
EXECUTE_NODE = "trellis.execute_node"
SEND_DUE_RETRY = "trellis.send_due_retry"
EXPIRE_WAIT = "trellis.expire_wait"

# A hard time limit this long after the soft one: the soft limit raises inside the handler,
# the hard one kills a process that ignores it.
HARD_LIMIT_GRACE = 30


def new_token() -> str:
    return uuid.uuid4().hex


def message_id(node_pk: int, token: str) -> str:
    """The Celery task id of a node's message: derived, so cancel can revoke it."""
    return f"trellis-node-{node_pk}-{token}"


def continue_window() -> float:
    """Seconds of a task's time limits beyond its node's timeout, in which it may run
    further nodes (runs.engine.scheduler.Carry); 0 when workers never continue."""
    return settings.TRELLIS_CONTINUE_SECONDS if settings.TRELLIS_CONTINUE_HOPS else 0.0


def send_nodes(batch: list[tuple[int, str, NodeSpec]]) -> None:
    """Publish one execute message per node (called after the commit that queued them)."""
    window = continue_window()
    # One producer (and broker connection) for the batch, not one from the pool per message.
    with current_app.producer_or_acquire() as producer:
        for node_pk, token, node_spec in batch:
            current_app.send_task(
                EXECUTE_NODE,
                (node_pk, token),
                task_id=message_id(node_pk, token),
                queue=node_spec.queue,
                soft_time_limit=node_spec.timeout + window,
                time_limit=node_spec.timeout + HARD_LIMIT_GRACE + window,
                producer=producer,
                ignore_result=True,
            )


def send_retry(node_pk: int, token: str, delay: float) -> None:
    """Wake a RETRYING node when its backoff has passed."""
    current_app.send_task(SEND_DUE_RETRY, (node_pk, token), countdown=delay, ignore_result=True)


def send_wait_expiry(node_pk: int, token: str, delay: float) -> None:
    """Fail a WAITING node when its timeout is up (unless it was settled before)."""
    current_app.send_task(EXPIRE_WAIT, (node_pk, token), countdown=delay, ignore_result=True)


# kombu's Redis transport keeps a queue as one list per priority step: the queue's name for
# priority 0, ``<name>\x06\x16<step>`` for the others (kombu.transport.redis.Channel).
KOMBU_PRIORITY_SEP = "\x06\x16"


KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)


def _broker_client(timeout: float) -> redis.Redis:
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def broker_ping(timeout: float = 1.0) -> None:
    """Return when the broker's Redis answers a PING within ``timeout`` seconds; raise
    ``redis.RedisError`` (or ``OSError``) when it does not."""
    client = _broker_client(timeout)
    try:
        client.ping()
    finally:
        client.close()


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting in each queue: LLEN of its Redis lists (one per priority step),
    under the broker's ``global_keyprefix``, in one pipelined round trip."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    prefix = options.get("global_keyprefix") or ""
    steps = tuple(options.get("priority_steps") or KOMBU_PRIORITY_STEPS)
    ordered = sorted(queues)
    client = _broker_client(timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in ordered:
                for step in steps:
                    key = queue if not step else f"{queue}{KOMBU_PRIORITY_SEP}{step}"
                    pipe.llen(prefix + key)
            lengths = pipe.execute()
    finally:
        client.close()
    depths = {}
    for index, queue in enumerate(ordered):
        depths[queue] = sum(lengths[index * len(steps) : (index + 1) * len(steps)])
    return depths


def revoke(task_ids: list[str]) -> None:
    """Tell the workers to drop these messages (cancelled nodes that are still queued)."""
    current_app.control.revoke(task_ids)
