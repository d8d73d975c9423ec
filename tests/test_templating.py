"""Unit tests for runs.rules.templating (pure: no database, no broker)."""

from __future__ import annotations

import pytest

from runs.rules import templating
from runs.rules.templating import (
    RESERVED_NAMES,
    TemplateError,
    analysis,
    build_scope,
    check_syntax,
    is_template,
    names_used,
    referenced_nodes,
    render_bool,
    render_value,
    single_expression,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def scope() -> dict:
    return build_scope(
        inputs={"topic": "cats", "n": 3},
        outputs={
            "get_posts": {
                "data": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}],
                "status": 200,
            },
            "a-b": {"value": 42},
            "counts": {"items": [1, 2, 3], "keys": "k"},
            "empty": {"data": []},
        },
        params={"mode": "fast"},
        run={"id": "r1", "workflow": "wf", "version": 2},
        session={"user": "ann"},
    )


def test_is_template() -> None:
    assert is_template("{{ x }}")
    assert is_template("a {% if x %}b{% endif %}")
    assert not is_template("plain text { not } a template")
    assert not is_template("{# just a comment #}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ x }}", "x"),
        ("  {{ get_posts.output.data }}\n", "get_posts.output.data"),
        ("{{ a | length }}", "a | length"),
        ("{{- a.b -}}", "a.b"),
        ("{{ '}}' }}", "'}}'"),
        ("{{ a }} {{ b }}", None),
        ("x {{ a }}", None),
        ("{{ a }}{# note #}", None),
        ("{% if a %}{{ a }}{% endif %}", None),
        ("no template", None),
        ("{{ a", None),
    ],
)
def test_single_expression(source: str, expected: str | None) -> None:
    assert single_expression(source) == expected


def test_native_values(scope: dict) -> None:
    assert render_value("{{ get_posts.output.data }}", scope) == [
        {"id": 1, "title": "a"},
        {"id": 2, "title": "b"},
    ]
    assert render_value("{{ get_posts.output }}", scope)["status"] == 200
    assert render_value("{{ get_posts.output.status }}", scope) == 200
    assert render_value("{{ inputs.n * 2 }}", scope) == 6
    assert render_value("{{ inputs.n > 2 }}", scope) is True
    assert render_value("{{ none }}", scope) is None
    assert render_value("{{ get_posts.output.data | map(attribute='id') }}", scope) == [1, 2]
    assert render_value("{{ (1, 2) }}", scope) == [1, 2]
    assert render_value("{{ {'a': inputs.topic} }}", scope) == {"a": "cats"}
    assert render_value(" {{ inputs.topic }} ", scope) == "cats"


def test_string_rendering(scope: dict) -> None:
    assert render_value("Topic: {{ inputs.topic }}!", scope) == "Topic: cats!"
    assert render_value("{{ inputs.topic }}-{{ params.mode }}", scope) == "cats-fast"
    # Dicts and lists inside text are written as JSON.
    assert render_value("ids={{ counts.output.items }}", scope) == "ids=[1, 2, 3]"
    assert render_value("d={{ nodes['a-b'].output }}", scope) == 'd={"value": 42}'
    assert (
        render_value("{% for p in get_posts.output.data %}{{ p.title }};{% endfor %}", scope)
        == "a;b;"
    )
    assert render_value("run {{ run.id }} v{{ run.version }} by {{ session.user }}", scope) == (
        "run r1 v2 by ann"
    )


def test_plain_strings_are_returned_unchanged(scope: dict) -> None:
    text = "no braces here {not} {#c#}"
    assert render_value(text, scope) is text


def test_tojson_is_plain_json(scope: dict) -> None:
    assert render_value("{{ {'a': '<b>'} | tojson }}", scope) == '{"a": "<b>"}'
    assert render_value("x={{ get_posts.output.data[0] | tojson }}", scope) == (
        'x={"id": 1, "title": "a"}'
    )


def test_json_keys_win_over_dict_methods(scope: dict) -> None:
    assert render_value("{{ counts.output.items }}", scope) == [1, 2, 3]
    assert render_value("{{ counts.output.keys }}", scope) == "k"
    assert render_value("{{ counts.output['items'] | sum }}", scope) == 6


