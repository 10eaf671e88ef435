"""Breaking-change classification between two contract versions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dq_metadata.models import DataContract
from dq_registries.domain.contracts import Change, diff


def _contract(*datasets: dict[str, Any], **extra: Any) -> DataContract:
    return DataContract.model_validate(
        {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": "orders",
            "version": "1.0.0",
            "status": "active",
            "schema": list(datasets),
            **extra,
        }
    )


def _orders(**customer_id: Any) -> dict[str, Any]:
    return {
        "name": "orders",
        "physicalType": "table",
        "properties": [
            {"name": "order_id", "logicalType": "string", "required": True, "primaryKey": True},
            {"name": "customer", "logicalType": "object", "properties": [
                {"name": "id", "logicalType": "integer", **customer_id},
                {"name": "email", "logicalType": "string", "classification": "restricted"},
            ]},
            {"name": "tags", "logicalType": "array", "items": {"logicalType": "string"}},
        ],
    }  # fmt: skip


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    return diff(_contract(old), _contract(new))


def _only(changes: list[Change]) -> Change:
    assert len(changes) == 1, changes
    return changes[0]


def _edit(path: list[Any], value: Any, *, base: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(base or _orders())
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


_DELETE = object()
_CUSTOMER_ID = ["properties", 1, "properties", 0]


def test_equal_contracts_have_no_changes() -> None:
    assert diff(_contract(_orders()), _contract(_orders())) == []


def test_a_removed_dataset_is_an_error() -> None:
    change = _only(diff(_contract(_orders(), {"name": "refunds"}), _contract(_orders())))

    assert (change.kind, change.severity, change.path) == (
        "dataset_removed",
        "error",
        "schema[refunds]",
    )


def test_an_added_dataset_is_info() -> None:
    change = _only(diff(_contract(_orders()), _contract(_orders(), {"name": "refunds"})))

    assert (change.kind, change.severity) == ("dataset_added", "info")


def test_a_removed_nested_field_is_an_error_with_its_full_path() -> None:
    new = _edit(["properties", 1, "properties"], [_orders()["properties"][1]["properties"][1]])

    change = _only(_changed(_orders(), new))

    assert change.severity == "error"
    assert change.kind == "field_removed"
    assert change.path == "schema[orders].properties[customer].properties[id]"


@pytest.mark.parametrize(
    ("path", "value", "kind", "severity"),
    [
        ([*_CUSTOMER_ID, "logicalType"], "string", "type_changed", "error"),
        ([*_CUSTOMER_ID, "physicalType"], "bigint", "type_changed", "error"),
        ([*_CUSTOMER_ID, "required"], True, "made_required", "error"),
        ([*_CUSTOMER_ID, "unique"], True, "uniqueness_changed", "error"),
        ([*_CUSTOMER_ID, "primaryKey"], True, "primary_key_changed", "error"),
        (["properties", 0, "primaryKey"], False, "primary_key_changed", "error"),
        (["properties", 0, "required"], False, "made_optional", "warning"),
        (
            ["properties", 1, "properties", 1, "classification"],
            "public",
            "classification_changed",
            "error",
        ),
        ([*_CUSTOMER_ID, "description"], "the customer", "attribute_changed", "info"),
        (["description"], "all orders", "attribute_changed", "info"),
        (["physicalType"], "view", "type_changed", "warning"),
        (["properties", 2, "items", "logicalType"], "integer", "type_changed", "error"),
    ],
)
def test_property_changes_are_classified(
    path: list[Any], value: Any, kind: str, severity: str
) -> None:
    change = _only(_changed(_orders(), _edit(path, value)))

    assert (change.kind, change.severity) == (kind, severity)


def test_array_item_paths_name_the_items() -> None:
    change = _only(_changed(_orders(), _edit(["properties", 2, "items", "logicalType"], "integer")))

    assert change.path == "schema[orders].properties[tags].items.logicalType"


def test_absent_flags_mean_their_defaults() -> None:
    assert _changed(_orders(), _edit([*_CUSTOMER_ID, "unique"], False)) == []
    assert _changed(_orders(), _edit([*_CUSTOMER_ID, "primaryKeyPosition"], -1)) == []


@pytest.mark.parametrize(
    ("old", "new", "severity"),
    [
        ({"maxLength": 20}, {"maxLength": 10}, "error"),
        ({"maxLength": 10}, {"maxLength": 20}, "warning"),
        ({"minLength": 1}, {"minLength": 2}, "error"),
        ({"minimum": 0}, {"minimum": -5}, "warning"),
        ({"exclusiveMaximum": 100}, {"exclusiveMaximum": 99.5}, "error"),
        ({}, {"maximum": 10}, "error"),
        ({"maximum": 10}, {}, "warning"),
        ({"minimum": "2020-01-01"}, {"minimum": "2021-01-01"}, "error"),
        ({"minimum": "2021-01-01"}, {"minimum": "2020-01-01"}, "warning"),
        ({}, {"pattern": "^[A-Z]+$"}, "error"),
        ({"pattern": "^[A-Z]+$"}, {"pattern": "^[A-Z]*$"}, "error"),
        ({"pattern": "^[A-Z]+$"}, {}, "warning"),
        ({"format": "i32"}, {"format": "i64"}, "error"),
        ({"uniqueItems": False}, {"uniqueItems": True}, "error"),
        ({"enum": ["a", "b"]}, {"enum": ["a"]}, "error"),
        ({"enum": ["a"]}, {"enum": ["a", "b"]}, "warning"),
        ({"timezone": False}, {"timezone": True}, "warning"),
    ],
)
def test_constraint_direction_decides_severity(
    old: dict[str, Any], new: dict[str, Any], severity: str
) -> None:
    before = _edit([*_CUSTOMER_ID, "logicalTypeOptions"], old)
    after = _edit([*_CUSTOMER_ID, "logicalTypeOptions"], new)

    change = _only(_changed(before, after))

    assert change.severity == severity
    assert change.path.startswith(
        "schema[orders].properties[customer].properties[id].logicalTypeOptions."
    )


def _with_valid_values(values: list[Any]) -> dict[str, Any]:
    rule = {"metric": "invalidValues", "mustBe": 0, "arguments": {"validValues": values}}
    return _edit([*_CUSTOMER_ID, "quality"], [rule])


def test_removing_a_valid_value_from_a_quality_rule_is_an_error() -> None:
    changes = _changed(_with_valid_values(["a", "b", None]), _with_valid_values(["a", None]))

    kinds = {(c.kind, c.severity) for c in changes}
    assert ("enum_values_removed", "error") in kinds


def test_adding_a_valid_value_is_only_a_warning() -> None:
    changes = _changed(_with_valid_values(["a"]), _with_valid_values(["a", "b"]))

    assert {c.severity for c in changes} == {"warning"}
    assert "enum_values_added" in {c.kind for c in changes}


def test_adding_fields_is_never_breaking() -> None:
    optional = _edit(["properties"], [*_orders()["properties"], {"name": "note"}])
    required = _edit(["properties"], [*_orders()["properties"], {"name": "n", "required": True}])

    assert _only(_changed(_orders(), optional)).severity == "info"
    assert _only(_changed(_orders(), required)).severity == "warning"


def test_version_and_status_are_not_content_changes() -> None:
    old = _contract(_orders())
    new = DataContract.model_validate({**old.to_odcs(), "version": "2.0.0", "status": "retired"})

    assert diff(old, new) == []
