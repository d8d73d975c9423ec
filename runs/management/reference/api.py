"""``api.md`` and ``seed-004.md``: the OpenAPI document ``/api/schema/`` serves."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from django.urls import resolve, reverse
from drf_spectacular.settings import patched_settings

from runs.rules.seed import FINAL_STATUS, SEED_NODE_STATE, SEED_RUN_STATUS, SEED_STATES
from runs.rules.states import NodeState, RunState

from .markdown import (
    FIELD_HEADERS,
    ReferenceGap,
    Types,
    code,
    codes,
    page,
    ref_name,
    schema_anchor,
    table,
)

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document ``/api/schema/`` serves, built in-process by its own view class
    with the view's settings (``runs.openapi.SCHEMA_SETTINGS``: tags and the hook that adds
    the plain Django views)."""
    view = resolve(reverse("runs:schema")).func
    schema_view = view.cls(**view.initkwargs)
    with patched_settings(schema_view.custom_settings):
        generator = schema_view.generator_class(
            urlconf=schema_view.urlconf,
            api_version=schema_view.api_version,
            patterns=schema_view.patterns,
        )
        document = generator.get_schema(request=None, public=schema_view.serve_public)
    return json.loads(json.dumps(document, default=str))  # lazy strings as the renderer does


def operations(document: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, path, operation)`` in the document's order."""
    return [
        (method, path, item[method])
        for path, item in document["paths"].items()
        for method in HTTP_METHODS
        if method in item
    ]


def component(document: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][ref_name(schema["$ref"])]
    return schema


def body_phrase(content: Mapping[str, Any], types: Types) -> str:
    """A body's type, with the media types it comes in."""
    media_by_type: dict[str, list[str]] = {}
    for media, value in content.items():
        schema = value.get("schema")
        media_by_type.setdefault(types.of(schema) if schema else "", []).append(media)
    parts = [
        f"{phrase} ({', '.join(media)})" if phrase else ", ".join(media)
        for phrase, media in media_by_type.items()
    ]
    return "; ".join(parts) or "no body"


def response_rows(operation: Mapping[str, Any], types: Types) -> list[list[str]]:
    return [
        [
            code(status),
            response.get("description") or " ",
            body_phrase(response.get("content", {}), types),
        ]
        for status, response in sorted(operation["responses"].items())
    ]


def _operation_section(
    document: Mapping[str, Any], method: str, path: str, op: Mapping[str, Any], shared: set[str]
) -> str:
    types = Types(document["components"]["schemas"], link="")
    lines = [f"### {method.upper()} `{path}`", "", op.get("summary", "")]
    if op.get("description") and op["description"] not in shared:
        lines += ["", op["description"]]
    security = [name for requirement in op.get("security", []) for name in requirement]
    lines += ["", f"Credentials: {codes(security) if security else 'none'}."]
    parameters = op.get("parameters") or []
    if parameters:
        rows = [
            [
                code(p["name"]),
                p["in"],
                types.of(p.get("schema", {})),
                "yes" if p.get("required") else "no",
                p.get("description", ""),
            ]
            for p in sorted(parameters, key=lambda p: (p["in"] != "path", p["in"], p["name"]))
        ]
        lines += ["", table(["parameter", "in", "type", "required", "description"], rows)]
    request = op.get("requestBody")
    if request:
        lines += ["", f"Request body: {body_phrase(request.get('content', {}), types)}."]
        for value in request.get("content", {}).values():
            schema = component(document, value.get("schema", {}))
            if schema.get("properties"):
                lines += ["", table(FIELD_HEADERS, types.fields(schema))]
                break
            if schema.get("description"):
                lines += ["", schema["description"]]
                break
    lines += ["", table(["status", "meaning", "body"], response_rows(op, types))]
    return "\n".join(lines)


