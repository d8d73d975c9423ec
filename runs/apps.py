from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Trellis runs"

    def ready(self) -> None:
        # Tasks outside runs.tasks (which Celery autodiscovers) register here, so every
        # worker knows them.
        from . import retention  # noqa: F401
