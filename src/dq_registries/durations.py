"""Durations as operators type them: ``90s``, ``15m``, ``2h``, ``7d``, ``1w`` or ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

from dq_metadata.errors import Problem, ValidationError

__all__ = ["MAX_DURATION", "check_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")
#: The longest duration accepted: a cutoff ``now - duration`` must stay a valid date.
MAX_DURATION = timedelta(days=36_500)


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """``text`` (one or more ``<integer><unit>`` parts, units s m h d w) as a positive
    ``timedelta``.

    Raises:
        ValidationError: empty, an unknown unit, a total of zero or one longer than
            ``MAX_DURATION`` (100 years).
    """
    if not isinstance(text, str) or not _WHOLE.fullmatch(text.strip()):
        raise ValidationError(
            "invalid duration",
            [Problem(field, f"{text!r}: give e.g. 90s, 15m, 2h, 7d, 1w or 1h30m")],
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(text.strip()))
    if seconds > MAX_DURATION.total_seconds():
        raise _too_long(field)
    return check_duration(timedelta(seconds=seconds), field)


def check_duration(value: object, field: str = "duration") -> timedelta:
    """``value`` if it is a positive ``timedelta`` of at most ``MAX_DURATION``, else
    ``ValidationError``."""
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValidationError("invalid duration", [Problem(field, "must be a positive duration")])
    if value > MAX_DURATION:
        raise _too_long(field)
    return value


def _too_long(field: str) -> ValidationError:
    return ValidationError(
        "invalid duration", [Problem(field, "must be at most 100 years (36500d)")]
    )
