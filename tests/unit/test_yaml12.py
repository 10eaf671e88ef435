"""YAML is read with YAML 1.2 core-schema rules; ambiguous documents are refused by line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_registries.domain.contracts import dump_odcs, load_odcs, parse_contract
from dq_registries.yaml12 import dump_yaml, load_yaml

# The YAML 1.2.2 core schema (§10.3.2), written out independently as the oracle.
_CORE_RULES: list[tuple[str, Any]] = [
    (r"null|Null|NULL|~|", lambda s: None),
    (r"true|True|TRUE", lambda s: True),
    (r"false|False|FALSE", lambda s: False),
    (r"[-+]?[0-9]+", int),
    (r"0o[0-7]+", lambda s: int(s[2:], 8)),
    (r"0x[0-9a-fA-F]+", lambda s: int(s[2:], 16)),
    (r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", float),
]


def _core(scalar: str) -> Any:
    for pattern, build in _CORE_RULES:
        if re.fullmatch(pattern, scalar):
            return build(scalar)
    return scalar


# Plain scalars that YAML 1.1 (PyYAML) and YAML 1.2 read differently.
_differ = st.one_of(
    st.builds("{}:{:02d}".format, st.integers(0, 99), st.integers(0, 59)),  # sexagesimal
    st.builds(
        "{}:{:02d}:{:02d}".format, st.integers(1, 99), st.integers(0, 59), st.integers(0, 59)
    ),
    st.sampled_from(["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO"]),
    st.sampled_from(["on", "On", "ON", "off", "Off", "OFF"]),
    st.builds("0{}".format, st.integers(0, 0o7777).map(lambda n: f"{n:o}")),  # 1.1 octal
    st.builds("0o{:o}".format, st.integers(0, 10**6)),  # 1.2 octal
    st.builds("{}_{:03d}".format, st.integers(1, 999), st.integers(0, 999)),  # 1.1 underscores
    st.builds("0b{:b}".format, st.integers(0, 255)),  # 1.1 binary
    st.builds("{}e{}".format, st.integers(1, 9), st.integers(0, 30)),  # 1.2-only float
    st.builds(
        "{:04d}-{:02d}-{:02d}".format, st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28)
    ),
    st.builds(
        "{:04d}-{:02d}-{:02d}T10:00:00Z".format,
        st.integers(1970, 2100),
        st.integers(1, 12),
        st.integers(1, 28),
    ),
    st.sampled_from(["=", "<<x", "+12", "-0", "1.", ".5", "0x1F", "1_000.5", ".infx"]),
)


@given(scalar=_differ)
def test_plain_scalars_resolve_by_the_yaml_1_2_core_schema(scalar: str) -> None:
    assert load_yaml(f"value: {scalar}\n") == {"value": _core(scalar)}


@given(scalar=_differ)
def test_values_that_differ_between_1_1_and_1_2_round_trip_through_dump(scalar: str) -> None:
    data = {"value": _core(scalar), "text": scalar, "list": [scalar, {"k": scalar}]}

    text = dump_yaml(data)

    assert load_yaml(text) == data
    # the export reads the same with a YAML 1.1 reader (dates aside: they are quoted)
    assert yaml.safe_load(text)["text"] == scalar


@given(scalar=_differ)
def test_contracts_keep_such_values_through_import_and_export(scalar: str) -> None:
    text = (
        "apiVersion: v3.1.0\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n"
        f"slaProperties:\n  - property: frequency\n    value: {scalar}\n"
    )

    contract = parse_contract(load_odcs(text))
    value = contract.to_odcs()["slaProperties"][0]["value"]

    assert value == _core(scalar)
    assert type(value) is type(_core(scalar))
    assert load_odcs(dump_odcs(contract, "yaml")) == contract.to_odcs()


def test_the_issue_examples() -> None:
    document = load_yaml("slaProperties: [{property: frequency, value: 14:30}]\na: NO\nb: on\n")

    assert document == {
        "slaProperties": [{"property": "frequency", "value": "14:30"}],
        "a": "NO",
        "b": "on",
    }
    assert load_yaml("a: 0777\nb: 0o777\nc: 2022-10-03\n") == {
        "a": 777,
        "b": 511,
        "c": "2022-10-03",
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a'"),
        ("base: &b {x: 1}\nc:\n  <<: *b\n", 3, "merge keys"),
        ("a: 1\n1: x\n", 2, "must be a string"),
        ("a:\n  true: x\n", 2, "must be a string"),
        ("a: !!binary aGVsbG8=\n", 1, "not supported"),
        ("a: !!timestamp 2022-10-03\n", 1, "not supported"),
        ("a: !!set {x}\n", 1, "not supported"),
        ("a: !!python/object/apply:os.system [ls]\n", 1, "not supported"),
        ("a: !!int twelve\n", 1, "not a valid int"),
        ("a: .nan\n", 1, "not a JSON number"),
        ("a:\n  - -.inf\n", 2, "not a JSON number"),
        ("a: &x [1, *x]\n", 1, "contains it"),
        ("a: 1\n---\nb: 2\n", 2, "single document"),
        ("a: [1, 2\n", None, "flow sequence"),
    ],
)
def test_ambiguous_or_non_json_documents_are_refused_naming_the_line(
    text: str, line: int | None, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        load_yaml(text, source="f.yaml")

    assert "f.yaml" in str(info.value)
    assert words in str(info.value)
    if line is not None:
        assert info.value.problems[0].loc == f"line {line}"


def test_a_yaml_1_1_directive_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"YAML 1\.1"):
        load_yaml("%YAML 1.1\n---\na: 14:30\n")


def test_aliases_share_one_value_without_copying() -> None:
    data = load_yaml("a: &x {b: [1, 2]}\nc: *x\nd: *x\n")

    assert data == {"a": {"b": [1, 2]}, "c": {"b": [1, 2]}, "d": {"b": [1, 2]}}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_is_none(text: str) -> None:
    assert load_yaml(text) is None


def test_the_cli_reads_job_and_action_files_as_yaml_1_2(tmp_path: Path) -> None:
    from dq_registries.cli._common import read_document

    path = tmp_path / "job.yaml"
    path.write_text("name: nightly\ntrigger:\n  at: 14:30\n  enabled: on\n", "utf-8")
    assert read_document(path) == {"name": "nightly", "trigger": {"at": "14:30", "enabled": "on"}}

    path.write_text("name: a\nname: b\n", "utf-8")
    with pytest.raises(ValidationError, match="line 2"):
        read_document(path)
