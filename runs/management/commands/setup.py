"""``manage.py setup``: what the processes need before they start, once per deployment
(compose.yaml's migrate service): migrations, the first admin user and its API token, and
the example workflows. Idempotent: a second run changes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from .up import ensure_admin, import_examples


class Command(BaseCommand):
    help = "Migrate, create the first admin user and its API token, import the example workflows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-examples", action="store_true", help="do not import the example workflows"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))
        self.stdout.write("database migrated")
        account = ensure_admin()
        if account.password and os.environ.get("TRELLIS_ADMIN_PASSWORD"):
            self.stdout.write(
                f"admin user {account.username!r} created, password from TRELLIS_ADMIN_PASSWORD"
            )
        elif account.password:
            self.stdout.write(
                f"admin user {account.username!r} created, password {account.password}"
            )
        else:
            self.stdout.write(f"admin user {account.username!r} exists (password unchanged)")
        self.stdout.write(f"API token: {account.token}")
        if options["no_examples"]:
            return
        owner = get_user_model().objects.get(username=account.username)
        lines, problems = import_examples(Path(settings.TRELLIS_EXAMPLES_DIR), owner)
        for line in lines:
            self.stdout.write(f"example: {line}")
        for line in problems:
            self.stderr.write(f"example skipped: {line}")
