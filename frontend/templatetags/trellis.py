"""``{% load trellis %}``: the dashboard's formatting (``frontend.formatting``) as filters,
for templates that render the shapes of ``runs.services.shapes`` (ISO 8601 datetimes), and
the host's login page."""

from django import template
from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse

from runs.services.runs import needing_input, visible_runs

from .. import formatting
from ..markdown import render_markdown

register = template.Library()

register.filter("isodate", formatting.isodate)
register.filter("duration", formatting.duration)
register.filter("pretty_json", formatting.pretty_json)


@register.simple_tag
def login_url() -> str:
    """The host's ``login`` route, else ``settings.LOGIN_URL`` (a path or a route name): a
    host that mounts Trellis need not name its login view as ``django.contrib.auth.urls``
    does."""
    try:
        return reverse("login")
    except NoReverseMatch:
        return resolve_url(settings.LOGIN_URL)


register.filter("markdown", render_markdown)


@register.simple_tag(takes_context=True)
def needs_input_count(context) -> int:
    """How many runs the signed-in user may see wait for a person (the navigation's badge)."""
    user = getattr(context.get("request"), "user", None)
    if user is None or not user.is_authenticated:
        return 0
    return needing_input(visible_runs(user)).count()
