"""HTML forms from JSON Schemas: the start-run form (a spec's ``inputs``) and the form of a
WAITING ``wait_for_event`` node (its ``schema``).

Pure: ``fields_for`` describes the inputs to draw, ``parse_form`` turns posted strings back into
JSON values (with an error per field it cannot parse), and ``place_errors`` files the engine's
validation errors (``{"path": "$.inputs.x", "message"}``) under the field they concern. The
schema's own validation stays in the engine (``runs.services.validated_inputs``): this module
only converts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_FIELD = "__json__"  # the one field of a schema without properties: the whole object
LONG_TEXT = 200  # strings allowed to be longer than this get a textarea
_REQUIRED = re.compile(r"^'(?P<name>[^']+)' is a required property$")


@dataclass
class FormField:
    name: str
    label: str
    kind: str  # text | textarea | integer | number | checkbox | select | json
    required: bool = False
    description: str = ""
    value: str = ""  # what the input shows
    checked: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)  # (posted value, label)
    attrs: dict[str, Any] = field(default_factory=dict)  # min, max, step, minlength, maxlength
    errors: list[str] = field(default_factory=list)

    @property
    def input_name(self) -> str:
        return f"input.{self.name}" if self.name != JSON_FIELD else JSON_FIELD


def _type_of(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind is None and "enum" not in prop:
        return "json"  # no type given: any JSON value
    return kind or "string"


def _properties(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        return {}
    props = schema.get("properties")
    return dict(props) if isinstance(props, Mapping) else {}


def fields_for(
    schema: Mapping[str, Any] | None,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, list[str]] | None = None,
) -> list[FormField]:
    """The fields of the form for ``schema``. ``values`` are what to show (the last posted
    strings, else the schema's defaults); ``errors`` maps field names to messages."""
    values = values or {}
    errors = errors or {}
    props = _properties(schema)
    if not props:
        shown = values.get(JSON_FIELD, "{}")
        return [
            FormField(
                JSON_FIELD,
                "Inputs (JSON object)",
                "json",
                value=shown,
                description=(
                    "This workflow's inputs have no declared properties: give a JSON object."
                ),
                errors=list(errors.get(JSON_FIELD, [])),
            )
        ]
    required = set(schema.get("required") or []) if isinstance(schema, Mapping) else set()
    out = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = _type_of(prop)
        item = FormField(
            name=name,
            label=str(prop.get("title") or name),
            kind=kind,
            required=name in required,
            description=str(prop.get("description") or ""),
            errors=list(errors.get(name, [])),
        )
        default = prop.get("default")
        if "enum" in prop:
            item.kind = "select"
            item.choices = [
                (json.dumps(v), v if isinstance(v, str) else json.dumps(v)) for v in prop["enum"]
            ]
            item.value = values.get(name, json.dumps(default) if "default" in prop else "")
        elif kind == "boolean":
            item.kind = "checkbox"
            item.checked = values[name] == "on" if name in values else bool(default)
        elif kind in ("integer", "number"):
            item.attrs = {
                k: prop[key]
                for key, k in (("minimum", "min"), ("maximum", "max"))
                if isinstance(prop.get(key), int | float)
            }
            item.attrs["step"] = 1 if kind == "integer" else "any"
            item.value = values.get(name, "" if default is None else str(default))
        elif kind == "string":
            long = prop.get("format") == "textarea" or (prop.get("maxLength") or 0) > LONG_TEXT
            item.kind = "textarea" if long else "text"
            item.attrs = {
                k: prop[key]
                for key, k in (("minLength", "minlength"), ("maxLength", "maxlength"))
                if isinstance(prop.get(key), int)
            }
            item.value = values.get(name, "" if default is None else str(default))
        else:  # object, array, anything else: JSON text
            item.kind = "json"
            item.value = values.get(
                name, "" if default is None else json.dumps(default, ensure_ascii=False)
            )
        out.append(item)
    return out


def parse_form(
    schema: Mapping[str, Any] | None, posted: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, str]]:
    """Posted strings → (JSON object, errors by field, the raw strings to show again).

    An empty optional input is left out (so the schema's default applies); an empty required
    one is left out too, so the engine reports it as missing.
    """
    props = _properties(schema)
    errors: dict[str, list[str]] = {}
    raw: dict[str, str] = {}
    if not props:
        text = posted.get(JSON_FIELD, "").strip() or "{}"
        raw[JSON_FIELD] = text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return {}, {JSON_FIELD: [f"Not valid JSON: {exc.msg} (line {exc.lineno})."]}, raw
        if not isinstance(value, dict):
            return {}, {JSON_FIELD: ['Give a JSON object, like {"key": "value"}.']}, raw
        return value, {}, raw
    data: dict[str, Any] = {}
    for name, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = _type_of(prop)
        key = f"input.{name}"
        if kind == "boolean" and "enum" not in prop:
            raw[name] = "on" if posted.get(key) else ""
            data[name] = bool(posted.get(key))
            continue
        text = posted.get(key, "")
        raw[name] = text
        if text.strip() == "":
            continue
        try:
            if "enum" in prop:
                data[name] = json.loads(text)
            elif kind == "integer":
                data[name] = int(text.strip())
            elif kind == "number":
                number = float(text.strip())
                data[name] = int(number) if number.is_integer() and "." not in text else number
            elif kind == "string":
                data[name] = text
            else:
                data[name] = json.loads(text)
        except (ValueError, json.JSONDecodeError):
            errors[name] = [
                {
                    "integer": "Enter a whole number.",
                    "number": "Enter a number.",
                }.get(kind, "Not valid JSON.")
            ]
    return data, errors, raw


def place_errors(
    engine_errors: list[dict[str, Any]], names: list[str], prefix: str = "$.inputs"
) -> tuple[dict[str, list[str]], list[str]]:
    """File each ``{"path", "message"}`` under its field (by path, or by the property a
    'required' / 'unexpected' message names); the rest are errors of the whole form."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for error in engine_errors:
        path, message = str(error.get("path", "")), str(error.get("message", ""))
        name = None
        if path.startswith(prefix + "."):
            head = re.split(r"[.\[]", path[len(prefix) + 1 :], maxsplit=1)[0]
            name = head if head in names else None
        elif path == prefix:
            match = _REQUIRED.match(message)
            if match and match["name"] in names:
                name, message = match["name"], "This field is required."
        if name is None and names == [JSON_FIELD]:
            name = JSON_FIELD
        if name is None:
            general.append(message if not path or path == prefix else f"{path}: {message}")
        else:
            by_field.setdefault(name, []).append(message)
    return by_field, general
