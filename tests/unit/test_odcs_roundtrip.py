"""ODCS v3 import/export: every real example round-trips, bad documents are located."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dq_metadata.errors import ValidationError
from dq_metadata.models import DataContract
from dq_registries.domain.contracts import dump_odcs, load_odcs, parse_contract

_DATA = Path(__file__).parents[1] / "data"
_COPY = _DATA / "odcs"
_SHARED = Path(__file__).parents[2].parent / "shared" / "odcs-examples"
EXAMPLES_DIR = _COPY if _COPY.is_dir() else _SHARED
# Real documents declaring v3.0.0, v3.0.2 and v3.2.0 (see tests/data/odcs-more/README.md).
MORE = sorted((_DATA / "odcs-more").glob("*.yaml"))
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml")) + MORE


class _PlainLoader(yaml.SafeLoader):
    """Independent reference loader: YAML without timestamp resolution."""


_PlainLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _reference(path: Path) -> object:
    return yaml.load(path.read_text("utf-8"), Loader=_PlainLoader)


def test_the_examples_are_found() -> None:
    assert len(EXAMPLES) >= 13
    assert {load_odcs(p.read_text("utf-8"))["apiVersion"] for p in MORE} == {
        "v3.0.0",
        "v3.0.2",
        "v3.2.0",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_every_example_round_trips_without_losing_a_field(path: Path, fmt: str) -> None:
    contract = parse_contract(load_odcs(path.read_text("utf-8")))

    exported = dump_odcs(contract, fmt)  # type: ignore[arg-type]

    parsed = json.loads(exported) if fmt == "json" else _reference_text(exported)
    assert parsed == _reference(path)
    # and the export is itself a valid ODCS document that imports to the same contract
    assert parse_contract(load_odcs(exported)).to_odcs() == contract.to_odcs()


def _reference_text(text: str) -> object:
    return yaml.load(text, Loader=_PlainLoader)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_imports_from_json_text_and_bytes(path: Path) -> None:
    as_json = json.dumps(_reference(path))

    assert parse_contract(load_odcs(as_json)).to_odcs() == _reference(path)
    assert parse_contract(load_odcs(path.read_bytes())).to_odcs() == _reference(path)


def test_unquoted_dates_stay_strings_through_import_and_export() -> None:
    text = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\ncontractCreatedTs: 2022-10-03T10:00:00Z\ncustomProperties:\n  - property: since\n    value: 2022-10-03\n"

    contract = parse_contract(load_odcs(text))

    assert contract.to_odcs()["contractCreatedTs"] == "2022-10-03T10:00:00Z"
    assert contract.to_odcs()["customProperties"][0]["value"] == "2022-10-03"
    assert "'2022-10-03'" in dump_odcs(contract, "yaml")


def test_documents_built_without_api_version_and_kind_export_them() -> None:
    contract = DataContract(id="c", version="1.0.0", status="draft")

    assert parse_contract(contract).to_odcs()["kind"] == "DataContract"


def test_schema_violations_are_reported_with_their_json_path() -> None:
    document = _reference(_COPY / "schema-table-column.odcs.yaml")
    assert isinstance(document, dict)
    document["schema"][0]["properties"][0]["required"] = "yes"
    document["kind"] = "Contract"

    with pytest.raises(ValidationError) as info:
        parse_contract(document)

    locations = {p.loc for p in info.value.problems}
    assert "$.kind" in locations
    assert "$.schema[0].properties[0].required" in locations


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ValidationError) as info:
        load_and_parse("apiVersion: v3.1.0\nkind: DataContract\nstatus: active\n")

    messages = [p.message for p in info.value.problems]
    assert any("id" in m and "required" in m for m in messages)
    assert any("version" in m and "required" in m for m in messages)
    assert "v3.1.0" in str(info.value)


def load_and_parse(text: str) -> DataContract:
    return parse_contract(load_odcs(text))


@pytest.mark.parametrize(
    "text",
    ["- a\n- b\n", "just a string", "", "key: [unclosed", b"\xff\xfe\x00"],
    ids=["list", "scalar", "empty", "broken-yaml", "not-utf8"],
)
def test_text_that_is_not_a_yaml_or_json_mapping_is_rejected(text: str | bytes) -> None:
    with pytest.raises(ValidationError):
        load_and_parse(text)  # type: ignore[arg-type]


def test_non_string_keys_are_rejected_instead_of_silently_renamed() -> None:
    text = "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\ncustomProperties:\n  - property: x\n    value: {1: one}\n"

    with pytest.raises(ValidationError, match="must be a string"):
        load_and_parse(text)


def test_unknown_export_format_is_a_validation_error() -> None:
    contract = load_and_parse(EXAMPLES[0].read_text("utf-8"))

    with pytest.raises(ValidationError, match="fmt"):
        dump_odcs(contract, "xml")  # type: ignore[arg-type]


def test_the_copied_examples_match_the_shared_originals() -> None:
    if not _SHARED.is_dir():
        pytest.skip("the shared examples directory is not next to this checkout")
    for original in sorted(_SHARED.glob("*.yaml")):
        assert (_COPY / original.name).read_bytes() == original.read_bytes()
    for original in sorted((_SHARED.parent / "odcs-more").glob("*.yaml")):
        assert (_DATA / "odcs-more" / original.name).read_bytes() == original.read_bytes()


def test_json_numbers_keep_their_type() -> None:
    text = '{"apiVersion": "v3.1.0", "kind": "DataContract", "id": "c", "version": "1.0.0", "status": "active", "customProperties": [{"property": "rows", "value": 1e5}]}'

    contract = load_and_parse(text)

    assert contract.to_odcs()["customProperties"][0]["value"] == 100000.0


def test_a_yaml_flow_mapping_is_still_yaml() -> None:
    text = "{apiVersion: v3.1.0, kind: DataContract, id: c, version: 1.0.0, status: active}"

    assert load_and_parse(text).version == "1.0.0"
