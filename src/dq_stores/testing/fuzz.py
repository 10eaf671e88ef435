"""Conformance: generated hostile input is stored exactly or refused — never changed.

Each test draws values with hypothesis and pushes them through the public port:
JSON-like bodies (NaN, ±Infinity, lone surrogates, deep nesting, huge ints,
``-0.0``, ``1e308``, tuples, bytes, non-``str`` keys), keys, sort keys, index
values, filters, bounds and page tokens. The one rule (DESIGN §3 "Exact or
refused"): the call succeeds and reads back equal — same bytes, same JSON types —
or it raises our ``ValidationError``. Any other exception fails the test.

Examples are bounded (``FUZZ_EXAMPLES`` each, no deadline) so one backend's run
stays within seconds even on Azurite.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dq_metadata.canonical import MAX_DEPTH, canonical_json, content_hash
from dq_metadata.errors import ValidationError
from dq_stores.backend import DocumentBackend
from dq_stores.documents import ANY, DocumentWrite, FieldFilter, IndexEntry, Query
from dq_stores.testing._helpers import SCOPE

__all__ = ["FuzzConformance", "exactly_equal", "hostile_json", "hostile_text"]

FUZZ_EXAMPLES = 25
_FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    # one subclass per backend runs each test: differing executors by design
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
    derandomize=False,
)

#: Long sort keys whose first 117 bytes agree: true order lies in their tails.
_SHARED_PREFIX = ["y" * 117 + t for t in ("b", "aaaa", "abbb", "a", "ba", "bbbbbb")]

#: Strings every store must refuse or keep exactly.
_NASTY = ["\ud83d", "a\udc00b", "\x00", "nul\x00in", "", " ", "\t", "😀", "é" * 300, "\u2028"]


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text from any plane, plus lone surrogates, NUL and a few long strings."""
    short = st.text(max_size=5)
    with_surrogate = st.builds(
        lambda a, n, b: a + chr(n) + b, short, st.integers(0xD800, 0xDFFF), short
    )
    return st.one_of(st.text(max_size=max_size), with_surrogate, st.sampled_from(_NASTY))


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"n": value}
    return value


def hostile_json() -> st.SearchStrategy[Any]:
    """JSON-like values and the near-misses JSON cannot hold exactly."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=10**18, max_value=10**40),
        st.sampled_from([3000, 3950, 4500]).map(lambda e: 10**e),  # mapped: repr-safe
        st.sampled_from([2**64, -(2**63)]),
        st.floats(),  # NaN and ±Infinity included
        st.sampled_from([-0.0, 0.0, 1.0, 1e308, -1e308, 5e-324, 1e16, 0.1]),
        hostile_text(),
        st.binary(max_size=4),
        st.sampled_from([object(), {1, 2}, frozenset(), (1, 2), b"x"]),
    )
    keys = st.one_of(hostile_text(12), st.integers(-3, 3), st.tuples(st.integers(0, 2)))
    tree = st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=4),
            st.tuples(children),
        ),
        max_leaves=12,
    )
    deep = st.one_of(st.integers(MAX_DEPTH - 3, MAX_DEPTH + 3), st.sampled_from([1000, 3000]))
    return st.one_of(tree, deep.map(_nested))


def exactly_equal(a: Any, b: Any) -> bool:
    """Equal with the same JSON types: ``1 != 1.0``, ``-0.0 != 0.0``, lists ≠ tuples."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, float):
            if x != y or math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif x != y:
            return False
    return True


def _refusal(value: Any) -> ValidationError | None:
    try:
        canonical_json(value)
    except ValidationError as exc:
        return exc
    return None


def _write(key: str, body: bytes, sort_key: str = "", **fields: tuple[str, ...]) -> DocumentWrite:
    return DocumentWrite(key, body, content_hash(body), IndexEntry(fields, sort_key))


