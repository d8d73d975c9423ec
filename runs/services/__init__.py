"""The service layer: every adapter (API, dashboard, admin, consumers, commands, Celery
tasks) starts, controls and reads runs through these modules, never through the engine's
internals."""
