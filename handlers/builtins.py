"""Imports every built-in handler module so that each registers itself."""

from . import http, input, llm, output, python, wait_for_event, workflow  # noqa: F401
