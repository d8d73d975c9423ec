"""`manage.py reconcile [--loop SECONDS]`: repair nodes left behind by crashes (see
runs.workers); the same pass the beat task runs."""

import time

from django.core.management.base import BaseCommand

from runs.engine.reconciler import reconcile


class Command(BaseCommand):
    help = "Re-send lost messages, re-queue nodes of dead workers, send due retries, expire waits."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, default=0, help="repeat every N seconds")

    def handle(self, *args, loop: float = 0, **options):
        while True:
            counts = reconcile()
            self.stdout.write(" ".join(f"{key}={value}" for key, value in counts.items()))
            if not loop:
                return
            time.sleep(loop)
