"""Hostile document text: every kind is parsed exactly or refused with our ValidationError.

Kinds: integers too long for any JSON reader (in JSON and in YAML, decimal and hex),
duplicate keys in JSON (ambiguous, as in YAML), ``NaN``/``Infinity`` literals in JSON,
deep JSON reached through the Python API, and YAML aliases that expand a small file
into a huge document ("billion laughs").
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.canonical import MAX_INT_BITS
from dq_metadata.errors import ValidationError
from dq_registries.domain.contracts.odcs import load_odcs
from dq_registries.yaml12 import MAX_ALIAS_EXPANSION, load_yaml

HEAD = '{"apiVersion":"v3.1.0","kind":"DataContract","id":"x","version":"1.0.0"'


def _exact_or_refused(load: Any, text: str, expected: Any) -> None:
    try:
        got = load(text)
    except ValidationError:
        return
    assert got == expected


@settings(max_examples=30, deadline=None)
@given(digits=st.integers(1, 9000), sign=st.sampled_from(["", "-"]))
def test_long_integers_are_exact_or_refused_in_json_and_yaml(digits: int, sign: str) -> None:
    literal = sign + "9" * digits
    expected = int(literal) if digits <= 4300 else None  # Python's own reading limit
    _exact_or_refused(
        load_odcs, HEAD + ',"n":' + literal + "}", {**json.loads(HEAD + "}"), "n": expected}
    )
    _exact_or_refused(load_yaml, "n: " + literal, {"n": expected})


@settings(max_examples=20, deadline=None)
@given(nibbles=st.integers(1, 2 * MAX_INT_BITS // 4))
def test_long_hex_integers_in_yaml_are_exact_or_refused(nibbles: int) -> None:
    literal = "0x" + "f" * nibbles
    _exact_or_refused(load_yaml, "n: " + literal, {"n": int(literal, 16)})


@settings(max_examples=30, deadline=None)
@given(
    key=st.sampled_from(["status", "id", "purpose", "x"]),
    nested=st.booleans(),
    first=st.text(max_size=5),
    second=st.text(max_size=5),
)
def test_duplicate_keys_in_json_are_refused_naming_the_key(
    key: str, nested: bool, first: str, second: str
) -> None:
    pair = f"{json.dumps(key)}:{json.dumps(first)},{json.dumps(key)}:{json.dumps(second)}"
    text = HEAD + (f',"description":{{{pair}}}}}' if nested else f",{pair}}}")
    with pytest.raises(ValidationError, match="duplicate key") as info:
        load_odcs(text)
    assert key in str(info.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_in_json_are_refused(literal: str) -> None:
    with pytest.raises(ValidationError, match=literal):
        load_odcs(HEAD + ',"description":{"purpose":' + literal + "}}")


@pytest.mark.parametrize("depth", [2000, 100_000])
def test_deep_json_through_the_python_api_is_refused(depth: int) -> None:
    with pytest.raises(ValidationError):
        load_odcs(HEAD + ',"x":' + "[" * depth + "]" * depth + "}")


def _laughs(levels: int, width: int = 9) -> str:
    lines = ["a: &a [" + ",".join(['"lol"'] * width) + "]"]
    names = "abcdefghijklmnopqrstuvwxyz"
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [" + ",".join([f"*{names[i - 1]}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9, 12])
def test_alias_bombs_are_refused_quickly(levels: int) -> None:
    started = time.perf_counter()
    with pytest.raises(ValidationError, match="alias"):
        load_yaml(_laughs(levels))
    assert time.perf_counter() - started < 5


def test_modest_alias_reuse_is_expanded_and_equal() -> None:
    text = "base: &b {type: string, required: true}\ncols: [*b, *b, *b]\n"
    assert load_yaml(text) == {
        "base": {"type": "string", "required": True},
        "cols": [{"type": "string", "required": True}] * 3,
    }
    assert MAX_ALIAS_EXPANSION >= 10_000
