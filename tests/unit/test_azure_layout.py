"""Blob names of the Azure backend: order-preserving, injective, confined to their scope."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("azure.storage.blob")

from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_stores.azure_blob._layout import Layout, order_name, order_start, value_name

texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


@given(st.tuples(texts, texts), st.tuples(texts, texts))
def test_order_names_sort_like_sort_key_then_key(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a == b:
        return
    asc = order_name(*a, descending=False) < order_name(*b, descending=False)
    desc = order_name(*a, descending=True) < order_name(*b, descending=True)
    assert asc == (a < b)
    assert desc == (a > b)


@given(texts, texts, texts)
def test_order_start_never_skips_a_name_in_range(bound: str, sort_key: str, key: str) -> None:
    if sort_key >= bound:
        assert order_name(sort_key, key, False) >= order_start(bound, False)
    if sort_key <= bound:
        assert order_name(sort_key, key, True) >= order_start(bound, True)


def test_long_parts_stay_short_and_distinct() -> None:
    long_a, long_b = "x" * 400, "x" * 399 + "y"
    names = {
        order_name(s, k, bool(d)) for s in (long_a, long_b) for k in (long_a, "k") for d in (0, 1)
    }
    assert len(names) == 8
    assert all(len(n) < 600 for n in names)
    assert value_name("é" * 200) != value_name("é" * 199 + "e")
    assert len(value_name("é" * 200)) <= 80


def test_names_stay_under_the_scope_prefix() -> None:
    layout = Layout("dq/v1")
    scope = Scope("acme", "prod")
    for key in ("../../x", "a/b", "..", "%2e%2e", "A", "a"):
        assert layout.head(scope, "contract", key).startswith("dq/v1/acme/prod/contract/h/")
        assert "/../" not in layout.revision(scope, "contract", key, 3)
    assert layout.head(scope, "c", "A") != layout.head(scope, "c", "a")


@pytest.mark.parametrize("prefix", ["../x", "a/../b", "/abs", "UP", "a//b", "x" * 70])
def test_bad_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(ValidationError):
        Layout(prefix)
