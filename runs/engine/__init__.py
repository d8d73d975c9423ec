"""The engine: definitions (parsed specs, cached per process), the dependency-counting
scheduler, dispatch (sends Celery messages by task name, so nothing here imports the task
adapters), the policies consulted at a transition (admission, queue limits), the reconciler
and retention."""
