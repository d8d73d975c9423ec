"""tests.settings without an app Trellis needs, for the system check's test."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "drf_spectacular_sidecar"]  # noqa: F405
