"""``python -m trellis_client``: the ``trellis`` command."""

from .cli import main

raise SystemExit(main())
