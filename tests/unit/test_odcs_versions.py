"""ODCS versions: each document is checked against the schema of the apiVersion it declares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_metadata.models import DataContract
from dq_metadata.models.contract import ODCS_API_VERSIONS
from dq_metadata.scope import Scope
from dq_registries.domain.contracts import ContractRegistry, dump_odcs, load_odcs, parse_contract
from dq_registries.domain.contracts._schemas import MAX_REPORTED, schema_resource
from dq_registries.yaml12 import load_yaml
from dq_stores import ContractStore, JobDefinitionStore, MemoryBackend

MORE = sorted((Path(__file__).parents[1] / "data" / "odcs-more").glob("*.yaml"))
PACKAGE = Path(__file__).parents[2] / "src" / "dq_registries" / "domain" / "contracts"
SHARED_SCHEMAS = Path(__file__).parents[2].parent / "shared" / "odcs-schemas"


def _doc(api_version: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version, "kind": "DataContract", "id": "c", "version": "1.0.0",
        "status": "active", **fields,
    }  # fmt: skip


def _message(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc.value)


@pytest.mark.parametrize("path", MORE, ids=lambda p: p.name)
def test_real_documents_of_every_version_publish_and_export_losslessly(path: Path) -> None:
    text = path.read_text("utf-8")
    with MemoryBackend() as backend:
        registry = ContractRegistry(
            Scope("acme", "prod"),
            ContractStore(backend),
            job_definitions=JobDefinitionStore(backend),
        )
        contract = registry.import_odcs(text)
        registry.publish(contract, actor="alice")

        for fmt in ("yaml", "json"):
            exported = registry.export_odcs(contract.id, contract.version, fmt)  # type: ignore[arg-type]
            back = json.loads(exported) if fmt == "json" else load_yaml(exported)
            assert back == load_yaml(text)
            assert back["apiVersion"] == load_yaml(text)["apiVersion"]


# Shapes that v3.0.x allows and v3.1.0 does not (see odcs-schemas/README.md).
_V30_ONLY = {
    "boolean exclusiveMaximum": {
        "schema": [{"name": "t", "properties": [{
            "name": "n", "logicalType": "integer",
            "logicalTypeOptions": {"maximum": 10, "exclusiveMaximum": True},
        }]}],
    },
    "quality rule without metric": {
        "schema": [{"name": "t", "quality": [{"rule": "countCheck", "type": "library"}]}],
    },
    "team as a list": {"team": [{"username": "alice", "role": "owner"}]},
}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(_V30_ONLY))
@pytest.mark.parametrize("api_version", ["v3.0.0", "v3.0.1", "v3.0.2"])
def test_v3_0_shapes_are_accepted_under_v3_0(shape: str, api_version: str) -> None:
    contract = parse_contract(_doc(api_version, **_V30_ONLY[shape]))

    assert dump_odcs(contract, "json").count(api_version) == 1
    assert contract.to_odcs() == _doc(api_version, **_V30_ONLY[shape])


@pytest.mark.parametrize("shape", ["boolean exclusiveMaximum", "quality rule without metric"])
def test_v3_0_shapes_are_refused_under_v3_1_naming_the_version(shape: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_contract(_doc("v3.1.0", **_V30_ONLY[shape]))

    assert "ODCS v3.1.0" in _message(info)
    assert all(p.loc.startswith("$") for p in info.value.problems)


def test_a_v3_2_document_is_accepted_and_keeps_its_version() -> None:
    prop = {"name": "s", "logicalType": "string", "enum": [{"value": "a", "label": "A"}]}
    document = _doc("v3.2.0", schema=[{"name": "t", "properties": [prop]}])

    assert parse_contract(document).to_odcs() == document
    with pytest.raises(ValidationError, match=r"ODCS v3\.1\.0"):
        parse_contract({**document, "apiVersion": "v3.1.0"})


def test_a_v2_document_gets_one_line_saying_what_to_do() -> None:
    v2 = {
        "apiVersion": "v2.2.2", "kind": "DataContract", "uuid": "u", "version": "1.0.0",
        "datasetName": "orders", "quantumName": "orders", "status": "current", "type": "tables",
        "dataset": [{"table": "orders", "columns": [{"column": "id"}] * 40}],
    }  # fmt: skip

    with pytest.raises(ValidationError) as info:
        parse_contract(v2)

    message = _message(info)
    assert "\n" not in message
    assert len(message) < 300
    assert "v2" in message
    assert "v3" in message


def test_a_data_contract_specification_file_gets_one_line_saying_what_to_do() -> None:
    text = "dataContractSpecification: 1.1.0\nid: orders\ninfo:\n  title: Orders\n  version: 1.0.0\nmodels:\n  orders:\n    fields:\n      id: {type: string}\n"

    with pytest.raises(ValidationError) as info:
        parse_contract(load_odcs(text))

    message = _message(info)
    assert "\n" not in message
    assert len(message) < 300
    assert "Data Contract Specification" in message
    assert "datacontract export" in message


@pytest.mark.parametrize("declared", ["v4.0.0", "3.1.0", "v3.1", None, 3])
def test_an_unknown_api_version_lists_the_accepted_ones(declared: object) -> None:
    document = _doc("v3.1.0")
    if declared is None:
        del document["apiVersion"]
    else:
        document["apiVersion"] = declared

    with pytest.raises(ValidationError) as info:
        parse_contract(document)

    assert all(v in _message(info) for v in ODCS_API_VERSIONS)
    assert [p.loc for p in info.value.problems] == ["$.apiVersion"]


def test_the_model_refuses_an_unknown_api_version_too() -> None:
    with pytest.raises(ValueError, match=r"v3\.2\.0"):
        DataContract(apiVersion="v9.9.9", id="c", version="1.0.0", status="draft")


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"contractCreatedTs": "yesterday"}, "$.contractCreatedTs"),
        ({"contractCreatedTs": "2022-10-03"}, "$.contractCreatedTs"),
        ({"team": {"members": [{"username": "a", "dateIn": "soon"}]}}, "$.team.members[0].dateIn"),
        (
            {"servers": [{"server": "s", "type": "s3", "location": "not a uri"}]},
            "$.servers[0].location",
        ),
    ],
)
def test_format_checks_are_on(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_contract(_doc("v3.1.0", **fields))

    assert path in [p.loc for p in info.value.problems]


@settings(max_examples=25, deadline=None)
@given(bad=st.integers(min_value=MAX_REPORTED + 1, max_value=60))
def test_long_error_lists_show_the_first_few_each_with_its_path(bad: int) -> None:
    props = [{"name": f"c{i}", "required": "yes"} for i in range(bad)]

    with pytest.raises(ValidationError) as info:
        parse_contract(_doc("v3.1.0", schema=[{"name": "t", "properties": props}]))

    problems = info.value.problems
    assert len(problems) == MAX_REPORTED
    assert f"({bad - MAX_REPORTED} more not shown)" in _message(info)
    assert [p.loc for p in problems] == [
        f"$.schema[0].properties[{i}].required" for i in range(MAX_REPORTED)
    ]
    assert all(len(p.message) <= 200 for p in problems)


def test_concrete_problems_rank_before_none_of_the_alternatives_matched() -> None:
    quality = [{"metric": "nullValues", "mustBe": 0}, {"type": "sql"}]
    document = _doc("v3.1.0", kind="Contract", schema=[{"name": "t", "quality": quality}])

    with pytest.raises(ValidationError) as info:
        parse_contract(document)

    messages = [p.message for p in info.value.problems]
    assert info.value.problems[0].loc == "$.kind"
    weak = [i for i, m in enumerate(messages) if "closest of the allowed" in m]
    assert weak
    assert min(weak) > 0
    assert info.value.problems[weak[0]].loc.startswith("$.schema[0].quality[1]")


def test_a_parsed_contract_is_trusted_until_it_changes() -> None:
    contract = parse_contract(_doc("v3.1.0", description={"purpose": "p"}))

    assert parse_contract(contract) is contract
    contract.schema_ = []  # type: ignore[assignment]
    contract.__pydantic_extra__["kind"] = "Contract"  # type: ignore[index]
    contract.kind = "Contract"
    with pytest.raises(ValidationError, match=r"\$\.kind"):
        parse_contract(contract)


def test_a_contract_built_in_python_is_validated_against_the_schema() -> None:
    contract = DataContract.model_validate(_doc("v3.1.0", contractCreatedTs="yesterday"))

    with pytest.raises(ValidationError, match="contractCreatedTs"):
        parse_contract(contract)


@pytest.mark.parametrize("api_version", ODCS_API_VERSIONS)
def test_every_accepted_version_ships_its_official_schema_unchanged(api_version: str) -> None:
    shipped = PACKAGE / schema_resource(api_version)
    assert (
        json.loads(shipped.read_text("utf-8"))["properties"]["apiVersion"]["default"] == api_version
    )
    if SHARED_SCHEMAS.is_dir():
        assert shipped.read_bytes() == (SHARED_SCHEMAS / shipped.name).read_bytes()
