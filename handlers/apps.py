from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class HandlersConfig(AppConfig):
    name = "handlers"
    label = "trellis_handlers"  # not "handlers": a host project may have an app of that name
    verbose_name = "Trellis handlers"

    def ready(self) -> None:
        # Built-ins first, then every installed app's `handlers.py` (projects' own handlers
        # and registered python functions).
        from . import builtins  # noqa: F401

        autodiscover_modules("handlers")
