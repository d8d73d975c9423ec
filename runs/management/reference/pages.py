"""Every reference page, and writing or checking the files under ``docs/reference/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .api import api_page, openapi_document, seed_page
from .configuration import cli_page, settings_page
from .engine import events_page, handlers_page, spec_page
from .markdown import GENERATED, ROOT

OUTPUT = ROOT / "docs" / "reference"


def build_pages(document: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every reference page by file name."""
    document = document if document is not None else openapi_document()
    return {
        "api.md": api_page(document),
        "cli.md": cli_page(),
        "events.md": events_page(document),
        "handlers.md": handlers_page(),
        "seed-004.md": seed_page(document),
        "settings.md": settings_page(),
        "spec.md": spec_page(document),
    }


def stale_pages(pages: Mapping[str, str], directory: Path = OUTPUT) -> list[str]:
    """The pages whose file in ``directory`` is missing or differs, and generated-looking
    files there that no page produces."""
    stale = [
        name
        for name, content in sorted(pages.items())
        if not (directory / name).is_file() or (directory / name).read_text() != content
    ]
    leftovers = [
        path.name
        for path in sorted(directory.glob("*.md"))
        if path.name not in pages and path.read_text().startswith(GENERATED)
    ]
    return stale + leftovers


def write_pages(pages: Mapping[str, str], directory: Path = OUTPUT) -> list[str]:
    """Write the pages that changed; their names."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale_pages(pages, directory)
    for name in changed:
        if name in pages:
            (directory / name).write_text(pages[name])
        else:
            (directory / name).unlink()
    return changed
