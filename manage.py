#!/usr/bin/env python
"""Django's command-line utility for Trellis."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestration.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from runs.ops.embedded_redis import ensure_for_settings

    ensure_for_settings(settings)  # without REDIS_URL, start (or find) the embedded Valkey
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
