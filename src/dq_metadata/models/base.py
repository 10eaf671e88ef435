"""Shared model base and pydantic-error translation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from dq_metadata.errors import Problem, ValidationError

__all__ = ["DQModel", "Identifier", "Label", "NonEmptyStr", "UtcDatetime", "parse_model", "utcnow"]

M = TypeVar("M")

#: Document identifiers inside a scope: any non-empty string without NUL (see keys).
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00]+$")]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
#: Tags and similar labels: trimmed, non-empty, no NUL.
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]+$"),
]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class DQModel(BaseModel):
    """Base of our own artifacts: strict about unknown fields, validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def problems_from(exc: pydantic.ValidationError) -> list[Problem]:
    """Turn pydantic errors into ``Problem``s with a dotted field path each."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append(Problem(loc, err["msg"]))
    return out


def parse_model(adapter: pydantic.TypeAdapter[M], data: Any, what: str) -> M:
    """Validate ``data`` (a dict or JSON bytes) or raise our ``ValidationError``."""
    try:
        if isinstance(data, bytes | str):
            return adapter.validate_json(data)
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(f"invalid {what}", problems_from(exc)) from exc
