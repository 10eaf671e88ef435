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
    "MAX_VERSION_LENGTH",
    "VERSION_FORMS",
    "normalize_version",
    "parse_semver",
    "parse_version_range",
    "semver_sort_key",
    "time_sort_key",
    "version_in_range",
]

#: Longest version string accepted, in characters (keeps every sort key small).
MAX_VERSION_LENGTH = 128
#: Width numbers up to 20 digits are zero-padded to (longer ones get a length prefix).
_NUM = 20
#: What a version may look like; shown in every "no defined order" error.
VERSION_FORMS = (
    "semver MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] (e.g. 1.2.0, 1.0.0-rc.1), "
    "or a shorthand: 2 or 2.0 (missing parts are 0), v2.0.1 / V2 (leading v dropped)"
)
_SHORTHAND = re.compile(r"[vV]?(?P<core>\d+(?:\.\d+){0,2})(?P<rest>[-+].*)?", re.DOTALL | re.ASCII)


def normalize_version(version: str) -> str:
    """The semver 2.0 string a version stands for, keeping prerelease and build as written.

    Mapping (documented in ``docs/architecture.md``): a leading ``v``/``V`` is
    dropped and missing minor/patch parts are ``0`` — ``2`` ≡ ``2.0`` ≡ ``v2.0.0``
    ≡ ``2.0.0``; ``v2.1-rc.1`` ≡ ``2.1.0-rc.1``. A semver string maps to itself.

    Raises:
        ValidationError: the string has no defined order (message lists the forms).
    """
    if isinstance(version, str) and len(version) <= MAX_VERSION_LENGTH:
        match = _SHORTHAND.fullmatch(version)
        if match is not None:
            core = match["core"]
            core += ".0" * (2 - core.count("."))
            candidate = core + (match["rest"] or "")
            if semver.Version.is_valid(candidate):
                return candidate
    shown = version if not isinstance(version, str) or len(version) <= 80 else version[:77] + "..."
    limit = f"; at most {MAX_VERSION_LENGTH} characters" if isinstance(version, str) else ""
    raise ValidationError(
        "invalid version",
        [Problem("version", f"{shown!r} has no defined order; use {VERSION_FORMS}{limit}")],
    )


def parse_semver(version: str) -> semver.Version:
    """Parse a version (semver 2.0 or a shorthand, see :func:`normalize_version`).

    Numbers of any length keep their numeric order.

    Raises:
        ValidationError: the string has no defined order.
    """
    return semver.Version.parse(normalize_version(version))


def _number(digits: str) -> str:
    """Order-preserving encoding of a decimal number without leading zeros.

    Up to 20 digits: zero-padded to 20 (the encoding every stored key already uses).
    Longer: ``':' + len(str(n)) + str(n) + digits`` — ':' sorts after every digit, so
    longer numbers sort after all short ones, and among long ones by length, then by
    digits; numbers of equal value always encode equally.
    """
    if len(digits) <= _NUM:
        return digits.rjust(_NUM, "0")
    count = str(len(digits))
    return f":{len(count)}{count}{digits}"


def semver_sort_key(version: str) -> str:
    """Map a version to a string whose lexicographic order is semver precedence.

    ``1.9.0 < 1.10.0``; ``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0``;
    ``1.0.0-99999999999999999999 < 1.0.0-100000000000000000000`` (numbers of any
    length). Build metadata does not affect precedence and is dropped; shorthands
    map as in :func:`normalize_version` (``2.0`` and ``2.0.0`` share a key).
    """
    v = parse_semver(version)
    core = ".".join(_number(str(part)) for part in (v.major, v.minor, v.patch))
    if not v.prerelease:
        # '~' sorts after every character a pre-release encoding starts with.
        return core + "~"
    parts = []
    for ident in v.prerelease.split("."):
        if ident.isdigit():
            # numeric identifiers sort below alphanumeric ones, numerically
            parts.append("0" + _number(ident))
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


def parse_version_range(spec: str) -> list[tuple[str, semver.Version]]:
    """Parse a range: comma-separated ``<op><version>`` clauses, all required.

    Operators: ``== != < <= > >=``. A bound is any version :func:`parse_semver`
    accepts (``<2`` means ``<2.0.0``, ``>=v1.4`` means ``>=1.4.0``).

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
        try:
            bound = parse_semver(clause[len(op) :].strip())
        except ValidationError as exc:  # report it where the caller wrote it
            why = "; ".join(p.message for p in exc.problems) or str(exc)
            raise ValidationError(
                "invalid version range", [Problem("version_range", f"{clause!r}: {why}")]
            ) from None
        parsed.append((op, bound))
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