def _schema_section(name: str, schema: Mapping[str, Any], types: Types) -> str:
    lines = [f"### `{name}` {{#{schema_anchor(name)}}}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    if schema.get("properties"):
        lines.append(table(FIELD_HEADERS, types.fields(schema)))
    else:
        lines.append(types.of(schema) + ".")
    return "\n".join(lines)


def api_page(document: Mapping[str, Any]) -> str:
    schemas = document["components"]["schemas"]
    types = Types(schemas, link="")
    info = document["info"]
    schemes = document["components"].get("securitySchemes", {})
    auth_rows = [
        [
            code(name),
            scheme.get("description")
            or f"{scheme.get('in', '')} {scheme.get('name') or scheme.get('scheme', '')}",
        ]
        for name, scheme in sorted(schemes.items())
    ]
    intro = (
        f"{info.get('description', '')} Version {info['version']}. The OpenAPI 3 document is "
        "`GET /api/schema/`, the Swagger UI `/docs`; this page is generated from the same "
        "document."
    )
    errors = (
        "## Errors\n\nEvery error answer under `/api/`, the seed-004 routes and the probes has "
        f"one shape, {types.name('Error')}; a 409 is a {types.name('Conflict')}, which adds "
        "`current`.\n\n" + table(FIELD_HEADERS, types.fields(schemas["Error"]))
    )
    # drf-spectacular gives every view of a base class that base's docstring: not the route's.
    seen = Counter(op.get("description") for _m, _p, op in operations(document))
    shared = {description for description, count in seen.items() if description and count > 1}
    by_tag: dict[str, list[str]] = {}
    for method, path, op in operations(document):
        section = _operation_section(document, method, path, op, shared)
        by_tag.setdefault(op["tags"][0], []).append(section)
    declared = [tag["name"] for tag in document.get("tags", [])]
    undeclared = sorted(set(by_tag) - set(declared))
    if undeclared:
        raise ReferenceGap(f"API operations with undeclared tags: {', '.join(undeclared)}")
    tags = [
        f"## {tag['name']}\n\n{tag.get('description', '')}\n\n" + "\n\n".join(by_tag[tag["name"]])
        for tag in document.get("tags", [])
        if tag["name"] in by_tag
    ]
    objects = [(name, s) for name, s in sorted(schemas.items()) if "enum" not in s]
    return page(
        "REST API",
        intro,
        "## Authentication\n\n" + table(["name", "how"], auth_rows),
        errors,
        *tags,
        "## Schemas\n\n" + "\n\n".join(_schema_section(n, s, types) for n, s in objects),
    )


def seed_page(document: Mapping[str, Any]) -> str:
    types = Types(document["components"]["schemas"], link="api.md")
    routes = []
    for method, path, op in operations(document):
        if op["tags"][0] != "seed-004":
            continue
        routes.append(
            f"### {method.upper()} `{path.rstrip('/')}`\n\n{op.get('summary', '')}\n\n"
            + table(["status", "meaning", "body"], response_rows(op, types))
        )
    state_rows = [
        [
            code(seed),
            codes(s for s in RunState if SEED_RUN_STATUS[s] == seed),
            codes(s for s in NodeState if SEED_NODE_STATE[s] == seed),
        ]
        for seed in SEED_STATES
    ]
    final_rows = [[code(status), code(word)] for status, word in FINAL_STATUS.items()]
    return page(
        "seed-004 routes",
        "Documents in the seed-004 format run as they are, and clients written against its "
        "reference implementation get the answers they expect. The paths take an optional "
        "trailing slash; the bodies' fields are in the API reference's schemas.",
        "## Routes\n\n" + "\n\n".join(routes),
        "## States\n\nA seed client sees four states, for the run's `status` and each node's "
        "`state`; Trellis's own word rides along as `trellis_status` / `trellis_state`.\n\n"
        + table(["a seed client sees", "for the run statuses", "for the node states"], state_rows),
        "## Final status\n\n`results.final_status` of a finished run:\n\n"
        + table(["run status", "final_status"], final_rows),
        "## Configs\n\nThe seed routes read node configs as the reference's models do: a "
        "`null` value counts as absent, and a key the handler does not take is ignored, with "
        "one `warnings` item (`{path, message}`) each in the submit or trigger answer. The "
        "resource API under `/api/v1/` refuses both.",
    )
