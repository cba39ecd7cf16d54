"""The worker's one dispatcher: arguments checked against annotations before any code
runs, results and every failure as JSON records, and the host's ``after`` on each reply."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from py_agent.records import After, Text
from py_agent.registry import Registry, describe, js_name


class Changes(TypedDict, total=False):
    title: str
    done: bool


class Feed(TypedDict):
    dtype: str
    shape: list[int]
    note: NotRequired[str]


@dataclass
class Echo:
    texts: list[str]
    size: int


class Refused(ValueError):
    pass


registry = Registry(quiet=(Refused,))
calls: list[tuple[str, object]] = []


@registry.exposed
async def embed_all(texts: list[Text], repeat: int = 1) -> Echo:
    calls.append(("embed_all", texts))
    return Echo(texts * repeat, len(texts))


@registry.exposed
async def edit(
    collection: Literal["tasks", "notes"], changes: Changes, when: str | None = None
) -> str:
    return f"{collection} {sorted(changes.items())} {when}"


@registry.exposed
async def run(model: bytes, feeds: dict[str, Feed], threshold: float) -> list[Any]:
    return [len(model), model.decode(), sorted(feeds), threshold]


@registry.exposed
async def fail(kind: str) -> None:
    if kind == "refused":
        raise Refused("that cannot be done")
    raise KeyError("a bug")


@registry.exposed
async def unserialisable() -> Any:
    return object()


def call(name: str, *args: object) -> dict[str, Any]:
    import asyncio

    reply: dict[str, Any] = json.loads(asyncio.run(registry.dispatch(name, json.dumps(args))))
    return reply


def error_of(name: str, *args: object) -> dict[str, Any]:
    reply = call(name, *args)
    assert reply["ok"] is False, reply
    error: dict[str, Any] = reply["error"]
    return error


def test_names_are_camel_case_and_a_call_answers_its_value() -> None:
    assert js_name("sync_now") == "syncNow" and js_name("ask") == "ask"
    assert sorted(registry.methods) == ["edit", "embedAll", "fail", "run", "unserialisable"]
    reply = call("embedAll", ["a", "b"], 2)
    assert reply == {
        "ok": True,
        "value": {"texts": ["a", "b", "a", "b"], "size": 2},  # a dataclass, as its fields
        "after": {"next_at": None},
    }
    assert call("edit", "notes", {"title": "x"})["value"] == "notes [('title', 'x')] None"


def test_an_unknown_method_is_a_structured_error() -> None:
    assert error_of("nope") == {
        "type": "UnknownMethod",
        "message": "the worker has no method 'nope'",
    }


def test_bad_arguments_are_refused_naming_the_field_before_any_code_runs() -> None:
    calls.clear()
    assert error_of("embedAll", "not a list") == {
        "type": "ArgumentError",
        "message": "texts must be a JSON array of strings, got str",
        "field": "texts",
    }
    # A list's items are named by their Label, and located by their index.
    assert error_of("embedAll", ["fine", 42]) == {
        "type": "ArgumentError",
        "message": "text must be a string, got int",
        "field": "texts[1]",
    }
    assert error_of("embedAll", ["a"], True)["message"] == "repeat must be an integer, got bool"
    assert error_of("embedAll")["field"] == "texts"
    assert "takes 2 arguments, got 3" in error_of("embedAll", [], 1, 2)["message"]
    assert calls == []

    assert error_of("edit", "task", {})["message"] == (
        "collection must be one of 'tasks', 'notes', got 'task'"
    )
    assert error_of("edit", "tasks", {"done": "yes"}) == {
        "type": "ArgumentError",
        "message": "changes.done must be true or false, got str",
        "field": "changes.done",
    }
    assert error_of("edit", "tasks", {"colour": "red"})["field"] == "changes.colour"
    assert error_of("edit", "tasks", {}, 5)["message"] == "when must be a string or null, got int"


def test_records_bytes_and_numbers() -> None:
    model = base64.b64encode(b"onnx").decode()
    feeds = {"x": {"dtype": "float32", "shape": [2, 3]}}
    assert call("run", model, feeds, 1)["value"] == [4, "onnx", ["x"], 1]  # 1 is a number
    assert error_of("run", model, {"x": {"dtype": "float32"}}) == {
        "type": "ArgumentError",
        "message": "feeds.x.shape is missing",
        "field": "feeds.x.shape",
    }
    assert error_of("run", model, {"x": {**feeds["x"], "shape": [2, "3"]}})["field"] == (
        "feeds.x.shape[1]"
    )
    assert error_of("run", "not base64!", feeds, 1)["message"] == (
        "model must be bytes (base64 text), got str"
    )


def test_an_exception_is_its_type_and_message_and_only_a_bug_prints_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert error_of("fail", "refused") == {"type": "Refused", "message": "that cannot be done"}
    assert capsys.readouterr().err == ""
    assert error_of("fail", "bug") == {"type": "KeyError", "message": "'a bug'"}
    assert "Traceback" in capsys.readouterr().err  # for the console, never for the page
    assert error_of("unserialisable")["type"] == "TypeError"


def test_every_reply_carries_the_hosts_after() -> None:
    seen: list[str] = []

    def after() -> After:
        seen.append("after")
        return {"next_at": 12.5, "chat": 1}

    registry.after = after
    try:
        assert call("embedAll", [])["after"] == {"next_at": 12.5, "chat": 1}
        assert call("nope")["after"] == {"next_at": 12.5, "chat": 1}
    finally:
        registry.after = lambda: {"next_at": None}
    assert seen == ["after", "after"]


def test_only_annotations_that_can_be_checked_are_accepted() -> None:
    assert describe(dict[str, list[int]]) == "a JSON object of values"  # (for messages)
    other = Registry()

    async def loose(value: set[int]) -> None: ...

    with pytest.raises(TypeError, match="can't be checked"):
        other.exposed(loose)

    def not_async(text: str) -> None: ...

    with pytest.raises(TypeError, match="must be async"):
        other.exposed(not_async)  # type: ignore[type-var]
