"""Blob names: where heads, revisions and index entries of a scope live.

Every name starts with ``{prefix}{tenant}/{environment}/{kind}/`` built only from
validated ids, and every other segment is produced here from
:func:`~dq_stores.keys.encode_key` or hex digits, so no key, value or sort key
can add a ``/`` or ``..`` and climb out of its scope::

    {base}h/{key}                      head: the committed current revision
    {base}r/{key}/{revision:012d}      immutable copy of every superseded head
    {base}r/{key}/pruned               empty: prune_history removed older revisions
    {base}s/{a|d}/{order}              sort index over every live document
    {base}x/{field}/{value}/{a|d}/{order}   one posting per (field, value)
    {base}x/{search field}/{value}/a/{order} a search token's posting (ascending only)
    {scope}_tx/{id}                    record of a multi-document commit (ADR 0010)

``order`` encodes ``(sort_key, key)`` so that plain name order is the query
order (``a`` names ascend, ``d`` names descend: inverted digits), followed by a
digest of the whole index entry, so an entry's name fixes everything its
metadata says and two writers can never leave different metadata under one name.

A part longer than ``TRUNC_BYTES`` keeps its first ``TRUNC_BYTES`` bytes and a
marker plus digest instead of the rest (blob names stop at 1,024 characters).
Name order then still equals query order except *within* a run of entries whose
names agree up to that marker (:func:`order_group`); such a run is contiguous in
a listing, and the reader sorts it by the real values kept in the entry's
metadata — so order and keyset paging are exact for every length.
"""

from __future__ import annotations

import hashlib
import re

from dq_metadata.errors import Problem, ValidationError
from dq_metadata.scope import Scope
from dq_stores.keys import encode_key
from dq_stores.search import SEARCH_FIELDS

__all__ = [
    "MAX_PREFIX",
    "Layout",
    "order_group",
    "order_name",
    "order_start",
    "search_name_prefix",
    "search_value_name",
    "value_name",
]

MAX_PREFIX = 64
#: Bytes of a sort key or key kept in order names; longer ones are truncated + digest.
TRUNC_BYTES = 120
_VALUE_BUDGET = 80
#: Escaped characters a long search value keeps before its digest (+ "_h" + 32 hex ≤ 80).
_SEARCH_KEPT = _VALUE_BUDGET - 34
_HEX = "0123456789abcdefg"  # 'g' marks a truncated part: sorts after any same-prefix digit
_INVERT = str.maketrans(_HEX, _HEX[::-1])
_PREFIX_RE = re.compile(r"(?:[a-z0-9][a-z0-9._-]*/)*")


def normalize_prefix(prefix: str) -> str:
    """Validate a container prefix and return it with a trailing ``/`` (or ``""``)."""
    if not isinstance(prefix, str):
        raise ValidationError("invalid prefix", [Problem("prefix", "must be a string")])
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if len(prefix) > MAX_PREFIX or not _PREFIX_RE.fullmatch(prefix) or ".." in prefix:
        raise ValidationError(
            "invalid prefix",
            [Problem("prefix", f"use ≤ {MAX_PREFIX} chars of a-z 0-9 . _ - separated by '/'")],
        )
    return prefix


def _ordered_hex(text: str) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= TRUNC_BYTES:
        return raw.hex()
    # The first TRUNC_BYTES bytes in order, then 'g' (after every hex digit: a long
    # value sorts after the exact TRUNC_BYTES-byte value it extends) and a digest.
    # Long values sharing those bytes form one run, re-sorted by the reader.
    return raw[:TRUNC_BYTES].hex() + "g" + hashlib.sha256(raw).hexdigest()[:32]


def order_name(sort_key: str, key: str, descending: bool, version: str = "") -> str:
    """The name suffix whose plain string order is ``(sort_key, key)`` order.

    Ascending: ``hex(sort) '!' hex(key)`` ('!' sorts before every digit, so a
    shorter sort key comes first). Descending: every digit inverted, each part
    closed by '~' (which sorts after every digit), so the order reverses exactly.
    ``version`` (the index digest) goes last: it only separates entries of one key.
    """
    s, k = _ordered_hex(sort_key), _ordered_hex(key)
    if not descending:
        return f"{s}!{k}!{version}"
    return f"{s.translate(_INVERT)}~{k.translate(_INVERT)}~{version}"


def order_group(suffix: str, descending: bool) -> str | None:
    """The run an order name belongs to, or ``None`` when its name order is exact.

    Names of one run agree up to a truncation marker, so their name order says
    nothing about their real order; all names of a run are adjacent in a listing.
    """
    sep, marker = ("~", "0") if descending else ("!", "g")  # 'g' inverts to '0'
    parts = suffix.split(sep, 2)
    if len(parts) < 3:
        return None
    sort_part, key_part = parts[0], parts[1]
    if marker in sort_part:
        return sort_part[: sort_part.index(marker)]
    if marker in key_part:
        return sort_part + sep + key_part[: key_part.index(marker)]
    return None


