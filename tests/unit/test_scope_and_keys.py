import pytest
from hypothesis import given
from hypothesis import strategies as st

from dq_metadata import InvalidScopeError, Scope, ValidationError
from dq_stores.keys import MAX_NAME, decode_key, encode_key, is_digest_name, validate_key
from dq_stores.testing._helpers import HOSTILE_IDS, HOSTILE_KEYS

keys = st.text(min_size=1, max_size=300).filter(lambda k: "\x00" not in k)


def test_scope_accepts_plain_ids() -> None:
    scope = Scope("acme-corp", "prod.eu_1")
    assert str(scope) == "acme-corp/prod.eu_1"


@pytest.mark.parametrize("bad", [*HOSTILE_IDS, 42, None])
def test_scope_rejects_hostile_ids(bad: object) -> None:
    with pytest.raises(InvalidScopeError):
        Scope(bad, "prod")  # type: ignore[arg-type]
    with pytest.raises(InvalidScopeError):
        Scope("acme", bad)  # type: ignore[arg-type]


def test_invalid_scope_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="invalid tenant"):
        Scope("../etc", "prod")


@given(keys)
def test_encoding_is_reversible_and_safe(key: str) -> None:
    name = encode_key(key)
    assert len(name) <= MAX_NAME + 2
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
    if not is_digest_name(name):
        assert decode_key(name) == key


@given(keys, keys)
def test_distinct_keys_never_share_a_name_even_case_folded(a: str, b: str) -> None:
    if a != b:
        assert encode_key(a).lower() != encode_key(b).lower()


def test_hostile_keys_have_distinct_names() -> None:
    names = [encode_key(k) for k in HOSTILE_KEYS]
    assert len(set(names)) == len(HOSTILE_KEYS)
    assert all("." not in n and "/" not in n and "\\" not in n for n in names)


def test_long_keys_use_the_digest_form() -> None:
    name = encode_key("x" * 1000)
    assert is_digest_name(name)
    with pytest.raises(ValueError, match="digest"):
        decode_key(name)


@pytest.mark.parametrize("bad", ["", "a\x00", "k" * 1025, 5, "\udc80"])
def test_validate_key_rejects_only_empty_nul_oversized_and_non_text(bad: object) -> None:
    with pytest.raises(ValidationError):
        validate_key(bad)
