"""Shared model base and pydantic-error translation."""

from __future__ import annotations

import functools
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
    "parse_model",
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


def problems_from(exc: pydantic.ValidationError) -> list[Problem]:
    """Turn pydantic errors into ``Problem``s with a dotted field path each.

    Errors raised by :func:`refuse_non_json` carry the JSON path of the offending
    value inside the field (``results.ratio``), which is appended to the location.
    """
    out = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        json_path = (err.get("ctx") or {}).get("json_path")
        if json_path:
            parts.append(str(json_path))
        out.append(Problem(".".join(parts), err["msg"]))
    return out


def parse_model(adapter: pydantic.TypeAdapter[M], data: Any, what: str) -> M:
    """Validate ``data`` (a dict or JSON bytes) or raise our ``ValidationError``."""
    try:
        if isinstance(data, bytes | str):
            return adapter.validate_json(data)
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(f"invalid {what}", problems_from(exc)) from exc
