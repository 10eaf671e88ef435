"""The libyaml fast path of ``load_yaml`` reads every text exactly as the ruamel
(YAML 1.2) path does: the same data, or the same refusal.

Properties over generated documents (JSON-like data written as block YAML, flow
YAML and JSON) and over generated plain scalars made of the characters that make
YAML 1.1 and 1.2 differ (``:``, ``0o``, ``_``, ``.``, ``yes``/``no``…).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_registries import yaml12
from dq_registries._yaml_fast import compose_fast

_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _outcome(load: Any) -> tuple[str, Any]:
    try:
        return "ok", load()
    except ValidationError as exc:
        return "refused", str(exc)


def _slow(text: str) -> Any:
    node = yaml12._compose(text, "document")
    return None if node is None else yaml12._Builder("document").build(node)


def _same(text: str) -> None:
    assert _outcome(lambda: yaml12.load_yaml(text)) == _outcome(lambda: _slow(text)), text


@settings(max_examples=200, deadline=None)
@given(data=_json, style=st.sampled_from(["dump_yaml", "flow", "block", "json"]))
def test_generated_documents_read_the_same_on_both_paths(data: Any, style: str) -> None:
    text = {
        "dump_yaml": lambda: yaml12.dump_yaml(data),
        "flow": lambda: yaml.safe_dump(data, default_flow_style=True, allow_unicode=True),
        "block": lambda: yaml.safe_dump(data, default_flow_style=False, allow_unicode=True),
        "json": lambda: json.dumps(data, ensure_ascii=False),
    }[style]()
    _same(text)


_plain = st.text(
    st.sampled_from(list("0123456789:._-+eExXoObB aynNtTfF~#&*!|>'\"%@`,[]{}?\t")),
    min_size=1,
    max_size=12,
)


@settings(max_examples=600, deadline=None)
@given(scalar=_plain, shape=st.sampled_from(["k: {}", "- {}", "[{}]", "{{k: {}}}", "{}: v"]))
def test_plain_scalars_resolve_the_same_on_both_paths(scalar: str, shape: str) -> None:
    _same(shape.format(scalar))


def test_texts_where_yaml_1_1_and_1_2_differ_syntactically_take_the_slow_path() -> None:
    for text in ["%YAML 1.1\n---\na: 1\n", 'a: "\\/"\n', "a: b\u2028c\n", "a: b\x85c\n"]:
        assert compose_fast(text, "plain") == (False, None)
        _same(text)
