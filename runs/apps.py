from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from .checks import check_setup
from .rules.config import apply_defaults


class RunsConfig(AppConfig):
    name = "runs"
    # Not "runs": a host project may have an app of that name. Tables keep their runs_* names.
    label = "trellis"
    verbose_name = "Trellis runs"

    def ready(self) -> None:
        # A host project sets only the knobs it changes (runs.rules.config.KNOBS).
        apply_defaults(settings)
        checks.register(check_setup)
        # Every installed app's `workflows.py` (DESIGN §15), in web and worker processes
        # alike: its @python_functions must be registered wherever its nodes run, and its
        # Workflows register themselves for `manage.py workflow sync`.
        autodiscover_modules("workflows")
