"""One registry of the functions a host may call by name, and one dispatcher for them.

A function joins with ``@registry.exposed``; the page knows it by its name in camelCase
(``sync_now`` is ``syncNow``). ``dispatch(name, args_json)`` takes the arguments as one
JSON array, checks each against the function's annotations -- so a wrong argument is
refused, naming it, before any code runs -- awaits the function and answers one JSON
text, so no Python or JS proxy outlives a call:

    {"ok": true, "value": <the result>, "after": {...}}
    {"ok": false, "error": {"type": "ArgumentError", "message": "...", "field": "texts[0]"},
     "after": {...}}

A failure is always such a record: the exception's class name and its own message, never
a traceback (an exception that is not one of ``quiet``'s -- a bug, not a refusal -- also
prints its traceback, which Pyodide shows in the console). ``after`` is what the host's
hook says after every call, failed or not.

Annotations understood: str, int, float, bool, None, bytes (base64 text in the JSON),
Literal, unions, list[T], dict[str, T], TypedDicts and Any; ``Annotated[T, Label(name)]``
names a list's items in messages. Results are JSON values, TypedDicts or dataclasses.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import inspect
import json
import traceback
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from .records import After, Failure, Label, Success, WorkerError

Handler = Callable[..., Awaitable[Any]]
_F = TypeVar("_F", bound=Handler)


class ArgumentError(ValueError):
    """An argument is not what its parameter takes; ``field`` names it (``texts[0]``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownMethod(LookupError):
    """No exposed function has that name."""


@dataclass(frozen=True)
class Parameter:
    name: str
    hint: object
    default: object = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class Exposed:
    name: str  # as the page calls it
    function: Handler
    parameters: tuple[Parameter, ...]
    returns: object  # the result's annotation (types.js reads it)

    def bind(self, args: list[object]) -> list[object]:
        """The arguments checked against the parameters, defaults filled in."""
        names = ", ".join(p.name for p in self.parameters)
        if len(args) > len(self.parameters):
            raise ArgumentError(
                f"{self.name}({names}) takes {len(self.parameters)} arguments, got {len(args)}"
            )
        bound = []
        for index, parameter in enumerate(self.parameters):
            if index < len(args):
                bound.append(check(args[index], parameter.hint, parameter.name))
            elif parameter.required:
                raise ArgumentError(
                    f"{parameter.name} is missing: {self.name}({names})", parameter.name
                )
            else:
                bound.append(parameter.default)
        return bound


def js_name(python_name: str) -> str:
    head, *rest = python_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _no_after() -> After:
    return {"next_at": None}


class Registry:
    def __init__(self, *, quiet: tuple[type[BaseException], ...] = ()) -> None:
        self.methods: dict[str, Exposed] = {}
        self.after: Callable[[], After] = _no_after
        self._quiet = (ArgumentError, UnknownMethod, *quiet)

    def exposed(self, function: _F) -> _F:
        """Register ``function`` (async; every parameter annotated with a type ``check``
        understands) under its camelCase name."""
        is_async = inspect.iscoroutinefunction(function)  # (a TypeIs: no narrowing here)
        if not is_async:
            raise TypeError(f"{function.__name__} must be async")
        hints = get_type_hints(function, include_extras=True)
        parameters = tuple(
            Parameter(p.name, hints[p.name], p.default)
            for p in inspect.signature(function).parameters.values()
        )
        for parameter in parameters:
            describe(parameter.hint)  # raises for an annotation arguments can't be checked against
        name = js_name(function.__name__)
        if name in self.methods:
            raise ValueError(f"{name} is exposed twice")
        self.methods[name] = Exposed(name, function, parameters, hints["return"])
        return function

    async def dispatch(self, name: str, args_json: str) -> str:
        """Call ``name`` with the JSON array ``args_json``; the JSON envelope above."""
        reply: Success | Failure
        try:
            method = self.methods.get(name)
            if method is None:
                raise UnknownMethod(f"the worker has no method {name!r}")
            args = json.loads(args_json)
            if not isinstance(args, list):
                raise ArgumentError("the arguments must be a JSON array")
            value = await method.function(*method.bind(args))
            reply = {"ok": True, "value": _plain(value), "after": _no_after()}
        except Exception as exc:
            reply = self._failure(exc)
        reply["after"] = self.after()
        try:
            return json.dumps(reply, separators=(",", ":"))
        except (TypeError, ValueError) as exc:  # a result that is not JSON: a bug
            failed = self._failure(exc)
            failed["after"] = reply["after"]
            return json.dumps(failed, separators=(",", ":"))

    def _failure(self, exc: Exception) -> Failure:
        if not isinstance(exc, self._quiet):
            traceback.print_exception(exc)
        error: WorkerError = {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}
        field = getattr(exc, "field", None)
        if isinstance(field, str):
            error["field"] = field
        return {"ok": False, "error": error, "after": _no_after()}


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


# -- checking arguments against annotations -----------------------------------------------


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def describe(hint: object) -> str:
    """What a value of ``hint`` is, in words ("a JSON array of strings")."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Annotated, Required, NotRequired):
        return describe(args[0])
    if hint is Any:
        return "any JSON value"
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arm) for arm in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    if origin is list:
        return f"a JSON array of {_plural(args[0])}"
    if origin is dict:
        return f"a JSON object of {_plural(args[1])}"
    if is_typeddict(hint):
        return "a JSON object with " + ", ".join(get_type_hints(hint))
    words = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        type(None): "null",
        bytes: "bytes (base64 text)",
    }
    if isinstance(hint, type) and hint in words:
        return words[hint]
    raise TypeError(f"arguments can't be checked against {hint!r}")


def _plural(hint: object) -> str:
    if get_origin(hint) in (Annotated, Required, NotRequired):
        return _plural(get_args(hint)[0])
    plurals = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}
    if isinstance(hint, type) and hint in plurals:
        return plurals[hint]
    return "values"


def check(value: object, hint: object, field: str, label: str | None = None) -> object:
    """``value`` if it is a ``hint`` (bytes decoded), else ``ArgumentError`` at ``field``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        labels = [meta.name for meta in args[1:] if isinstance(meta, Label)]
        return check(value, args[0], field, labels[0] if labels else label)
    if origin in (Required, NotRequired):
        return check(value, args[0], field, label)

    def refused() -> ArgumentError:
        return ArgumentError(
            f"{label or field} must be {describe(hint)}, got {_kind(value)}", field
        )

    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        deeper = None
        for arm in args:
            try:
                return check(value, arm, field, label)
            except ArgumentError as exc:
                if exc.field != field:
                    deeper = exc  # the value has the arm's shape; something inside it is wrong
        raise deeper or refused()
    if origin is Literal:
        if any(value == choice and type(value) is type(choice) for choice in args):
            return value
        raise ArgumentError(f"{label or field} must be {describe(hint)}, got {value!r}", field)
    if origin is list:
        if not isinstance(value, list):
            raise refused()
        return [check(item, args[0], f"{field}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise refused()
        return {key: check(item, args[1], f"{field}.{key}") for key, item in value.items()}
    if is_typeddict(hint):
        return _check_record(value, hint, field, refused)
    if hint is bool or hint is str or hint is type(None):
        if type(value) is not hint:
            raise refused()
        return value
    if hint is int or hint is float:
        # JSON has one kind of number: 3 is a float too; true is neither.
        if isinstance(value, bool) or not isinstance(value, (int, float) if hint is float else int):
            raise refused()
        return value
    if hint is bytes:
        if not isinstance(value, str):
            raise refused()
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise refused() from None
    raise TypeError(f"arguments can't be checked against {hint!r}")


def record_fields(record: Any) -> dict[str, tuple[object, bool]]:
    """A TypedDict's fields: ``{name: (annotation, required)}``. Read from the annotations,
    not ``__required_keys__``, which is wrong under ``from __future__ import annotations``
    before Python 3.14 (it cannot see ``NotRequired`` in a string)."""
    fields = {}
    for name, hint in get_type_hints(record, include_extras=True).items():
        origin = get_origin(hint)
        required = origin is Required or (origin is not NotRequired and record.__total__)
        fields[name] = (hint, required)
    return fields


def _check_record(
    value: object, hint: Any, field: str, refused: Callable[[], ArgumentError]
) -> dict[str, object]:
    if not isinstance(value, dict):
        raise refused()
    fields = record_fields(hint)
    for key in value:
        if key not in fields:
            raise ArgumentError(
                f"{field} has no field {key!r}; it has {', '.join(fields)}", f"{field}.{key}"
            )
    missing = [key for key, (_, required) in fields.items() if required and key not in value]
    if missing:
        raise ArgumentError(f"{field}.{missing[0]} is missing", f"{field}.{missing[0]}")
    return {key: check(item, fields[key][0], f"{field}.{key}") for key, item in value.items()}
