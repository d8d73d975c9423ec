"""The workflow spec format: loading, validation and parsing (DESIGN.md section 2).

Pure package: no ORM, no broker. :func:`validate_spec` reports every problem of a document at
once, each as ``{"path": "$.dag.nodes[2].dependencies[0]", "message": "a sentence"}``;
:func:`parse_spec` turns a valid document into an immutable :class:`WorkflowSpec` with the
graph facts the scheduler needs (children, topological layers, output nodes, the node ids
each node's templates read).

A spec is a superset of the seed-004 format: every seed-004 document is valid as is.

Modules: :mod:`.model` (keys, limits, types, errors), :mod:`.checker` (validation and
parsing), :mod:`.documents` (text loading, hashing, overrides).
"""

from .checker import parse_spec, validate_spec
from .documents import apply_overrides, load_spec_text, spec_hash
from .model import TRIGGER_RULES, NodeSpec, SpecError, WorkflowSpec

__all__ = [
    "NodeSpec",
    "SpecError",
    "TRIGGER_RULES",
    "WorkflowSpec",
    "apply_overrides",
    "load_spec_text",
    "parse_spec",
    "spec_hash",
    "validate_spec",
]
