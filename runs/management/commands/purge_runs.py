"""``manage.py purge_runs --older-than 30d [--dry-run] [--batch-size N]``: delete finished runs
(COMPLETED, FAILED, CANCELLED) that ended before the cutoff, with their nodes and events, in
batches of short transactions. Sessions and runs related to a live run are kept (see
runs.retention)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.engine.retention import (
    DEFAULT_BATCH_SIZE,
    PurgeCounts,
    count_purgeable,
    parse_age,
    purge_batch,
)
from runs.store.writes import now


class Command(BaseCommand):
    help = "Delete finished runs older than --older-than (e.g. 30d, 12h), nodes and events too."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="age of the runs to delete: a number and a unit, s, m, h or d (30d, 12h)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"runs deleted per transaction ({DEFAULT_BATCH_SIZE})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            age = parse_age(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        cutoff = now() - age
        if options["dry_run"]:
            counts = count_purgeable(cutoff)
            self.stdout.write(f"would delete {counts} (finished before {cutoff.isoformat()})")
            return
        total = PurgeCounts()
        while (counts := purge_batch(cutoff, batch_size)).batches:
            total.add(counts)
            if options["verbosity"] >= 2:
                self.stdout.write(f"batch {total.batches}: deleted {counts}")
        self.stdout.write(
            f"deleted {total} in {total.batches} batches (finished before {cutoff.isoformat()})"
        )
