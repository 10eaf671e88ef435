"""Property tests of the breaking-change rules over generated nested schemas."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.models import DataContract
from dq_registries.domain.contracts import breaking, diff

_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_types = st.sampled_from(["string", "integer", "number", "date", "boolean"])


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"logicalType": _types},
        optional={
            "required": st.booleans(),
            "unique": st.booleans(),
            "classification": st.sampled_from(["public", "restricted"]),
            "description": st.text(max_size=10),
            "logicalTypeOptions": st.fixed_dictionaries(
                {}, optional={"maxLength": st.integers(0, 50), "minimum": st.integers(-5, 5)}
            ),
        },
    )


def _named(
    bodies: st.SearchStrategy[dict[str, Any]],
) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.tuples(_names, bodies), max_size=4, unique_by=lambda t: t[0]).map(
        lambda pairs: [{"name": name, **body} for name, body in pairs]
    )


_field_body = st.recursive(
    _leaf(),
    lambda inner: st.fixed_dictionaries(
        {"logicalType": st.just("object"), "properties": _named(inner)}
    ),
    max_leaves=12,
)
_properties = _named(_field_body)


@st.composite
def contracts(draw: st.DrawFn) -> dict[str, Any]:
    datasets = draw(
        st.lists(st.tuples(_names, _properties), min_size=1, max_size=3, unique_by=lambda t: t[0])
    )
    return {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "version": "1.0.0",
        "status": "active",
        "schema": [{"name": n, "properties": props} for n, props in datasets],
    }  # fmt: skip


def _property_lists(doc: dict[str, Any]) -> list[list[dict[str, Any]]]:
    found = []

    def walk(props: list[dict[str, Any]]) -> None:
        found.append(props)
        for prop in props:
            if "properties" in prop:
                walk(prop["properties"])

    for dataset in doc["schema"]:
        walk(dataset.setdefault("properties", []))
    return found


def _model(doc: dict[str, Any]) -> DataContract:
    return DataContract.model_validate(doc)


@settings(max_examples=150)
@given(contracts())
def test_a_contract_has_no_changes_against_itself(doc: dict[str, Any]) -> None:
    assert diff(_model(doc), _model(copy.deepcopy(doc))) == []


@settings(max_examples=150)
@given(contracts(), st.data())
def test_removing_any_field_is_always_breaking(doc: dict[str, Any], data: st.DataObject) -> None:
    new = copy.deepcopy(doc)
    lists = [props for props in _property_lists(new) if props]
    if not lists:
        return
    props = data.draw(st.sampled_from(lists))
    removed = props.pop(data.draw(st.integers(0, len(props) - 1)))

    errors = breaking(diff(_model(doc), _model(new)))

    assert any(
        c.kind == "field_removed" and c.path.endswith(f"[{removed['name']}]") for c in errors
    )


@settings(max_examples=150)
@given(contracts(), st.data(), _leaf())
def test_adding_a_field_is_never_breaking(
    doc: dict[str, Any], data: st.DataObject, body: dict[str, Any]
) -> None:
    new = copy.deepcopy(doc)
    props = data.draw(st.sampled_from(_property_lists(new)))
    props.append({"name": "zz_added_field", **body})

    changes = diff(_model(doc), _model(new))

    assert changes
    assert breaking(changes) == []


@settings(max_examples=150)
@given(contracts(), st.data())
def test_removing_a_dataset_is_always_breaking(doc: dict[str, Any], data: st.DataObject) -> None:
    new = copy.deepcopy(doc)
    gone = new["schema"].pop(data.draw(st.integers(0, len(new["schema"]) - 1)))

    errors = breaking(diff(_model(doc), _model(new)))

    assert any(c.kind == "dataset_removed" and c.path == f"schema[{gone['name']}]" for c in errors)
