"""Shared model base and pydantic-error translation."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Self, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from dq_metadata.canonical import find_json_problem
from dq_metadata.errors import Problem, ValidationError
from dq_metadata.scope import document_id_problem

__all__ = [
    "DQModel",
    "Identifier",
    "IndexedName",
    "Label",
    "NonEmptyStr",
    "UtcDatetime",
    "json_path",
    "parse_model",
    "problems_from",
    "refuse_non_json",
    "utcnow",
]

M = TypeVar("M")


def _document_id(value: str) -> str:
    problem = document_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


#: Document identifiers inside a scope: the one id rule of ``scope.validate_document_id``.
Identifier = Annotated[str, AfterValidator(_document_id)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

#: Bytes of UTF-8 a value the stores index may have (``dq_stores.backend.MAX_INDEX_VALUE_BYTES``).
MAX_INDEXED_BYTES = 512


def _indexed_name(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    size = len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_INDEXED_BYTES:
        raise ValueError(
            f"is over {MAX_INDEXED_BYTES} bytes of UTF-8 (the limit of an indexed name)"
        )
    return value


def _no_outer_whitespace(value: str) -> str:
    if value != value.strip():
        raise ValueError("has whitespace at its start or end; remove it (labels are kept exactly)")
    return value


#: Names the stores index (dataset names): no NUL, at most 512 bytes of UTF-8, kept exactly.
IndexedName = Annotated[str, AfterValidator(_indexed_name)]
#: Tags and similar labels: non-empty, no NUL, no whitespace at the ends (refused, not
#: trimmed), at most 200 characters and 512 bytes of UTF-8.
Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]+$"),
    AfterValidator(_no_outer_whitespace),
    AfterValidator(_indexed_name),
]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _mentions_any(annotation: object) -> bool:
    if annotation is Any:
        return True
    return any(_mentions_any(arg) for arg in getattr(annotation, "__args__", ()))


@functools.cache
def _free_form_fields(cls: type[BaseModel]) -> tuple[str, ...]:
    # Per class, computed once: the fields whose type lets any value through.
    return tuple(name for name, info in cls.model_fields.items() if _mentions_any(info.annotation))


def refuse_non_json(model: BaseModel) -> None:
    """Refuse values in ``model``'s free-form fields (typed with ``Any``) and extra
    fields that JSON cannot hold exactly (see :mod:`dq_metadata.canonical`).

    Call from a ``model_validator(mode="after")``; pydantic then reports the error
    at the model's location and :func:`problems_from` appends the value's JSON path.

    Raises:
        PydanticCustomError: ``json_value``, with ``ctx["json_path"]`` naming the value.
    """
    values = [(name, getattr(model, name)) for name in _free_form_fields(type(model))]
    values.extend((model.__pydantic_extra__ or {}).items())
    for name, value in values:
        found = find_json_problem(value, name)
        if found is not None:
            path, reason = found
            raise PydanticCustomError(
                "json_value", "{reason}", {"reason": reason, "json_path": path}
            )


class DQModel(BaseModel):
    """Base of our own artifacts: strict about unknown fields, validated on assignment.

    Floats must be finite, and free-form fields (``dict[str, Any]``…) must hold
    exact JSON — NaN, bytes, tuples, sets, non-``str`` keys, lone surrogates and
    nesting beyond ``canonical.MAX_DEPTH`` are refused, never coerced.
    """

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False
    )

    @model_validator(mode="after")
    def _free_form_values_are_json(self) -> Self:
        refuse_non_json(self)
        return self


#: Marks a place of the input that a location no longer follows (absent, or not JSON).
_GONE = object()


def problems_from(
    exc: pydantic.ValidationError, data: Any = _GONE, tags: frozenset[str] = frozenset()
) -> list[Problem]:
    """Turn pydantic errors into ``Problem``s, each at the JSON path of the input.

    With ``data`` (the validated input: a mapping, list or JSON text), a location is
    written as the user's JSON path — ``actions[3].url``, list positions in brackets,
    without the tags pydantic adds for members of unions discriminated by a field
    in ``tags`` (``custom.id`` is ``id`` of a ``custom`` profile). Errors raised by :func:`refuse_non_json` carry the JSON path
    of the offending value inside the field (``results.ratio``), which is appended.
    """
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except ValueError:
            data = _GONE
    out = []
    for err in exc.errors():
        path = json_path(err["loc"], data, tags)
        inner = (err.get("ctx") or {}).get("json_path")
        if inner:
            path = f"{path}.{inner}" if path else str(inner)
        out.append(Problem(path, err["msg"]))
    return out


def json_path(
    loc: tuple[int | str, ...], data: Any = _GONE, tags: frozenset[str] = frozenset()
) -> str:
    """The JSON path in ``data`` that pydantic's error location ``loc`` points at.

    Segments that are not in ``data`` — a union member's tag (the value of a field
    named in ``tags``) or type name — are left out; a missing field (the last
    segment, absent from its object) is kept.
    """
    path = ""
    node = data
    for i, segment in enumerate(loc):
        rest = loc[i + 1 :]
        if node is _GONE:
            path = _step(path, segment)
        elif isinstance(segment, int):
            if isinstance(node, list):
                path = _step(path, segment)
                node = node[segment] if 0 <= segment < len(node) else _GONE
        elif isinstance(node, Mapping):
            if _is_tag(node, segment, rest, tags):
                continue
            if segment in node:
                path, node = _step(path, segment), node[segment]
            elif not rest:  # a required field that is missing
                path, node = _step(path, segment), _GONE
        # else: a list or a scalar cannot hold a named segment: a union member's name
    return path


def _step(path: str, segment: int | str) -> str:
    if isinstance(segment, int):
        return f"{path}[{segment}]"
    return f"{path}.{segment}" if path else segment


def _is_tag(
    node: Mapping[str, Any], segment: str, rest: tuple[int | str, ...], tags: frozenset[str]
) -> bool:
    """Whether ``segment`` is the tag of ``node``'s union member: the value of one of
    its discriminator fields ``tags``, followed by a place within ``node``."""
    return bool(rest) and any(node.get(field) == segment for field in tags)


_DISCRIMINATORS: dict[int, tuple[object, frozenset[str]]] = {}


def discriminators(adapter: pydantic.TypeAdapter[Any]) -> frozenset[str]:
    """The field names that tag the members of ``adapter``'s unions (cached per adapter)."""
    cached = _DISCRIMINATORS.get(id(adapter))
    if cached is not None and cached[0] is adapter:
        return cached[1]
    found: set[str] = set()
    stack: list[Any] = [adapter.core_schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "tagged-union" and isinstance(node.get("discriminator"), str):
                found.add(node["discriminator"])
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    _DISCRIMINATORS[id(adapter)] = (adapter, frozenset(found))
    return frozenset(found)


def parse_model(adapter: pydantic.TypeAdapter[M], data: Any, what: str) -> M:
    """Validate ``data`` (a dict or JSON bytes) or raise our ``ValidationError``."""
    try:
        if isinstance(data, bytes | str):
            return adapter.validate_json(data)
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        problems = problems_from(exc, data, discriminators(adapter))
        raise ValidationError(f"invalid {what}", problems) from exc