class FuzzConformance:
    """Generated input through the public port: equal on read or ``ValidationError``."""

    @_FUZZ
    @given(value=hostile_json())
    def test_fuzz_bodies_read_back_exactly_or_are_refused(
        self, backend: DocumentBackend, value: Any
    ) -> None:
        refused = _refusal({"v": value})
        if refused is not None:
            # refused, naming the JSON path of the offending value
            assert [re.split(r"[.\[]", p.loc)[0] for p in refused.problems] == ["v"]
            return
        body = canonical_json({"v": value})
        assert exactly_equal(json.loads(body)["v"], value), "canonical JSON changed the value"
        backend.put(SCOPE, "fuzz", _write("body", body), ANY)
        got = backend.get(SCOPE, "fuzz", "body")
        assert got.body == body
        assert exactly_equal(json.loads(got.body)["v"], value)

    @_FUZZ
    @given(key=hostile_text(300), sort_key=hostile_text(), value=hostile_text())
    def test_fuzz_keys_and_index_values_are_kept_or_refused(
        self, backend: DocumentBackend, key: str, sort_key: str, value: str
    ) -> None:
        body = canonical_json({"k": 1})
        try:
            backend.put(SCOPE, "fuzz", _write(key, body, sort_key, tag=(value,)), ANY)
        except ValidationError:
            return
        got = backend.get(SCOPE, "fuzz", key)
        assert (got.key, got.body, got.index.sort_key) == (key, body, sort_key)
        assert got.index.fields["tag"] == (value,)
        found = backend.query(SCOPE, "fuzz", Query((FieldFilter("tag", (value,)),), limit=1000))
        assert key in [d.key for d in found.items]

    @_FUZZ
    @given(bound=hostile_text(), value=hostile_text(), token=hostile_text(), desc=st.booleans())
    def test_fuzz_filters_bounds_and_tokens_answer_or_are_refused(
        self, backend: DocumentBackend, bound: str, value: str, token: str, desc: bool
    ) -> None:
        makers: list[Callable[[], Query]] = [
            lambda: Query(sort_key_min=bound, descending=desc),
            lambda: Query(sort_key_max=bound, descending=desc),
            lambda: Query((FieldFilter("tag", (value,)),), descending=desc),
            lambda: Query(page_token=token, descending=desc),
        ]
        for make in makers:
            with contextlib.suppress(ValidationError):
                backend.query(SCOPE, "fuzz", make())
                backend.query_tenant(SCOPE.tenant, "fuzz", make())
        with contextlib.suppress(ValidationError):
            backend.count(SCOPE, "fuzz", [FieldFilter("tag", (value,))])

    @settings(_FUZZ, max_examples=8)  # each example writes and pages a whole kind
    @example(sort_keys=_SHARED_PREFIX, long_keys=False, limit=1, desc=False)
    @example(sort_keys=_SHARED_PREFIX, long_keys=True, limit=2, desc=True)
    @example(sort_keys=["", "", "", ""], long_keys=True, limit=1, desc=False)
    @given(
        sort_keys=st.lists(
            st.one_of(
                st.text(max_size=8),
                st.text(st.sampled_from("aé😀\U0010ffff"), min_size=110, max_size=190),
                # around 120 bytes with one shared prefix: where a backend shortens names
                st.text(st.sampled_from("ab"), max_size=6).map(lambda t: "y" * 117 + t),
            ),
            min_size=1,
            max_size=7,
        ),
        long_keys=st.booleans(),
        limit=st.integers(1, 4),
        desc=st.booleans(),
    )
    def test_fuzz_sort_keys_page_back_in_order_without_dup_or_skip(
        self,
        backend: DocumentBackend,
        sort_keys: list[str],
        long_keys: bool,
        limit: int,
        desc: bool,
    ) -> None:
        kind = f"order{uuid.uuid4().hex[:16]}"
        body = canonical_json({})
        expected = []
        for i, sort_key in enumerate(sort_keys):
            # long keys share their first bytes, so order rests on the tail
            key = ("k" * 130 if long_keys else "") + f"{i % 3}-{i}"
            if backend_refuses(backend, kind, key, body, sort_key):
                continue
            expected.append((sort_key, key))
        expected.sort(reverse=desc)
        seen: list[tuple[str, str]] = []
        token = None
        while True:
            page = backend.query(SCOPE, kind, Query(limit=limit, descending=desc, page_token=token))
            seen.extend((d.index.sort_key, d.key) for d in page.items)
            if page.next_token is None:
                break
            token = page.next_token
        assert seen == expected


def backend_refuses(
    backend: DocumentBackend, kind: str, key: str, body: bytes, sort_key: str
) -> bool:
    """Put one document; True when the port refused it (only NUL or over-long sort keys)."""
    try:
        backend.put(SCOPE, kind, _write(key, body, sort_key), ANY)
    except ValidationError:
        assert "\x00" in sort_key or len(sort_key.encode("utf-8")) > 512
        return True
    return False
