"""The filesystem backend's fast paths behave exactly like the plain code they replace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import ValidationError
from dq_metadata.scope import Scope
from dq_stores.documents import MUST_NOT_EXIST, DocumentWrite
from dq_stores.filesystem import FilesystemBackend
from dq_stores.filesystem._writes import _ENCODE, encode_intent
from dq_stores.keys import MAX_KEY_BYTES, encode_key, validate_key
from dq_stores.testing._helpers import HOSTILE_KEYS

# Each test runs on both get read paths: the C accelerator and pure Python.
pytestmark = pytest.mark.usefixtures("fs_read_path")

SCOPE = Scope("acme", "prod")
KIND = "contract"


@pytest.mark.parametrize("key", [*HOSTILE_KEYS, "plain", 'q"uo\\te\n\x01\u2028😀'])
def test_the_intent_line_is_the_compact_json_of_the_intents(key: str) -> None:
    for intents in ([(KIND, key, 7)], [(KIND, key, 1), ("other", key + "x", 12)]):
        line = encode_intent(intents)
        assert line == (_ENCODE([list(i) for i in intents]) + "\n").encode("utf-8")
        assert [tuple(i) for i in json.loads(line)] == intents


@pytest.mark.parametrize(
    "key",
    ["k", "a" * MAX_KEY_BYTES, "a" * (MAX_KEY_BYTES + 1), "", "a\x00b", "é" * 600, "\ud800", 5],
)
def test_validate_key_fast_path_accepts_and_rejects_as_before(key: object) -> None:
    def slow(value: object) -> bool:
        if not isinstance(value, str) or not value or "\x00" in value:
            return False
        try:
            return len(value.encode("utf-8")) <= MAX_KEY_BYTES
        except UnicodeEncodeError:
            return False

    if slow(key):
        assert validate_key(key) == key
    else:
        with pytest.raises(ValidationError):
            validate_key(key)


def test_a_new_key_commits_by_linking_its_first_revision_as_the_head(tmp_path: Path) -> None:
    kind_dir = tmp_path / SCOPE.tenant / SCOPE.environment / "docs" / KIND
    body = canonical_json({"v": 1})
    with FilesystemBackend(tmp_path) as backend:
        backend.put(SCOPE, KIND, DocumentWrite("other", body, content_hash(body)), MUST_NOT_EXIST)
        # the leftover of a writer that died before linking its head: never committed
        name = encode_key("k")
        (kind_dir / f"{name}.r1").write_bytes(b"partial")
        backend.put(SCOPE, KIND, DocumentWrite("k", body, content_hash(body)), MUST_NOT_EXIST)
        head, first = kind_dir / f"{name}.head", kind_dir / f"{name}.r1"
        assert os.path.samefile(head, first)
        assert backend.get(SCOPE, KIND, "k").body == body
        assert [p.name for p in kind_dir.iterdir() if p.name.startswith(".")] == []
