"""ODCS v3 import and export: YAML or JSON text in, validated ``DataContract`` out.

Each document is validated against the official JSON Schema of the ``apiVersion`` it
declares (v3.0.0 … v3.2.0, shipped unchanged in this package under the Apache
License 2.0: ``ODCS-SCHEMA-NOTICE.md`` and ``ODCS-SCHEMA-LICENSE`` next to them) and
exported under that same apiVersion. YAML is read as YAML 1.2 (core schema) by
:mod:`dq_registries.yaml12`: an unquoted ``2022-10-03`` or ``14:30`` remains the
string it is in the document, so import followed by export changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from dq_metadata.canonical import check_json
from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models import DataContract
from dq_metadata.models.base import problems_from
from dq_registries.domain.contracts._schemas import check_document, schema_resource
from dq_registries.yaml12 import dump_yaml, load_yaml

__all__ = [
    "SCHEMA_RESOURCE",
    "dump_odcs",
    "load_odcs",
    "parse_contract",
    "schema_resource",
    "validate_odcs",
]

#: The schema of the default apiVersion (kept for callers of the v3.1.0-only API).
SCHEMA_RESOURCE = schema_resource("v3.1.0")
Format = Literal["yaml", "json"]


def load_odcs(text: str | bytes) -> dict[str, Any]:
    """Parse ODCS YAML (1.2) or JSON text into a plain document (no validation yet).

    Raises:
        ValidationError: the text is not YAML/JSON, is ambiguous YAML (duplicate keys,
            merge keys, non-string keys, unsupported tags: the line is named), or is
            not a mapping at the top.
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
        document = load_yaml(text, source="contract document")
    if not isinstance(document, dict):
        raise ValidationError(
            "contract document must be a mapping",
            [Problem("$", f"got {type(document).__name__}")],
        )
    return document


_NOT_JSON = object()


def _load_json(text: str) -> Any:
    # JSON proper first: exact and fast. Ambiguous or inexact JSON is refused as in YAML:
    # duplicate keys, NaN/Infinity, integers too long to read, nesting beyond recursion.
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError:
        return _NOT_JSON  # e.g. a YAML flow mapping
    except ValueError:
        raise _json_error("an integer is too long to be read exactly") from None
    except RecursionError:
        raise _json_error("nested too deeply (documents may nest at most 64 levels)") from None


def _json_error(message: str) -> ValidationError:
    return ValidationError("contract document is not exact JSON", [Problem("$", message)])


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise _json_error(f"duplicate key {key!r}: a key may appear once per object")
    return result


def _no_constant(literal: str) -> Any:
    raise _json_error(f"{literal} is not a JSON number; write a number or a string")


def validate_odcs(document: Mapping[str, Any]) -> str:
    """Check ``document`` against the JSON Schema of the apiVersion it declares.

    Returns:
        The apiVersion whose schema was used.

    Raises:
        ValidationError: non-string keys, or the most relevant schema violations (at
            most :data:`~dq_registries.domain.contracts._schemas.MAX_REPORTED`, each located by
            JSON path, the message naming the version); ODCS v2 and Data Contract
            Specification documents get one line saying what to do instead.
    """
    _check_keys(document, "$")
    return check_document(document)


def _check_keys(value: Any, path: str) -> None:
    # JSON and ODCS keys are strings; a Python mapping may hold others.
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

    A ``DataContract`` this function returned earlier and that has not been changed
    since is returned as it is, without running the schema again (publishing an
    imported contract validates it once).

    Raises:
        ValidationError: a value that is not JSON (a ``date`` from ``yaml.safe_load``,
            a set, NaN…), schema violations (JSON paths) or model problems (field paths).
    """
    if isinstance(data, DataContract):
        document = data.to_odcs()
        if data._odcs_checked is not None and data._odcs_checked == document:
            return data
    elif isinstance(data, Mapping):
        document = dict(data)
        # A mapping from a YAML 1.1 loader (``yaml.safe_load``) may hold dates and
        # other non-JSON values: name their path here (``import_odcs`` reads YAML 1.2).
        check_json(document)
    else:
        raise ValidationError(
            f"a contract must be a DataContract or a mapping, got {type(data).__name__}"
        )
    validate_odcs(document)
    try:
        contract = DataContract.model_validate(document)
    except pydantic.ValidationError as exc:
        raise ValidationError("invalid contract", problems_from(exc)) from exc
    contract._odcs_checked = contract.to_odcs()
    return contract


def dump_odcs(contract: DataContract, fmt: Format = "yaml") -> str:
    """Serialise ``contract`` as ODCS YAML (block style, key order kept) or JSON.

    The document keeps the apiVersion it declares. YAML output quotes every string a
    YAML 1.1 or 1.2 reader would otherwise take for another type (``'14:30'``).

    Raises:
        ValidationError: ``fmt`` is neither ``yaml`` nor ``json``.
    """
    document = contract.to_odcs()
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return dump_yaml(document)
    raise ValidationError("invalid format", [Problem("fmt", "use 'yaml' or 'json'")])
