"""The DAG picture: nodes placed in columns by topological layer (``spec.layers``), so every
edge reads left to right, ordered within each column to keep edges from crossing.

Pure: takes the layers and the dependencies, returns coordinates and SVG edge paths; the
templates draw them (``frontend/_dag.html``) and the run page's script colours them live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NODE_WIDTH = 176
NODE_HEIGHT = 54
COLUMN_GAP = 64
ROW_GAP = 16
PADDING = 12
LABEL_CHARS = 22  # characters of a node id that fit in a box
BAR_INSET = 14
SWEEPS = 4  # barycentre passes (down and up) to reduce crossings


@dataclass(frozen=True)
class PlacedNode:
    id: str
    handler: str
    layer: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    state: str = ""  # a NodeRun state on the run page, empty on the workflow page

    @property
    def label(self) -> str:
        """The id, shortened to fit its box (the full id is in the SVG title)."""
        return self.id if len(self.id) <= LABEL_CHARS else self.id[: LABEL_CHARS - 1] + "…"

    @property
    def centre_y(self) -> float:
        return self.y + self.height / 2

    @property
    def bar_width(self) -> float:
        """The progress bar's full width inside the box."""
        return self.width - 2 * BAR_INSET

    @property
    def bar_y(self) -> float:
        return self.height - 9


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    path: str  # an SVG path: a cubic curve from the source's right side to the target's left


@dataclass
class DagLayout:
    nodes: list[PlacedNode] = field(default_factory=list)
    edges: list[PlacedEdge] = field(default_factory=list)
    width: float = 0
    height: float = 0


def order_layers(
    layers: Sequence[Sequence[str]], dependencies: Mapping[str, Sequence[str]]
) -> list[list[str]]:
    """Reorder each layer by the mean position of its neighbours (barycentre heuristic),
    sweeping down (by parents) and up (by children). Ties keep document order."""
    ordered = [list(layer) for layer in layers]
    children: dict[str, list[str]] = {node: [] for layer in ordered for node in layer}
    for node, parents in dependencies.items():
        for parent in parents:
            children.setdefault(parent, []).append(node)

    def position() -> dict[str, float]:
        return {node: index for layer in ordered for index, node in enumerate(layer)}

    def barycentre(pos: dict[str, float], neighbours, index: int, node: str) -> float:
        linked = [pos[n] for n in neighbours.get(node, ()) if n in pos]
        return sum(linked) / len(linked) if linked else float(index)

    def sweep(indices: range, neighbours: Mapping[str, Sequence[str]]) -> None:
        for i in indices:
            pos = position()
            keyed = [
                (barycentre(pos, neighbours, index, node), index, node)
                for index, node in enumerate(ordered[i])
            ]
            ordered[i] = [node for _, _, node in sorted(keyed)]

    for _ in range(SWEEPS):
        sweep(range(1, len(ordered)), dependencies)
        sweep(range(len(ordered) - 2, -1, -1), children)
    return ordered


def layout(
    layers: Sequence[Sequence[str]],
    dependencies: Mapping[str, Sequence[str]],
    handlers: Mapping[str, str],
) -> DagLayout:
    """Coordinates for every node and a path for every edge."""
    ordered = order_layers(layers, dependencies)
    if not ordered:
        return DagLayout()
    tallest = max(len(layer) for layer in ordered)
    height = tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP + 2 * PADDING
    width = len(ordered) * NODE_WIDTH + (len(ordered) - 1) * COLUMN_GAP + 2 * PADDING
    placed: dict[str, PlacedNode] = {}
    for depth, layer in enumerate(ordered):
        column = len(layer) * NODE_HEIGHT + (len(layer) - 1) * ROW_GAP
        top = (height - column) / 2
        x = PADDING + depth * (NODE_WIDTH + COLUMN_GAP)
        for row, node_id in enumerate(layer):
            y = top + row * (NODE_HEIGHT + ROW_GAP)
            placed[node_id] = PlacedNode(node_id, handlers.get(node_id, ""), depth, x, y)
    edges = []
    for node_id, parents in dependencies.items():
        target = placed.get(node_id)
        for parent in parents:
            source = placed.get(parent)
            if source is None or target is None:
                continue
            edges.append(PlacedEdge(parent, node_id, edge_path(source, target)))
    nodes = [placed[node_id] for layer in ordered for node_id in layer]
    return DagLayout(nodes=nodes, edges=edges, width=width, height=height)


def edge_path(source: PlacedNode, target: PlacedNode) -> str:
    """A smooth curve leaving the source's right side and entering the target's left."""
    x1, y1 = source.x + source.width, source.centre_y
    x2, y2 = target.x, target.centre_y
    bend = max(24.0, (x2 - x1) / 2)
    return (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )


def layout_for_spec(spec) -> DagLayout:
    """The layout of a parsed ``WorkflowSpec``."""
    return layout(
        spec.layers,
        {node_id: node.dependencies for node_id, node in spec.nodes.items()},
        {node_id: node.handler for node_id, node in spec.nodes.items()},
    )
