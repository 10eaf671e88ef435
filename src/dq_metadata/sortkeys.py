"""Sort keys: strings whose byte order equals the domain order.

Backends only ever compare sort keys as plain strings (SQL ``COLLATE "C"``, file
names, blob names), so the domain order is encoded here once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import semver

from dq_metadata.errors import Problem, ValidationError

__all__ = [
    "MAX_VERSION_PART",
    "parse_semver",
    "parse_version_range",
    "semver_sort_key",
    "time_sort_key",
    "version_in_range",
]

MAX_VERSION_PART = 10**20 - 1
_NUM = 20


def parse_semver(version: str) -> semver.Version:
    """Parse a semver 2.0 string or raise our ``ValidationError``."""
    try:
        parsed = semver.Version.parse(version)
    except (ValueError, TypeError) as exc:
        raise ValidationError(
            "invalid version", [Problem("version", f"{version!r} is not semver 2.0 (e.g. 1.2.0)")]
        ) from exc
    for part in (parsed.major, parsed.minor, parsed.patch):
        if part > MAX_VERSION_PART:
            raise ValidationError(
                "invalid version", [Problem("version", f"{version!r}: part too large")]
            )
    return parsed


def semver_sort_key(version: str) -> str:
    """Map a semver string to a string whose lexicographic order is semver precedence.

    ``1.9.0 < 1.10.0``; ``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0``.
    Build metadata does not affect precedence and is dropped.
    """
    v = parse_semver(version)
    core = f"{v.major:0{_NUM}d}.{v.minor:0{_NUM}d}.{v.patch:0{_NUM}d}"
    if not v.prerelease:
        # '~' sorts after every character a pre-release encoding starts with.
        return core + "~"
    parts = []
    for ident in v.prerelease.split("."):
        if ident.isdigit():
            # numeric identifiers sort below alphanumeric ones, numerically
            parts.append("0" + ident.rjust(_NUM, "0"))
        else:
            parts.append("1" + ident)
    # '!' sorts below every identifier character, so a shorter prefix wins.
    return core + "-" + "!".join(parts)


def time_sort_key(moment: datetime) -> str:
    """Fixed-width UTC ISO-8601 string whose string order is time order."""
    if moment.tzinfo is None:
        raise ValidationError("timestamps must be timezone-aware", [Problem("time", "naive")])
    m = moment.astimezone(UTC)
    # strftime("%Y") does not zero-pad years before 1000, which would break the order.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T"
        f"{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"
    )


_RANGE_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
_PARTIAL_VERSION = re.compile(r"\d+(\.\d+)?")


def parse_version_range(spec: str) -> list[tuple[str, semver.Version]]:
    """Parse a range: comma-separated ``<op><version>`` clauses, all required.

    Operators: ``== != < <= > >=``. A bound may omit minor/patch (``<2`` means
    ``<2.0.0``, ``>=1.4`` means ``>=1.4.0``).

    Raises:
        ValidationError: empty, an unknown operator, or a bound that is not semver.
    """
    if not isinstance(spec, str):
        raise ValidationError("invalid version range", [Problem("version_range", "not a str")])
    clauses = [c.strip() for c in spec.split(",") if c.strip()]
    if not clauses:
        raise ValidationError("invalid version range", [Problem("version_range", "is empty")])
    parsed = []
    for clause in clauses:
        op = next((o for o in _RANGE_OPERATORS if clause.startswith(o)), None)
        if op is None:
            raise ValidationError(
                "invalid version range",
                [Problem("version_range", f"{clause!r}: start with one of == != < <= > >=")],
            )
        bound = clause[len(op) :].strip()
        if _PARTIAL_VERSION.fullmatch(bound):
            bound += ".0" * (2 - bound.count("."))
        parsed.append((op, parse_semver(bound)))
    return parsed


def version_in_range(version: str, spec: str) -> bool:
    """Whether ``version`` satisfies ``spec`` (see :func:`parse_version_range`).

    Example: ``version_in_range("1.4.2", ">=1.2.0,<2")``. Every clause is checked
    for syntax, even when an earlier one already fails.

    Raises:
        ValidationError: ``version`` is not semver or ``spec`` is malformed.
    """
    parsed = parse_semver(version)
    for op, bound in parse_version_range(spec):
        cmp = parsed.compare(bound)
        ok = {
            "==": cmp == 0,
            "!=": cmp != 0,
            "<": cmp < 0,
            "<=": cmp <= 0,
            ">": cmp > 0,
            ">=": cmp >= 0,
        }
        if not ok[op]:
            return False
    return True
