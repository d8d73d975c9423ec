"""HTML forms from JSON Schemas: the start-run form (a spec's ``inputs``) and the form of a
WAITING ``wait_for_event`` node (its ``schema``).

Pure: ``fields_for`` describes the inputs to draw, ``parse_form`` turns posted strings back into
JSON values (with an error per field it cannot parse), and ``place_errors`` files the engine's
validation errors (``{"path": "$.inputs.x", "message"}``) under the field they concern,
rewritten by ``readable`` as sentences that name the field (jsonschema's own messages quote
values with ``repr``, so a pattern's backslashes show doubled). The schema's own validation
stays in the engine (``runs.services.validated_inputs``): this module only converts.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_FIELD = "__json__"  # the one field of a schema without properties: the whole object
LONG_TEXT = 200  # strings allowed to be longer than this get a textarea
_REQUIRED = re.compile(r"^'(?P<name>[^']+)' is a required property$")
_UNEXPECTED = re.compile(
    r"^Additional properties are not allowed \((?P<names>.+) (?:was|were) unexpected\)$"
)
# jsonschema's messages (4.x), by what they say; the values in them are Python reprs.
_READABLE = [
    (
        re.compile(
            r"^.* is (?P<cmp>greater|less) than the (?P<which>maximum|minimum) of (?P<n>\S+)$"
        ),
        lambda m, prop: f"must be at {'most' if m['which'] == 'maximum' else 'least'} {m['n']}",
    ),
    (
        re.compile(
            r"^.* is (?P<cmp>greater|less) than or equal to the "
            r"(?:exclusive )?(?:maximum|minimum) of (?P<n>\S+)$"
        ),
        lambda m, prop: f"must be {'less' if m['cmp'] == 'greater' else 'greater'} than {m['n']}",
    ),
    (
        re.compile(r"^.* is not a multiple of (?P<n>\S+)$"),
        lambda m, prop: f"must be a multiple of {m['n']}",
    ),
    (
        re.compile(r"^.* is not of type (?P<types>.+)$"),
        lambda m, prop: (
            "must be "
            + " or ".join(_TYPE_WORDS.get(t, t) for t in re.findall(r"'(\w+)'", m["types"]))
        ),
    ),
    (
        re.compile(r"^.* does not match (?P<pattern>'.*'|\".*\")$"),
        lambda m, prop: f"must match the pattern {_unrepr(m['pattern'])}",
    ),
    (
        re.compile(r"^.* is not one of (?P<choices>\[.*\])$"),
        lambda m, prop: "must be one of: " + ", ".join(str(c) for c in _unrepr(m["choices"], [])),
    ),
    (
        re.compile(r"^.* (?:is too short|should be non-empty)$"),
        lambda m, prop: _length(prop, "least", "minLength", "minItems", "too short"),
    ),
    (
        re.compile(r"^.* (?:is too long|is expected to be empty)$"),
        lambda m, prop: _length(prop, "most", "maxLength", "maxItems", "too long"),
    ),
    (
        re.compile(r"^.* is not a '(?P<format>[\w-]+)'$"),
        lambda m, prop: f"must be a valid {m['format']}",
    ),
]
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "a JSON list",
    "null": "empty",
}


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
    one is refused with an error at its field, even when the schema has a default: a person who
    cleared it did not ask for the default.
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
    required = set(schema.get("required") or []) if isinstance(schema, Mapping) else set()
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
            if name in required:
                errors[name] = [_required(_label(name, prop))]
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
            problem = {"integer": "must be a whole number", "number": "must be a number"}
            errors[name] = [f"{_label(name, prop)} {problem.get(kind, 'is not valid JSON')}."]
    return data, errors, raw


def place_errors(
    engine_errors: list[dict[str, Any]],
    names: list[str],
    prefix: str = "$.inputs",
    schema: Mapping[str, Any] | None = None,
) -> tuple[dict[str, list[str]], list[str]]:
    """File each ``{"path", "message"}`` under its field (by path, or by the property a
    'required' message names), as a readable sentence naming the field; the rest are errors
    of the whole form. ``schema`` gives the fields' titles (else their names are used)."""
    props = _properties(schema)
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for error in engine_errors:
        path, message = str(error.get("path", "")), str(error.get("message", ""))
        name = None
        if path.startswith(prefix + "."):
            rest = path[len(prefix) + 1 :]
            head = re.split(r"[.\[]", rest, maxsplit=1)[0]
            if head in names:
                name = head
                label = _label(head, props.get(head)) + rest[len(head) :]
                message = readable(message, label, props.get(head) if head == rest else None)
        elif path == prefix:
            if match := _REQUIRED.match(message):
                if match["name"] in names:
                    name = match["name"]
                message = _required(_label(match["name"], props.get(match["name"])))
            elif match := _UNEXPECTED.match(message):
                unexpected = ", ".join(str(n) for n in _unrepr(f"[{match['names']}]", []))
                message = f"Unexpected field{'s' if ',' in unexpected else ''}: {unexpected}."
        if name is None and names == [JSON_FIELD]:
            name = JSON_FIELD
        if name is None:
            general.append(message if not path or path == prefix else f"{path}: {message}")
        else:
            by_field.setdefault(name, []).append(message)
    return by_field, general


def readable(message: str, label: str, prop: Any = None) -> str:
    """One of jsonschema's messages as a sentence about the field ``label``:
    ``"50 is greater than the maximum of 10"`` → ``"steps must be at most 10."``;
    a message it does not know is kept, after the field's name."""
    for pattern, words in _READABLE:
        if match := pattern.match(message):
            return f"{label} {words(match, prop if isinstance(prop, Mapping) else {})}."
    return f"{label}: {message}"


def _length(prop: Mapping[str, Any], end: str, chars: str, items: str, otherwise: str) -> str:
    """The length rule as words: ``must be at least 3 characters long``, ``must have at most
    2 items``, else ``is too short`` / ``is too long``."""
    if isinstance(prop.get(chars), int):
        count = prop[chars]
        return f"must be at {end} {count} character{'s' if count != 1 else ''} long"
    if isinstance(prop.get(items), int):
        count = prop[items]
        return f"must have at {end} {count} item{'s' if count != 1 else ''}"
    return f"is {otherwise}"


def _label(name: str, prop: Any) -> str:
    return str(prop.get("title") or name) if isinstance(prop, Mapping) else name


def _required(label: str) -> str:
    return f"{label} is required."


def _unrepr(text: str, fallback: Any = None) -> Any:
    """A Python literal as jsonschema wrote it (``'^\\\\d+$'`` → ``^\\d+$``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text if fallback is None else fallback
