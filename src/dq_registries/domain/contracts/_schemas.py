"""The official ODCS JSON Schemas, one compiled validator per apiVersion, and error ranking.

Validation uses jsonschema-rs (a Rust validator; draft 2019-09 with ``format`` checks
on: ``date``, ``date-time``, ``uri``). A validator is compiled once per apiVersion and
kept for the life of the process (``functools.cache`` on immutable package data).
See ADR 0009.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.models.contract import ODCS_API_VERSIONS

__all__ = ["MAX_REPORTED", "check_document", "schema_resource"]

#: How many schema problems an error lists (the most relevant first).
MAX_REPORTED = 5
_MESSAGE_CHARS = 200
# The newest released schema; it declares (apiVersion enum) that it also validates
# documents written as v3.0.x, as the standard's own v3.1.0 examples are.
_RELEASED = "v3.1.0"
_WEAK = frozenset({"AnyOf", "OneOfNotValid", "OneOfMultipleValid", "Not", "FalseSchema"})
_V2 = re.compile(r"v?2(\.|$)")


def schema_resource(api_version: str) -> str:
    """File name of the official JSON Schema for ``api_version`` (package data)."""
    return f"odcs-json-schema-{api_version}.json"


@cache
def _validator(api_version: str) -> jsonschema_rs.Validator:
    text = resources.files(__package__).joinpath(schema_resource(api_version)).read_text("utf-8")
    return jsonschema_rs.validator_for(json.loads(text), validate_formats=True)


def check_document(document: Mapping[str, Any]) -> str:
    """Check ``document`` against the schema of the apiVersion it declares; return it.

    A document declaring v3.0.x that the v3.1.0 schema accepts is valid too (that
    schema lists the v3.0.x versions as its own).

    Raises:
        ValidationError: not ODCS v3 (v2, Data Contract Specification, unknown
            apiVersion: one line saying what to do), or the schema's most relevant
            problems, each with its JSON path; the message names the version.
    """
    api_version = _declared_version(document)
    if _validator(api_version).is_valid(document):
        return api_version
    older = ODCS_API_VERSIONS.index(api_version) < ODCS_API_VERSIONS.index(_RELEASED)
    if older and _validator(_RELEASED).is_valid(document):
        return api_version
    errors = list(_validator(api_version).iter_errors(document))
    problems = list(dict.fromkeys(_problem(e) for e in _ranked(errors)))
    more = (
        f" ({len(problems) - MAX_REPORTED} more not shown)" if len(problems) > MAX_REPORTED else ""
    )
    raise ValidationError(
        f"contract does not conform to ODCS {api_version} (the apiVersion it declares){more}",
        problems[:MAX_REPORTED],
    )


def _declared_version(document: Mapping[str, Any]) -> str:
    if "dataContractSpecification" in document:
        raise ValidationError(
            "this is a Data Contract Specification document (dataContractSpecification: "
            f"{str(document['dataContractSpecification'])[:20]}), not ODCS; convert it with "
            "`datacontract export --format odcs FILE` and publish the result",
            [Problem("$.dataContractSpecification", "not an ODCS document")],
        )
    declared = document.get("apiVersion")
    accepted = ", ".join(ODCS_API_VERSIONS)
    if isinstance(declared, str) and _V2.match(declared):
        raise ValidationError(
            f"ODCS {declared[:20]} (v2) documents are not supported; migrate the document "
            f"to ODCS v3 and declare one of {accepted}",
            [Problem("$.apiVersion", "ODCS v2")],
        )
    if declared not in ODCS_API_VERSIONS:
        shown = repr(declared)[:40] if declared is not None else "missing"
        raise ValidationError(
            f"ODCS apiVersion {shown} is not supported; declare one of {accepted}",
            [Problem("$.apiVersion", f"use one of {accepted}")],
        )
    return str(declared)


def _ranked(errors: list[jsonschema_rs.ValidationError]) -> list[jsonschema_rs.ValidationError]:
    # As jsonschema.exceptions.relevance: "none of the alternatives matched" says least,
    # so it goes last; then the shallowest path, then document order (sort is stable).
    return sorted(errors, key=lambda e: (_kind(e) in _WEAK, len(e.instance_path)))


def _kind(error: jsonschema_rs.ValidationError) -> str:
    return type(error.kind).__name__


def _problem(error: jsonschema_rs.ValidationError) -> Problem:
    if _kind(error) in _WEAK:
        closest = _closest(error)
        if closest is not None:  # as best_match: descend to the alternative that came closest
            inner = _problem(closest)
            return Problem(inner.loc, f"{inner.message} (the closest of the allowed shapes)")
        message = "matches none of the shapes the schema allows here"
    else:
        message = error.message
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 1] + "…"
    return Problem(_path(error.instance_path), message)


def _path(parts: list[str | int]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _closest(error: jsonschema_rs.ValidationError) -> jsonschema_rs.ValidationError | None:
    # The alternative with the fewest problems came closest; its most relevant one.
    groups = [group for group in getattr(error.kind, "context", []) or [] if group]
    if not groups:
        return None
    return _ranked(min(groups, key=len))[0]
