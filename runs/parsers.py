"""Request body parsers for the API (the default for every DRF view, see settings)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from .rules.limits import check_depth


class LimitedJSONParser(JSONParser):
    """JSON bodies, refused with 400 when nested deeper than ``TRELLIS_MAX_JSON_DEPTH`` (a
    thousand nested brackets would otherwise end in a RecursionError somewhere later)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(
                "JSON parse error - the document is nested too deeply."
            ) from None
        try:
            check_depth(data, "the request body")
        except ValueError as exc:
            raise exceptions.ParseError(str(exc)) from None
        return data
