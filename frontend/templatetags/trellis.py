"""``{% load trellis %}``: the dashboard's formatting (``frontend.formatting``) as filters,
for templates that render the shapes of ``runs.services.shapes`` (ISO 8601 datetimes), and
the host's login page."""

from django import template
from django.conf import settings
from django.shortcuts import resolve_url
from django.urls import NoReverseMatch, reverse

from .. import formatting

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
