"""Contract search: what text finds a contract, the hits a search returns, the backfill.

A contract is found through its :class:`~dq_metadata.models.ContractHead` (one
document per contract id, moved by every publish in the same commit as the new
version): the head carries the search tokens of the highest version, so a search
yields one hit per contract, for its highest version, and a publish costs no
extra write. See ADR 0015.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dq_metadata.errors import ConflictError
from dq_metadata.models import ContractHead, ContractSearchTokens, DataContract
from dq_metadata.scope import Scope
from dq_registries.domain.contracts._reads import ContractReads
from dq_stores.documents import at_revision
from dq_stores.search import SEARCH_BODY_FIELD, SEARCH_TITLE_FIELD, search_fields
from dq_stores.typed import ContractHeadStore

__all__ = [
    "ContractHit",
    "ContractSearchPage",
    "ReindexResult",
    "contract_texts",
    "reindex",
    "search",
    "searchable",
]

#: Longest summary kept on the head and shown in a hit, in characters.
SUMMARY_CHARS = 200
_REINDEX_ATTEMPTS = 5
# ODCS description sub-fields, most telling first
_DESCRIPTION_PARTS = ("purpose", "usage", "limitations")


@dataclass(frozen=True, slots=True)
class ContractHit:
    """One contract found: its id, highest version, name, summary and score."""

    contract_id: str
    version: str
    name: str | None
    summary: str | None
    score: int


@dataclass(frozen=True, slots=True)
class ContractSearchPage:
    """Hits, best first (ties by contract id), and the next page's token (``None``: end)."""

    hits: list[ContractHit]
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """Outcome of :meth:`ContractRegistry.reindex_search`: heads seen and rewritten."""

    contracts: int
    updated: int


def _strings(value: Any) -> Iterator[str]:
    """Every string inside ``value`` (a str, or lists/dicts of them), in order."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _description(value: Any) -> list[str]:
    """An ODCS description (a string, or purpose/usage/limitations/... mapping)."""
    if isinstance(value, dict):
        first = [value[k] for k in _DESCRIPTION_PARTS if isinstance(value.get(k), str)]
        rest = [v for k, v in value.items() if k not in _DESCRIPTION_PARTS and isinstance(v, str)]
        return first + rest
    return [value] if isinstance(value, str) else []


def _properties(props: Any, body: list[str]) -> None:
    for prop in props if isinstance(props, list) else []:
        if not isinstance(prop, dict):
            continue
        for name in ("name", "businessName"):
            if isinstance(prop.get(name), str):
                body.append(prop[name])
        body += _description(prop.get("description"))
        body += list(_strings(prop.get("tags")))
        _properties(prop.get("properties"), body)
        if isinstance(prop.get("items"), dict):
            _properties([prop["items"]], body)


def contract_texts(contract: DataContract) -> tuple[list[str], list[str]]:
    """``(title texts, body texts)`` that find ``contract``.

    Title: id, name, data product, domain, tags, dataset (schema object) names and
    business names. Body: the description (purpose, usage, limitations, ...), the
    datasets' descriptions and tags, property names, business names, descriptions
    and tags (nested properties too).
    """
    odcs = contract.to_odcs()
    title: list[str] = [contract.id]
    for name in ("name", "dataProduct", "domain"):
        if isinstance(odcs.get(name), str):
            title.append(odcs[name])
    title += list(_strings(odcs.get("tags")))
    body: list[str] = _description(odcs.get("description"))
    objects = [obj for obj in odcs.get("schema") or [] if isinstance(obj, dict)]
    for obj in objects:
        for name in ("name", "businessName"):
            if isinstance(obj.get(name), str):
                title.append(obj[name])
    for obj in objects:
        body += _description(obj.get("description"))
        body += list(_strings(obj.get("tags")))
        _properties(obj.get("properties"), body)
    return title, body


def _summary(contract: DataContract) -> str | None:
    parts = _description(contract.to_odcs().get("description"))
    if not parts:
        return None
    text = " ".join(parts[0].split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def searchable(head: ContractHead, contract: DataContract) -> ContractHead:
    """``head`` carrying the name, summary and search tokens of ``contract``."""
    fields = search_fields(*contract_texts(contract))
    tokens = ContractSearchTokens(
        title=list(fields.get(SEARCH_TITLE_FIELD, ())),
        body=list(fields.get(SEARCH_BODY_FIELD, ())),
    )
    return head.model_copy(
        update={"name": contract.name, "summary": _summary(contract), "search": tokens}
    )


def search(
    scope: Scope, heads: ContractHeadStore, text: str, limit: int, page_token: str | None
) -> ContractSearchPage:
    """One page of contracts matching ``text`` (see ``ContractRegistry.search``)."""
    page = heads.backend.search(scope, heads.kind, text, limit=limit, page_token=page_token)
    hits = []
    for hit in page.hits:
        head = heads.decode(hit.document).item
        hits.append(
            ContractHit(head.contract_id, head.latest_version, head.name, head.summary, hit.score)
        )
    return ContractSearchPage(hits, page.next_token)


def reindex(scope: Scope, heads: ContractHeadStore, reads: ContractReads) -> ReindexResult:
    """Give every contract head of ``scope`` the search tokens of its highest version.

    Rewrites only heads whose tokens, name or summary differ (so a second run
    rewrites none), each with its read revision expected: a publish that moves a
    head meanwhile wins, and the head is read again. No contract version changes.
    """
    seen = updated = 0
    for listed in heads.iter_all(scope):
        seen += 1
        versioned = listed
        for _ in range(_REINDEX_ATTEMPTS):
            head = versioned.item
            record = reads.find(head.contract_id, head.latest_version) or reads.highest(
                head.contract_id
            )
            if record is None:  # no version behind the head: nothing to find it by
                break
            wanted = searchable(head, record.item.contract)
            if wanted == head:
                break
            try:
                heads.put(scope, wanted, at_revision(versioned.revision))
            except ConflictError:
                versioned = heads.get(scope, head.contract_id)
                continue
            updated += 1
            break
    return ReindexResult(seen, updated)
