"""``manage.py docs_reference [--check] [--output DIR]``: write the reference pages under
``docs/reference/`` from the code (see :mod:`runs.management.reference`); with ``--check``,
write nothing and fail naming each page that no longer matches the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.management.reference.markdown import ReferenceGap
from runs.management.reference.pages import OUTPUT, build_pages, stale_pages, write_pages


class Command(BaseCommand):
    help = "Generate docs/reference/*.md from the code; --check fails when a page is stale."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit non-zero naming the pages that differ from the code",
        )
        parser.add_argument(
            "--output",
            type=Path,
            default=OUTPUT,
            metavar="DIR",
            help=f"where the pages are ({OUTPUT})",
        )

    def handle(self, *args: Any, check: bool, output: Path, **options: Any) -> None:
        try:
            pages = build_pages()
        except ReferenceGap as gap:
            raise CommandError(str(gap)) from None
        if check:
            stale = stale_pages(pages, output)
            if stale:
                raise CommandError(
                    f"stale reference pages in {output}: {', '.join(stale)}; "
                    "run `manage.py docs_reference` and commit the result."
                )
            self.stdout.write(f"{len(pages)} reference pages match the code.")
            return
        changed = write_pages(pages, output)
        for name in changed:
            self.stdout.write(f"wrote {output / name}" if name in pages else f"removed {name}")
        if not changed:
            self.stdout.write(f"{len(pages)} reference pages already match the code.")
