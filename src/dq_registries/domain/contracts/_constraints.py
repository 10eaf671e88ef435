"""Direction-aware comparison of ODCS value constraints (``logicalTypeOptions``, valid values).

A constraint is *tightened* when data that was valid may now be rejected (an
error for consumers and producers alike) and *loosened* when the reverse holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from dq_registries.domain.contracts.change import Change

__all__ = ["constraint_changes", "valid_values_changes"]

# A higher lower bound or a lower upper bound rejects data that used to pass.
_LOWER_BOUNDS = frozenset({"minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties"})
_UPPER_BOUNDS = frozenset({"maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties"})
# Any change of these may reject data that used to pass.
_EXACT = frozenset({"pattern", "format"})


def constraint_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, path: str
) -> list[Change]:
    """Changes between two ``logicalTypeOptions`` mappings at ``path``."""
    old, new = old or {}, new or {}
    changes: list[Change] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        where = f"{path}.logicalTypeOptions.{name}"
        changes.extend(_option_change(name, before, after, where))
    return changes


def _option_change(name: str, before: Any, after: Any, where: str) -> list[Change]:
    if name in _LOWER_BOUNDS or name in _UPPER_BOUNDS:
        return [_bound_change(name, before, after, where, lower=name in _LOWER_BOUNDS)]
    if name == "enum":
        return _set_change(before or [], after or [], where)
    if name == "required":
        return _required_names_change(before or [], after or [], where)
    if name == "uniqueItems":
        if bool(after) and not bool(before):
            return [_tight(where, "items must now be unique")]
        return [Change("constraint_loosened", "warning", where, "items may now repeat")]
    if name in _EXACT:
        if after is None:
            return [Change("constraint_loosened", "warning", where, f"{name} {before!r} removed")]
        return [_tight(where, f"{name} changed from {before!r} to {after!r}")]
    return [
        Change("option_changed", "warning", where, f"{name} changed from {before!r} to {after!r}")
    ]


def _tight(where: str, message: str) -> Change:
    return Change("constraint_tightened", "error", where, message)


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    # ODCS dates/timestamps are ISO strings of one format, which order as strings.
    return isinstance(a, str) and isinstance(b, str) and len(a) == len(b)


def _bound_change(name: str, before: Any, after: Any, where: str, *, lower: bool) -> Change:
    if after is None:
        return Change("constraint_loosened", "warning", where, f"{name} {before!r} removed")
    if before is None:
        return _tight(where, f"{name} {after!r} added")
    if not _comparable(before, after):
        return _tight(where, f"{name} changed from {before!r} to {after!r}")
    tighter = after > before if lower else after < before
    if tighter:
        return _tight(where, f"{name} tightened from {before!r} to {after!r}")
    return Change(
        "constraint_loosened", "warning", where, f"{name} loosened from {before!r} to {after!r}"
    )


def _keys(values: Iterable[Any]) -> dict[str, Any]:
    return {json.dumps(v, sort_keys=True): v for v in values}


def _set_change(before: Iterable[Any], after: Iterable[Any], where: str) -> list[Change]:
    old, new = _keys(before), _keys(after)
    changes = []
    if removed := [old[k] for k in old.keys() - new.keys()]:
        changes.append(
            Change("enum_values_removed", "error", where, f"values no longer allowed: {removed}")
        )
    if added := [new[k] for k in new.keys() - old.keys()]:
        changes.append(
            Change("enum_values_added", "warning", where, f"values now allowed: {added}")
        )
    return changes


def _required_names_change(before: Iterable[Any], after: Iterable[Any], where: str) -> list[Change]:
    old, new = set(map(str, before)), set(map(str, after))
    changes = []
    if added := sorted(new - old):
        changes.append(_tight(where, f"now required: {added}"))
    if removed := sorted(old - new):
        changes.append(Change("constraint_loosened", "warning", where, f"now optional: {removed}"))
    return changes


def _valid_values(quality: Any) -> list[Any] | None:
    """Values allowed by ``invalidValues`` quality rules, or ``None`` without such a rule."""
    if not isinstance(quality, list):
        return None
    found: list[Any] | None = None
    for rule in quality:
        if not isinstance(rule, Mapping):
            continue
        arguments = rule.get("arguments")
        values = arguments.get("validValues") if isinstance(arguments, Mapping) else None
        values = rule.get("validValues", values)
        if isinstance(values, list):
            found = [*(found or []), *values]
    return found


def valid_values_changes(old_quality: Any, new_quality: Any, path: str) -> list[Change]:
    """Valid-value sets declared by quality rules (ODCS ``invalidValues`` / ``validValues``)."""
    before, after = _valid_values(old_quality), _valid_values(new_quality)
    if before is None or after is None:
        # A rule appearing or disappearing is reported as a quality change by the caller.
        return []
    return _set_change(before, after, f"{path}.quality.validValues")
