from django.apps import AppConfig


class FrontendConfig(AppConfig):
    name = "frontend"
    label = "trellis_dashboard"  # not "frontend": a host project may have an app of that name
    verbose_name = "Trellis dashboard"
