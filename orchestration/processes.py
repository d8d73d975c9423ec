"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import os
import signal
import sys


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to SIGTERM this child if its parent dies without cleaning up (SIGKILL,
    a timeout): a worker left behind would otherwise take messages from the next server
    that reuses its Redis port."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


die_with_parent = _die_with_parent if sys.platform.startswith("linux") else None
