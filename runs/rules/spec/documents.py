"""Workflow documents as text and data: loading JSON or YAML, hashing, trigger overrides."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

from ..config import setting
from .checker import validate_spec
from .model import SpecError, _clip, _Errors, _key_path

__all__ = ["apply_overrides", "load_spec_text", "spec_hash"]

_MAX_LOADED_VALUES = 1_000_000  # YAML aliases can expand a small file into a huge tree


def _count_values(doc: Any, budget: int) -> bool:
    """Whether the document has at most ``budget`` values (stops counting past it)."""
    stack = [doc]
    count = 0
    while stack:
        current = stack.pop()
        count += 1
        if count > budget:
            return False
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return True


class _SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml.safe_load's loader (the C one when available)."""


def load_spec_text(text: str | bytes) -> Any:
    """Parse a JSON or YAML workflow document; the result still needs :func:`validate_spec`.

    Raises :class:`SpecError` (path ``$``) for text over ``TRELLIS_MAX_SPEC_BYTES``, invalid
    UTF-8, or a document that is neither JSON nor YAML.
    """
    limit = int(setting("TRELLIS_MAX_SPEC_BYTES"))

    def fail(message: str) -> SpecError:
        return SpecError([{"path": "$", "message": _clip(message)}])

    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        if len(data) > limit:
            raise fail(f"the spec is {len(data)} bytes, more than the limit of {limit}.")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise fail(f"the spec is not valid UTF-8 (byte {exc.start}).") from None
    elif not isinstance(text, str):
        raise fail("the spec must be text.")
    elif len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise fail(f"the spec is larger than the limit of {limit} bytes.")
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise fail("the spec is empty.")
    looks_like_json = text.lstrip()[:1] in ("{", "[")
    try:
        return json.loads(text)
    except RecursionError:
        raise fail("the spec is nested too deeply.") from None
    except ValueError as exc:
        json_error = exc
    try:
        doc = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        if looks_like_json:
            raise fail(f"the spec is not valid JSON: {json_error}.") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise fail(f"the spec is not valid YAML{where}: {problem}.") from None
    except RecursionError:
        raise fail("the spec is nested too deeply.") from None
    if not _count_values(doc, _MAX_LOADED_VALUES):
        raise fail("the spec expands to too many values (are YAML aliases repeating data?).")
    try:  # YAML-only types (dates, sets, non-string keys) become their JSON forms
        return json.loads(json.dumps(doc, default=str))
    except (TypeError, ValueError, RecursionError) as exc:
        raise fail(f"the spec contains values that are not JSON data: {exc}.") from None


def spec_hash(doc: Any) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, compact separators)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def apply_overrides(doc: dict[str, Any], overrides: Any) -> dict[str, Any]:
    """Merge a seed-004 trigger body ``{node_id: {config keys}}`` into a copy of ``doc``.

    Each node's config is updated key by key (shallow). The input is not modified. Raises
    :class:`SpecError` for unknown node ids or non-object values (path ``$.<node_id>``), and
    with the validation errors if the merged document is invalid.
    """
    dag = doc.get("dag") if isinstance(doc, dict) else None
    if not isinstance(dag, dict) or not isinstance(dag.get("nodes"), list):
        raise SpecError(validate_spec(doc))
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, Mapping):
        raise SpecError(
            [{"path": "$", "message": "overrides must be an object of node ids to config values."}]
        )
    nodes: list[Any] = list(dag["nodes"])
    positions: dict[Any, int] = {}
    for i, item in enumerate(nodes):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            positions.setdefault(item["id"], i)
    problems = _Errors()
    for node_id, values in overrides.items():
        path = _key_path("$", node_id)
        if node_id not in positions:
            problems.add(path, f"there is no node {str(node_id)!r} to override.")
        elif not isinstance(values, Mapping):
            problems.add(
                path, f"the override for node {node_id!r} must be an object of config values."
            )
    if problems:
        raise SpecError(list(problems))
    for node_id, values in overrides.items():
        i = positions[node_id]
        node = dict(nodes[i])
        current = node.get("config")
        node["config"] = {**current, **values} if isinstance(current, dict) else dict(values)
        nodes[i] = node
    merged = {**doc, "dag": {**dag, "nodes": nodes}}
    errors = validate_spec(merged)
    if errors:
        raise SpecError(errors)
    return merged
