"""ODCS v3 import and export: YAML or JSON text in, validated ``DataContract`` out.

Documents are validated against the official ODCS v3.1.0 JSON Schema, shipped
unchanged in this package under the Apache License 2.0 (``ODCS-SCHEMA-NOTICE.md``
and ``ODCS-SCHEMA-LICENSE`` next to it). YAML is read so that scalars stay as written: an unquoted
``2022-10-03`` remains the string it is in the document instead of turning into a
``datetime.date``, so import followed by export changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import yaml

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models import DataContract
from dq_metadata.models.base import problems_from

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = ["SCHEMA_RESOURCE", "dump_odcs", "load_odcs", "parse_contract", "validate_odcs"]

SCHEMA_RESOURCE = "odcs-json-schema-v3.1.0.json"
Format = Literal["yaml", "json"]

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _OdcsLoader(yaml.SafeLoader):
    """SafeLoader without the timestamp resolver: dates stay strings."""


_OdcsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _OdcsDumper(yaml.SafeDumper):
    """Block-style YAML that keeps key order and quotes date-like strings."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_OdcsDumper.add_representer(str, _str_representer)


@cache
def _validator() -> Validator:
    # Imported on first validation: services that only read contracts never pay for it.
    import jsonschema

    text = resources.files(__package__).joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def load_odcs(text: str | bytes) -> dict[str, Any]:
    """Parse ODCS YAML or JSON text into a plain document (no validation yet).

    Raises:
        ValidationError: the text is not YAML/JSON or not a mapping at the top.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValidationError("contract document is not UTF-8 text") from exc
    if not isinstance(text, str):
        raise ValidationError(f"contract document must be text, got {type(text).__name__}")
    document = _load_json(text) if text.lstrip().startswith("{") else _NOT_JSON
    if document is _NOT_JSON:
        document = _load_yaml(text)
    if not isinstance(document, dict):
        raise ValidationError(
            "contract document must be a mapping",
            [Problem("$", f"got {type(document).__name__}")],
        )
    return document


_NOT_JSON = object()


def _load_json(text: str) -> Any:
    # JSON proper first: YAML 1.1 would read numbers such as 1e5 as strings.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return _NOT_JSON  # e.g. a YAML flow mapping


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_OdcsLoader)
    except yaml.YAMLError as exc:
        problem = Problem("", " ".join(str(exc).split()))
        raise ValidationError("contract document is not valid YAML", [problem]) from exc


def validate_odcs(document: Mapping[str, Any]) -> None:
    """Check ``document`` against the ODCS v3.1.0 JSON Schema.

    Raises:
        ValidationError: with one problem per schema violation, located by JSON path.
    """
    _check_keys(document, "$")
    # dict.fromkeys: the schema's allOf branches can report one problem twice.
    problems = dict.fromkeys(
        Problem(e.json_path, e.message) for e in _validator().iter_errors(document)
    )
    if problems:
        raise ValidationError(
            "contract does not conform to ODCS v3", sorted(problems, key=lambda p: p.loc)
        )


def _check_keys(value: Any, path: str) -> None:
    # YAML allows non-string keys (``1: x``, ``yes: y``); JSON and ODCS do not.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    "contract does not conform to ODCS v3",
                    [Problem(path, f"key {key!r} must be a string")],
                )
            _check_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}[{index}]")


def parse_contract(data: DataContract | Mapping[str, Any]) -> DataContract:
    """Validate a mapping or model as an ODCS contract (schema first, then our model).

    Raises:
        ValidationError: schema violations (JSON paths) or model problems (field paths).
    """
    if isinstance(data, DataContract):
        document = data.to_odcs()
    elif isinstance(data, Mapping):
        document = dict(data)
    else:
        raise ValidationError(
            f"a contract must be a DataContract or a mapping, got {type(data).__name__}"
        )
    validate_odcs(document)
    try:
        return DataContract.model_validate(document)
    except pydantic.ValidationError as exc:
        raise ValidationError("invalid contract", problems_from(exc)) from exc


def dump_odcs(contract: DataContract, fmt: Format = "yaml") -> str:
    """Serialise ``contract`` as ODCS YAML (block style, key order kept) or JSON.

    Raises:
        ValidationError: ``fmt`` is neither ``yaml`` nor ``json``.
    """
    document = contract.to_odcs()
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            document, Dumper=_OdcsDumper, sort_keys=False, allow_unicode=True, width=100
        )
    raise ValidationError("invalid format", [Problem("fmt", "use 'yaml' or 'json'")])
