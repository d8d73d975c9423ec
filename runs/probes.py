"""``GET /health`` and ``GET /ready``: the probes of compose, Kubernetes and client scripts.

No credentials (a probe has none) and no request body. ``/health`` answers 200 while the
process serves (liveness: it touches nothing else); ``/ready`` answers 200 when the database
and Redis answer, else 503 in the error shape naming what is down (readiness).
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from .services.health import readiness
from .web import error_body


@require_safe
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    down = [name for name, result in checks.items() if result != "ok"]
    if not down:
        return JsonResponse({"status": "ready", "checks": checks})
    errors = [{"path": name, "message": checks[name]} for name in down]
    body = error_body(f"not ready: {' and '.join(down)} did not answer.", errors)
    return JsonResponse({**body, "checks": checks}, status=503)
