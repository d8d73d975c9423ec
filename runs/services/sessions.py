"""Sessions: JSON state shared by the runs started in them, updated atomically."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from ..models import Session


def session_state(session_id: Any) -> dict[str, Any]:
    return Session.objects.values_list("state", flat=True).get(pk=session_id)


def update_session(
    session_id: Any, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any]:
    """Read-modify-write under the row lock (SQLite: the IMMEDIATE transaction's write lock),
    so concurrent updates from several workers never lose one another's changes."""
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session_id)
        state = copy.deepcopy(session.state)
        changed = change(state)
        new_state = state if changed is None else changed
        if not isinstance(new_state, dict):
            raise TypeError("session state must stay a JSON object")
        if len(json.dumps(new_state)) > settings.TRELLIS_MAX_OUTPUT_BYTES:
            raise ValueError("session state is over TRELLIS_MAX_OUTPUT_BYTES")
        session.state = new_state
        session.revision += 1
        session.save(update_fields=["state", "revision", "updated_at"])
    return new_state