def test_undefined_name_is_a_clear_error(scope: dict) -> None:
    with pytest.raises(TemplateError) as info:
        render_value("Summarize {{ missing_node.output.data }}", scope)
    message = str(info.value)
    assert "template references 'missing_node', which is not available here" in message
    assert "Summarize {{ missing_node.output.data }}" in message


def test_missing_key_and_element_are_errors_not_empty_strings(scope: dict) -> None:
    with pytest.raises(TemplateError, match="'nope'.*no such key"):
        render_value("x={{ get_posts.output.nope }}", scope)
    with pytest.raises(TemplateError, match="element 5"):
        render_value("{{ get_posts.output.data[5] }}", scope)
    with pytest.raises(TemplateError, match="not available here"):
        render_value("{% if ghost %}x{% endif %}", scope)


def test_long_template_snippet_is_shortened(scope: dict) -> None:
    source = "{{ ghost }}" + " words" * 100
    with pytest.raises(TemplateError) as info:
        render_value(source, scope)
    assert len(str(info.value)) < 200
    assert "…" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "x {{ get_posts.__init__.__globals__ }}",
        "{{ get_posts.output.data.append(1) }}",
        "{{ 'a' * 100000000 }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'x'.center(999999999) }}",
        "{{ 'x' | center(999999999) }}",
        "{{ 2 ** 99999999 }}",
    ],
)
def test_sandbox_blocks_unsafe_templates(scope: dict, source: str) -> None:
    with pytest.raises(TemplateError):
        render_value(source, scope)


def test_sandbox_error_message_names_the_problem(scope: dict) -> None:
    with pytest.raises(TemplateError, match="unsafe"):
        render_value("{{ ''.__class__.__mro__ }}", scope)


def test_other_exceptions_become_template_errors(scope: dict) -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_value("{{ 1 / 0 }}", scope)
    with pytest.raises(TemplateError, match="syntax error"):
        render_value("{{ inputs. }}", scope)
    with pytest.raises(TemplateError, match="not JSON data"):
        render_value("{{ inputs.topic.upper }}", scope)


def test_rendered_length_is_bounded(scope: dict, settings) -> None:
    settings.TRELLIS_MAX_RENDERED_BYTES = 50
    assert render_value("{{ 'a' * 50 }}", scope) == "a" * 50
    with pytest.raises(TemplateError, match="limit of 50"):
        render_value("{{ 'a' * 51 }}", scope)
    with pytest.raises(TemplateError, match="limit of 50"):
        render_value("{% for i in range(100) %}ab{% endfor %}", scope)
    with pytest.raises(TemplateError, match="limit of 50"):
        render_value("x" * 45 + "{{ inputs.topic }}{{ inputs.topic }}", scope)


def test_nodes_access_for_ids_that_are_not_identifiers(scope: dict) -> None:
    assert render_value("{{ nodes['a-b'].output.value }}", scope) == 42
    assert render_value('{{ nodes["a-b"].output.value + 1 }}', scope) == 43
    assert render_value("{{ nodes.get_posts.output.status }}", scope) == 200
    assert "a-b" not in scope  # not a top-level name
    assert scope["get_posts"] is scope["nodes"]["get_posts"]


def test_build_scope_names() -> None:
    scope = build_scope(inputs=None, outputs={"a": 1, "inputs": 2})
    assert set(scope) == {"a", "inputs", "params", "run", "session", "nodes"}
    assert scope["inputs"] == {}  # a node id never shadows a reserved name
    assert scope["nodes"]["inputs"] == {"output": 2}
    mapped = build_scope(inputs={}, outputs={}, item={"x": 1}, index=0, secrets={"k": "v"})
    assert mapped["item"] == {"x": 1} and mapped["index"] == 0 and mapped["secrets"] == {"k": "v"}
    assert RESERVED_NAMES >= {"inputs", "params", "run", "session", "item", "index", "nodes"}


