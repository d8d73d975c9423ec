"""Node handlers: the registry and the built-in handlers (one module each)."""
