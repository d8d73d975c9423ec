"""A fix for kombu's Redis transport that every Trellis worker needs, applied when the worker
imports ``runs.tasks`` (standalone or in a host project's Celery app)."""

from __future__ import annotations

import logging

from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


def patch_kombu_detached_channel() -> None:
    """Keep the worker alive when Redis goes away with messages in flight.

    On a lost connection, kombu 5.7's Redis channel is detached from its transport, but the
    worker still restores, acknowledges or rejects messages through it (while closing, and
    when tasks started before the outage finish after the reconnect). Each of those raises
    AttributeError, which the worker treats as unrecoverable: it stops and never reconnects.
    A message that cannot be acknowledged that way stays in Redis's unacked index and comes
    back after the visibility timeout, where the node's dispatch token makes it a no-op;
    a message whose node never ran is re-sent by the reconciler. So these are logged and
    dropped, and the worker carries on with its new connection.
    """
    qos = kombu_redis.QoS
    if getattr(qos, "trellis_patched", False):
        return

    def tolerant(name: str):
        original = getattr(qos, name)

        def method(self, *args, **kwargs):
            try:
                return original(self, *args, **kwargs)
            except AttributeError:
                transport = self.channel.connection
                if transport is not None and transport.client is not None:
                    raise  # a real bug, not a detached channel
                logger.warning(
                    "%s skipped: the broker connection this message came on is gone; "
                    "Redis redelivers it after the visibility timeout",
                    name,
                )
                if name == "restore_unacked":
                    self._delivered.clear()
                return None

        method.__name__ = name
        return method

    for name in ("restore_unacked", "ack", "reject"):
        setattr(qos, name, tolerant(name))
    qos.trellis_patched = True
