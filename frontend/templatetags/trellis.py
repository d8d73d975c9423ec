"""``{% load trellis %}``: the dashboard's formatting (``frontend.formatting``) as filters,
for templates that render the shapes of ``runs.services.shapes`` (ISO 8601 datetimes)."""

from django import template

from .. import formatting

register = template.Library()

register.filter("isodate", formatting.isodate)
register.filter("duration", formatting.duration)
register.filter("pretty_json", formatting.pretty_json)
