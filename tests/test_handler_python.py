"""The ``python`` handler and the registered test functions of ``tests/testapp/handlers.py``."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from handlers import registry
from handlers.registry import Context, HandlerError, get_handler, python_function_names
from tests.handler_helpers import make_ctx
from tests.testapp.handlers import bump_counter, count_calls, flaky_calls, read_counter

pytestmark = pytest.mark.unit


def call(function: str, ctx: Context | None = None, **kwargs: Any) -> Any:
    handler = get_handler("python")
    config = {"function": function, "kwargs": kwargs}
    Draft202012Validator(handler.config_schema).validate(config)
    return handler.run(ctx or make_ctx(), config)


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Path) -> Path:
    settings.TRELLIS_DATA_DIR = tmp_path
    return tmp_path


def test_calls_a_registered_function() -> None:
    assert call("add", a=2, b=3) == 5
    assert call("echo", x=[1, 2], y={"z": None}) == {"x": [1, 2], "y": {"z": None}}


def test_kwargs_are_optional() -> None:
    out = get_handler("python").run(make_ctx(run_id="run-1", attempt=2), {"function": "context"})
    assert out["run_id"] == "run-1" and out["attempt"] == 2


def test_context_function_sees_the_run() -> None:
    ctx = make_ctx(inputs={"q": 1}, upstream={"a": {"data": 2}}, dependencies=("a",))
    assert call("context", ctx) == {
        "run_id": "r",
        "node_id": "n",
        "attempt": 1,
        "inputs": {"q": 1},
        "upstream": {"a": {"data": 2}},
        "dependencies": ["a"],
        "params": {},
    }


@pytest.mark.parametrize(
    "name", ["nope", "os.system", "builtins.eval", "tests.testapp.handlers.add"]
)
def test_unregistered_names_are_refused(name: str) -> None:
    with pytest.raises(HandlerError) as info:
        call(name)
    assert info.value.retryable is False
    registered = ", ".join(python_function_names())
    assert info.value.message == (
        f"no python function registered as {name!r}; registered: {registered}"
    )
    assert "add, boom" in info.value.message


def test_wrong_kwargs_are_a_permanent_failure() -> None:
    with pytest.raises(HandlerError) as info:
        call("add", a=1, c=2)
    assert info.value.retryable is False
    assert "python function 'add' cannot be called with kwargs ['a', 'c']" in info.value.message


def test_fail_raises_handler_error() -> None:
    with pytest.raises(HandlerError) as info:
        call("fail", message="nope")
    assert (info.value.message, info.value.retryable) == ("nope", False)
    with pytest.raises(HandlerError) as info:
        call("fail", message="later", retryable=True)
    assert info.value.retryable is True


def test_unexpected_exceptions_propagate() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        call("boom")


def test_result_must_be_json_serializable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._python_functions, "gives_set", lambda ctx: {"a": [1, {2}]})
    monkeypatch.setitem(registry._python_functions, "gives_nan", lambda ctx: float("nan"))
    with pytest.raises(HandlerError) as info:
        call("gives_set")
    assert info.value.retryable is False
    assert "not JSON-serializable: set at result['a'][1]" in info.value.message
    with pytest.raises(HandlerError, match="float nan at result"):
        call("gives_nan")


def test_sleep_and_cancellation() -> None:
    assert call("sleep", seconds=0.05) == {"slept": 0.05}
    with pytest.raises(HandlerError, match="cancelled"):
        call("sleep", make_ctx(is_cancelled=lambda: True), seconds=5)


def test_flaky_fails_the_first_calls_per_key(data_dir: Path) -> None:
    key = uuid.uuid4().hex
    for attempt in (1, 2):
        with pytest.raises(HandlerError) as info:
            call("flaky", key=key, failures=2)
        assert info.value.retryable is True
        assert info.value.message == f"flaky {key}: failure {attempt} of 2"
    assert call("flaky", key=key, failures=2) == {"key": key, "calls": 3}
    assert flaky_calls(key) == 3
    assert call("flaky", key="other", failures=0) == {"key": "other", "calls": 1}
    assert list((data_dir / "flaky").iterdir())


def test_count() -> None:
    assert call("count", key="k") == {"key": "k", "calls": 1}
    assert call("count", key="k") == {"key": "k", "calls": 2}
    assert count_calls("k") == 2 and count_calls("never") == 0


def _bump_many(args: tuple[str, str, int]) -> None:
    from django.conf import settings

    data_dir, key, times = args
    settings.TRELLIS_DATA_DIR = Path(data_dir)
    for _ in range(times):
        bump_counter(key)


def test_counter_is_shared_across_processes(data_dir: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_bump_many, [(str(data_dir), "shared", 25)] * 4)
    assert read_counter("shared") == 100


def test_config_schema() -> None:
    schema = get_handler("python").config_schema
    Draft202012Validator.check_schema(schema)
    assert not Draft202012Validator(schema).is_valid({"kwargs": {}})
    assert not Draft202012Validator(schema).is_valid({"function": "add", "module": "os"})


def test_a_function_without_ctx_gets_only_its_kwargs() -> None:
    # tests/testapp/workflows.py: stock_gap(sku, on_hand, wanted=10) and place_order(ctx, ...)
    assert call("stock_gap", sku="a", on_hand=3) == {"sku": "a", "missing": 7}
    assert call("place_order", make_ctx(node_id="buy"), sku="a", qty=2) == {
        "sku": "a",
        "qty": 2,
        "node": "buy",
    }
    with pytest.raises(HandlerError, match="cannot be called with kwargs"):
        call("stock_gap", sku="a")
