"""Breaking-change detection between two versions of a data contract.

Datasets (ODCS schema objects) and their properties are matched by ``name`` and
walked recursively (``properties`` of objects, ``items`` of arrays). Severity
rules, from the point of view of everyone already relying on the old version:

* error — dataset or field removed, logical/physical type or physical name changed,
  optional → required, uniqueness or primary key changed, classification changed,
  allowed values removed, a length/range/pattern/format constraint tightened;
* warning — required → optional, allowed values added, constraint loosened,
  required field added, quality rules changed, other type options changed;
* info — datasets or optional fields added, descriptions and any other attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dq_metadata.models import DataContract
from dq_registries.domain.contracts._constraints import constraint_changes, valid_values_changes
from dq_registries.domain.contracts.change import Change, Severity

__all__ = ["diff"]

# Contract-level keys that are not part of what a version promises.
_UNVERSIONED = frozenset({"version", "status", "schema"})
_TYPE_KEYS = ("logicalType", "physicalType", "physicalName")
_FLAG_KEYS = ("required", "unique", "primaryKey", "primaryKeyPosition", "classification")
# ODCS defaults: an absent flag means the same as its default value.
_DEFAULTS: dict[str, Any] = {"primaryKey": False, "primaryKeyPosition": -1}
_HANDLED = frozenset(
    {"name", "properties", "items", "logicalTypeOptions", "quality", *_TYPE_KEYS, *_FLAG_KEYS}
)


def diff(old: DataContract, new: DataContract) -> list[Change]:
    """Every classified change from ``old`` to ``new`` (empty when they are equal)."""
    before, after = old.to_odcs(), new.to_odcs()
    changes = _attribute_changes(before, after, "", skip=_UNVERSIONED)
    changes += _dataset_changes(before.get("schema") or [], after.get("schema") or [])
    return changes


def _by_name(elements: Sequence[Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for index, element in enumerate(elements):
        if isinstance(element, Mapping):
            out.setdefault(str(element.get("name", f"#{index}")), element)
    return out


def _dataset_changes(old: Sequence[Any], new: Sequence[Any]) -> list[Change]:
    before, after = _by_name(old), _by_name(new)
    changes: list[Change] = []
    for name in before.keys() - after.keys():
        changes.append(Change("dataset_removed", "error", f"schema[{name}]", "dataset removed"))
    for name in sorted(before.keys() & after.keys()):
        changes += _element_changes(before[name], after[name], f"schema[{name}]", dataset=True)
    for name in after.keys() - before.keys():
        changes.append(Change("dataset_added", "info", f"schema[{name}]", "dataset added"))
    return sorted(changes, key=lambda c: c.path)


def _property_changes(old: Sequence[Any], new: Sequence[Any], path: str) -> list[Change]:
    before, after = _by_name(old), _by_name(new)
    changes: list[Change] = []
    for name in sorted(before.keys() - after.keys()):
        where = f"{path}.properties[{name}]"
        changes.append(Change("field_removed", "error", where, "field removed"))
    for name in sorted(before.keys() & after.keys()):
        where = f"{path}.properties[{name}]"
        changes += _element_changes(before[name], after[name], where, dataset=False)
    for name in sorted(after.keys() - before.keys()):
        where = f"{path}.properties[{name}]"
        if after[name].get("required") is True:
            changes.append(Change("field_added", "warning", where, "required field added"))
        else:
            changes.append(Change("field_added", "info", where, "optional field added"))
    return changes


def _element_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, *, dataset: bool
) -> list[Change]:
    changes = _type_changes(old, new, path, dataset=dataset)
    if not dataset:
        changes += _flag_changes(old, new, path)
    changes += constraint_changes(
        old.get("logicalTypeOptions"), new.get("logicalTypeOptions"), path
    )
    changes += _quality_changes(old.get("quality"), new.get("quality"), path)
    changes += _attribute_changes(old, new, path, skip=_HANDLED)
    changes += _property_changes(old.get("properties") or [], new.get("properties") or [], path)
    changes += _items_changes(old.get("items"), new.get("items"), path)
    return changes


def _type_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, *, dataset: bool
) -> list[Change]:
    changes = []
    for key in _TYPE_KEYS:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        # A table becoming a view keeps its rows readable; a column changing type does not.
        severity: Severity = "warning" if dataset and key == "physicalType" else "error"
        kind = "physical_name_changed" if key == "physicalName" else "type_changed"
        changes.append(
            Change(kind, severity, f"{path}.{key}", f"{key} changed from {before!r} to {after!r}")
        )
    return changes


def _flag_changes(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[Change]:
    changes = []
    was_required, is_required = old.get("required") is True, new.get("required") is True
    if is_required and not was_required:
        changes.append(Change("made_required", "error", f"{path}.required", "optional → required"))
    elif was_required and not is_required:
        changes.append(
            Change("made_optional", "warning", f"{path}.required", "required → optional")
        )
    if old.get("unique", False) != new.get("unique", False):
        changes.append(
            Change("uniqueness_changed", "error", f"{path}.unique", _was(old, new, "unique"))
        )
    for key in ("primaryKey", "primaryKeyPosition"):
        if old.get(key, _DEFAULTS[key]) != new.get(key, _DEFAULTS[key]):
            changes.append(
                Change("primary_key_changed", "error", f"{path}.{key}", _was(old, new, key))
            )
    if old.get("classification") != new.get("classification"):
        changes.append(
            Change(
                "classification_changed",
                "error",
                f"{path}.classification",
                _was(old, new, "classification"),
            )
        )
    return changes


def _was(old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> str:
    return f"{key} changed from {old.get(key)!r} to {new.get(key)!r}"


def _quality_changes(old: Any, new: Any, path: str) -> list[Change]:
    if old == new:
        return []
    changes = valid_values_changes(old, new, path)
    changes.append(Change("quality_changed", "warning", f"{path}.quality", "quality rules changed"))
    return changes


def _items_changes(old: Any, new: Any, path: str) -> list[Change]:
    where = f"{path}.items"
    if old == new:
        return []
    if not isinstance(new, Mapping):
        return [Change("field_removed", "error", where, "array items definition removed")]
    if not isinstance(old, Mapping):
        return [Change("items_defined", "warning", where, "array items definition added")]
    return _element_changes(old, new, where, dataset=False)


def _attribute_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, *, skip: frozenset[str]
) -> list[Change]:
    changes = []
    for key in sorted((old.keys() | new.keys()) - skip):
        if old.get(key) == new.get(key):
            continue
        where = f"{path}.{key}" if path else key
        verb = "added" if key not in old else "removed" if key not in new else "changed"
        changes.append(Change("attribute_changed", "info", where, f"{key} {verb}"))
    return changes
