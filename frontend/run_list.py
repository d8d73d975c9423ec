"""The dashboard's runs list: every run the user may see, a page at a time, filtered by
status, workflow, session, "needs input", a search (run id or input text) and a date range,
kept live by the runs socket.

Dates in the filters are UTC days (``from`` from 00:00, ``to`` up to 24:00); the page says so.
Times are written as ``<time datetime=ISO>`` with UTC text; the page's script shows them in
the browser's zone, with the zone's name.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from runs.rules.states import RUN_CONTROLS, RUN_STATES
from runs.services.runs import needing_input, visible_runs, visible_workflows, with_needs_input
from runs.services.shapes import run_view

from .views import URL_HOLE, last_event_id, socket_url, url_template

PAGE_SIZE = 50
NEEDS_INPUT_IDS = 1000  # ids of runs needing input sent to the page (the live count)
_ID_PREFIX = re.compile(r"^[0-9a-f]{4,32}$")
FILTERS = ("status", "workflow", "session", "needs_input", "q", "from", "to")


def _day(text: str) -> datetime | None:
    try:
        return datetime.combine(datetime.strptime(text, "%Y-%m-%d").date(), time(), tzinfo=UTC)
    except ValueError:
        return None


def _search(runs, text: str):
    """Runs whose id is ``text`` (or starts with it: the list shows 8 characters), or whose
    inputs contain it (case-insensitive, in their JSON text)."""
    matches = Q(inputs_text__icontains=text)
    try:
        matches |= Q(pk=uuid.UUID(text))
    except ValueError:
        compact = text.lower().replace("-", "")
        if _ID_PREFIX.match(compact):
            matches |= Q(id_text__startswith=compact)
    return runs.annotate(
        inputs_text=Cast("inputs", TextField()),
        id_text=Cast("id", TextField()),
    ).filter(matches)


def filtered_runs(user, params) -> tuple[Any, dict[str, str], list[str]]:
    """The runs ``user`` may see that match the list's filters; the filters as read, and a
    sentence for each value that could not be used (it filters nothing)."""
    runs = with_needs_input(visible_runs(user).select_related("owner"))
    filters = {name: params.get(name, "").strip() for name in FILTERS}
    problems = []
    if filters["status"] and filters["status"] not in RUN_STATES:
        problems.append(f"unknown status {filters['status']!r}")
        filters["status"] = ""
    if filters["status"]:
        runs = runs.filter(status=filters["status"])
    if filters["workflow"]:
        runs = runs.filter(workflow_version__workflow__name=filters["workflow"])
    if filters["session"]:
        try:
            runs = runs.filter(session_id=uuid.UUID(filters["session"]))
        except ValueError:
            runs = runs.none()  # not a session id: no run has it
    if filters["needs_input"] in ("true", "1"):
        filters["needs_input"] = "true"
        runs = needing_input(runs)
    else:
        filters["needs_input"] = ""
    if filters["q"]:
        runs = _search(runs, filters["q"])
    for name, lookup, shift in (("from", "gte", 0), ("to", "lt", 1)):
        if not filters[name]:
            continue
        day = _day(filters[name])
        if day is None:
            problems.append(f"{name}: not a date (YYYY-MM-DD)")
            filters[name] = ""
            continue
        runs = runs.filter(**{f"created_at__{lookup}": day + timedelta(days=shift)})
    return runs, filters, problems


@login_required
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    """The runs visible to the user, newest first, a page at a time; kept live by the runs
    socket from the event id read before the rows."""
    cursor = last_event_id()  # before the rows: a change in between is replayed, not lost
    runs, filters, problems = filtered_runs(request.user, request.GET)
    paginator = Paginator(runs.order_by("-created_at", "-id"), PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    rows = [run_view(run, row=True) for run in page.object_list]
    visible = visible_runs(request.user)
    counts = dict(visible.values_list("status").annotate(n=Count("id")).order_by())
    needing_ids = [
        str(pk) for pk in needing_input(visible).values_list("pk", flat=True)[:NEEDS_INPUT_IDS]
    ]
    cancellable = sorted(RUN_CONTROLS["cancel"][0])
    kept = {name: value for name, value in filters.items() if value}
    return render(
        request,
        "frontend/runs.html",
        {
            "runs": rows,
            "runs_page": page,
            "paginator": paginator,
            "query": urlencode(kept),
            "filters": filters,
            "filtered": bool(kept),
            "problems": problems,
            "statuses": RUN_STATES,
            "cancellable": cancellable,
            "counts": [(s, counts.get(s, 0)) for s in RUN_STATES],
            "total": sum(counts.values()),
            "workflow_names": list(
                visible_workflows(request.user).order_by("name").values_list("name", flat=True)
            ),
            "page_data": {
                "after": cursor,
                "filters": filters,
                "limit": PAGE_SIZE,
                # Live rows are added on the first page of an unsearched list only: whether
                # a new run matches a search or a date range is the server's to say.
                "live_rows": page.number == 1 and not (filters["q"] or filters["to"]),
                "needing": needing_ids,
                "cancellable": cancellable,
                "staff": request.user.is_staff,
                "urls": {
                    "runs": reverse("runs:runs"),
                    "socket": socket_url("runs/"),
                    "run": url_template("frontend:run", hole="id"),
                    "cancel": reverse("frontend:run-action", args=[URL_HOLE, "cancel"]).replace(
                        URL_HOLE, "{id}"
                    ),
                    "workflow": url_template("frontend:workflow", hole="name"),
                },
            },
        },
    )