def order_start(sort_key: str, descending: bool) -> str:
    """A name suffix ≤ every order name whose sort key is at or beyond ``sort_key``
    in the listing direction (used as a conservative ``start_from``)."""
    raw = sort_key.encode("utf-8")[:TRUNC_BYTES].hex()
    return raw.translate(_INVERT) if descending else raw


def value_name(value: str) -> str:
    """Injective, safe name segment for an indexed value (digest form when long)."""
    name = encode_key(value)
    if len(name) > _VALUE_BUDGET and not name.startswith("_h"):
        return "_h" + hashlib.sha256(value.encode("utf-8")).hexdigest()
    return name


def _escaped_head(value: str, budget: int) -> tuple[str, bool]:
    """``encode_key(value)`` cut after the last whole character that fits ``budget``
    (never inside an ``_xx`` escape), and whether anything was cut.

    ``encode_key`` escapes each character on its own, so the encoding of a prefix is
    a prefix of the encoding (per character, to avoid its digest form beyond 180).
    """
    out: list[str] = []
    size = 0
    for ch in value:
        part = encode_key(ch)
        if size + len(part) > budget:
            return "".join(out), True
        out.append(part)
        size += len(part)
    return "".join(out), False


def search_value_name(value: str) -> str:
    """Name segment of a search field's value whose *prefixes* are listable.

    ``encode_key(value)`` (the same as :func:`value_name`) when at most 80
    characters; beyond, its first whole characters within ``_SEARCH_KEPT`` then
    ``_h`` and a 128-bit digest of the value. ``_h`` never occurs in an encoding
    ('h' is no hex digit), so names stay injective and every value starting with a
    term lies under the listing prefix :func:`search_name_prefix` of that term.
    """
    name, cut = _escaped_head(value, _VALUE_BUDGET)
    if not cut:
        return name
    kept, _ = _escaped_head(value, _SEARCH_KEPT)
    return kept + "_h" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def search_name_prefix(term: str) -> str:
    """Name prefix under which lie the values of every token that starts with ``term``.

    Exact while the term's encoding fits ``_SEARCH_KEPT`` characters (every ASCII
    token, at most 32 characters); beyond, it also selects other values sharing
    those characters, which the reader re-checks.
    """
    return _escaped_head(term, _SEARCH_KEPT)[0]


class Layout:
    """Blob names of one container prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = normalize_prefix(prefix)

    def tenant(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}/"

    def scope(self, scope: Scope) -> str:
        return f"{self.prefix}{scope.tenant}/{scope.environment}/"

    def base(self, scope: Scope, kind: str) -> str:
        return f"{self.scope(scope)}{kind}/"

    def heads(self, scope: Scope, kind: str) -> str:
        return f"{self.base(scope, kind)}h/"

    def head(self, scope: Scope, kind: str, key: str) -> str:
        return f"{self.heads(scope, kind)}{encode_key(key)}"

    def txn(self, scope: Scope, txid: str) -> str:
        """Commit record of a multi-document commit (``_tx`` is never an id: no kind)."""
        return f"{self.scope(scope)}_tx/{txid}"

    def revisions(self, scope: Scope, kind: str, key: str) -> str:
        return f"{self.base(scope, kind)}r/{encode_key(key)}/"

    def revision(self, scope: Scope, kind: str, key: str, revision: int) -> str:
        return f"{self.revisions(scope, kind, key)}{revision:012d}"

    def pruned(self, scope: Scope, kind: str, key: str) -> str:
        """An empty blob among the revisions: ``prune_history`` ran on the key."""
        return f"{self.revisions(scope, kind, key)}pruned"

    @staticmethod
    def posting_dir(field: str | None, value: str | None, descending: bool) -> str:
        """Suffix (below the kind's base) of one index range; ``field=None``: sort index."""
        direction = "d" if descending else "a"
        if field is None or value is None:
            return f"s/{direction}/"
        if field in SEARCH_FIELDS:
            return f"x/{field}/{search_value_name(value)}/{direction}/"
        return f"x/{field}/{value_name(value)}/{direction}/"

    @staticmethod
    def search_prefix(field: str, term: str) -> str:
        """Suffix (below the kind's base) of every posting of ``field`` whose value
        starts with ``term`` (both directions; search fields have only ``a``)."""
        return f"x/{field}/{search_name_prefix(term)}"
