"""What the probes ask: is this process ready to serve, i.e. do the database and Redis answer?"""

from __future__ import annotations

import logging

from django.db import connection
from django.db.utils import Error as DatabaseError
from redis import RedisError

from ..engine.dispatch import broker_ping

logger = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def readiness() -> dict[str, str]:
    """``{"database": …, "redis": …}``, each ``"ok"`` or the sentence of what went wrong.

    One ``SELECT 1`` and one Redis ``PING`` (1 s timeout): cheap enough to be probed every few
    seconds. A failure is logged as a warning, since a probe's answer is seen by no one else.
    """
    checks: dict[str, str] = {}
    for name, check, errors in (
        ("database", _database, (DatabaseError,)),
        ("redis", broker_ping, (RedisError, OSError)),
    ):
        try:
            check()
        except errors as exc:
            checks[name] = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            logger.warning("readiness: %s does not answer: %s", name, exc)
        else:
            checks[name] = "ok"
    return checks