def test_map_item_scope(scope: dict) -> None:
    config = {"url": "https://x/{{ item.id }}", "n": "{{ index }}", "all": "{{ item }}"}
    rendered = [
        render_value(config, {**scope, **build_scope(inputs={}, outputs={}, item=p, index=i)})
        for i, p in enumerate(scope["get_posts"]["output"]["data"])
    ]
    assert rendered[1] == {"url": "https://x/2", "n": 1, "all": {"id": 2, "title": "b"}}
    with pytest.raises(TemplateError, match="'item'"):
        render_value(config, scope)  # outside a map there is no item


def test_render_value_recursion(scope: dict) -> None:
    value = {
        "{{ not_rendered_key }}": ["{{ inputs.n }}", {"deep": "t={{ inputs.topic }}"}, 7],
        "flag": True,
        "none": None,
        "tuple": ("{{ inputs.n }}",),
    }
    assert render_value(value, scope) == {
        "{{ not_rendered_key }}": [3, {"deep": "t=cats"}, 7],
        "flag": True,
        "none": None,
        "tuple": [3],
    }
    assert value["flag"] is True  # the input is not modified


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ get_posts.output.data }}", True),
        ("{{ empty.output.data }}", False),
        ("{{ inputs.n > 5 }}", False),
        ("{{ none }}", False),
        ("{% if inputs.n > 1 %}true{% else %}false{% endif %}", True),
        ("{% if inputs.n > 5 %}true{% else %}false{% endif %}", False),
        ("{{ 'no' }}", False),
        ("{{ 0 }}", False),
    ],
)
def test_render_bool(scope: dict, source: str, expected: bool) -> None:
    assert render_bool(source, scope) is expected


def test_check_syntax_reports_the_line() -> None:
    assert check_syntax("{{ a.b }}") is None
    message = check_syntax("line one\n{{ a. }}")
    assert message is not None and "line 2" in message
    assert "unknown filter 'nope'" in (check_syntax("{{ a | nope }}") or "")
    assert "include" in (check_syntax("{% include 'x.html' %}") or "")


def test_names_used() -> None:
    assert names_used("{{ a.output }} and {{ inputs.x }}") == {"a", "inputs"}
    assert names_used("{% for x in b.output %}{{ x }}{{ loop.index }}{% endfor %}") == {"b"}
    assert names_used("{% set y = c.output %}{{ y }}") == {"c"}
    assert names_used("{{ broken") == set()


def test_referenced_nodes() -> None:
    ids = {"a", "b", "c-d", "e", "f"}
    source = "{{ a.output }} {{ nodes['c-d'].output }} {{ nodes.e.output }} {{ inputs.b }}"
    assert referenced_nodes(source, ids) == {"a", "c-d", "e"}
    slow = '{% if f.output %}{{ nodes["b"].output }}{% endif %}{{ nodes[inputs.k] }}'
    assert referenced_nodes(slow, ids) == {"f", "b"}
    assert referenced_nodes("{{ nodes['zz'].output }}", ids) == set()


FAST_PATH_SOURCES = [
    "{{ get_posts.output.data }}",
    "{{ get_posts.output.data[0].title }}",
    "{{ get_posts.output.data[-1]['id'] }}",
    "{{nodes['a-b'].output}}",
    'Hello {{ inputs.topic }} and {{ nodes["a-b"].output.value }}\n',
    "multi\nline {{ inputs.n }}\n\n",
    "{{ inputs }} }} tail",
    "{{ counts.output.items }}",
    "{{ inputs.n }}{{ inputs.n }}",
]


@pytest.mark.parametrize("source", FAST_PATH_SOURCES)
def test_fast_path_matches_jinja(scope: dict, source: str) -> None:
    """The compiled-code-free path renders exactly what Jinja renders."""
    assert analysis._plan(source) is not None
    expression = single_expression(source)
    if expression is not None:
        expected = templating.env.compile_expression(expression, undefined_to_none=False)(scope)
        assert render_value(source, scope) == expected
    else:
        expected = templating.env.from_string(source).render(scope)
        assert render_value(source, scope) == expected


def test_same_template_with_different_scopes() -> None:
    source = "n={{ x.output }}"
    results = [render_value(source, build_scope(inputs={}, outputs={"x": i})) for i in range(3)]
    assert results == ["n=0", "n=1", "n=2"]
