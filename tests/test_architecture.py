"""The code's shape: no import cycle among the project's modules (imports inside functions
count), and no module over 800 lines. The layers themselves are import-linter contracts in
pyproject.toml, checked by `lint-imports` in .ci/run."""

from __future__ import annotations

from pathlib import Path

import grimp
import networkx as nx
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestration", "frontend", "runs", "handlers", "trellis_client")


def test_no_import_cycle_among_the_project_modules():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.split(".")[0] in PACKAGES:
                edges.add_edge(module, imported)
    # A package's __init__ importing its own submodules is not a cycle of the design; count
    # only edges between modules that are not each other's package.
    for module, imported in list(edges.edges):
        if imported.startswith(module + ".") or module.startswith(imported + "."):
            edges.remove_edge(module, imported)
    cycles = [sorted(c) for c in nx.strongly_connected_components(edges) if len(c) > 1]
    assert cycles == []


def test_no_module_over_800_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > 800
    }
    assert long == {}
