"""Full-text search over documents: tokens, ranking and page tokens, the same on every backend.

A document is found by words: its writer puts them into two reserved indexed
fields of its :class:`~dq_stores.documents.IndexEntry` with :func:`search_fields`
(``search_title`` for names, ids, tags and the like; ``search_body`` for free
text). They are ordinary multi-valued index values, so every backend already
stores, hashes, restores, migrates, verifies and repairs them with the rest of
the index entry; :meth:`DocumentBackend.search` finds documents through them.

Matching (all backends alike):

* text → tokens by :func:`tokenize`: NFKC, case-folded, split into runs of
  letters and digits with the combining marks that follow them (``_`` and
  punctuation separate words), camelCase and
  letter/digit boundaries additionally split (``customerEmail`` gives
  ``customeremail``, ``customer`` and ``email``), each token at most
  ``MAX_TOKEN_CHARS`` characters.
* a query is the distinct words of its text, a word with camelCase or
  letter/digit boundaries giving its parts instead (``customerEmail`` searches for
  ``customer`` and ``email``, so it finds ``customer_email`` too), 1 to
  ``MAX_QUERY_TERMS`` terms;
  a document matches when **every** term is a prefix of at least one of its
  tokens (title or body).
* rank (:func:`score`): per term, the best of 8 (a title token equals it),
  4 (a title token starts with it), 2 (a body token equals it), 1 (a body token
  starts with it); a document's score is the sum over terms. The score depends
  only on the document and the query — never on the rest of the store — so
  keyset pagination over ``(score descending, key ascending)`` stays exact while
  other documents change.

This is deliberately simpler than BM25 or ``ts_rank``: those weigh terms by
corpus statistics, which would make page boundaries move under concurrent
writes and rank differently on each backend (see ADR 0015).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from dq_metadata.errors import Problem, ValidationError
from dq_stores.documents import StoredDocument

__all__ = [
    "DRIVING_PROBE",
    "MAX_BODY_TOKENS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "MAX_SEARCH_LIMIT",
    "MAX_TITLE_TOKENS",
    "MAX_TOKEN_CHARS",
    "PREFIX_END",
    "SEARCH_BODY_FIELD",
    "SEARCH_FIELDS",
    "SEARCH_TITLE_FIELD",
    "SearchCursor",
    "SearchHit",
    "SearchPage",
    "driving_terms",
    "matches",
    "parse_query",
    "prefix_bounds",
    "rank",
    "score",
    "search_fields",
    "tokenize",
]

#: Indexed field holding a document's title tokens (names, ids, tags, domain).
SEARCH_TITLE_FIELD = "search_title"
#: Indexed field holding a document's body tokens (descriptions and other free text).
SEARCH_BODY_FIELD = "search_body"
SEARCH_FIELDS = (SEARCH_TITLE_FIELD, SEARCH_BODY_FIELD)

#: Longest token kept (longer runs are cut): 32 characters, at most 128 bytes of UTF-8.
MAX_TOKEN_CHARS = 32
#: Distinct title / body tokens kept per document, the first ones in reading order.
MAX_TITLE_TOKENS = 128
MAX_BODY_TOKENS = 256
#: Distinct terms one query may hold.
MAX_QUERY_TERMS = 8
#: Longest query text accepted, in characters.
MAX_QUERY_CHARS = 1000
MAX_SEARCH_LIMIT = 100

# A run starting with a letter or digit, through letters, digits and any non-ASCII
# character that is neither a word character nor a space (marks among them); _words
# then cuts it at whatever is not a letter, digit or combining mark.
_RUN = re.compile(r"[^\W_]+(?:[^\w\s\x00-\x7f]+[^\W_]*)*")

_EXACT_TITLE, _PREFIX_TITLE, _EXACT_BODY, _PREFIX_BODY = 8, 4, 2, 1


def _words(text: str) -> Iterator[str]:
    """Words of NFKC ``text``: runs of letters and digits (``str.isalnum``), each with
    the combining marks (Unicode ``M*``: vowel signs, viramas, accents) that follow
    its letters, so ``हिन्दी`` or ``ภาษาไทย`` stays one word. ``_`` and other
    characters separate words; a mark with no letter before it is dropped."""
    for match in _RUN.finditer(unicodedata.normalize("NFKC", text)):
        run = match.group()
        if run.isalnum():
            yield run
            continue
        start = 0
        for i, char in enumerate(run):
            if char.isalnum() or (i > start and unicodedata.category(char)[0] == "M"):
                continue
            if i > start:
                yield run[start:i]
            start = i + 1
        if start < len(run):
            yield run[start:]


def _fold(word: str) -> str:
    return word.casefold()[:MAX_TOKEN_CHARS]


def _parts(word: str) -> list[str]:
    """``word`` split at lower→Upper (camelCase), UPPER→Upper-lower (HTTPServer) and
    digit↔non-digit (v2, utf8) boundaries, for any script (uncased letters never split)."""
    parts: list[str] = []
    start = 0
    for i in range(1, len(word)):
        before, here = word[i - 1], word[i]
        if (
            before.isdigit() != here.isdigit()
            or (before.islower() and here.isupper())
            or (before.isupper() and here.isupper() and word[i + 1 : i + 2].islower())
        ):
            parts.append(word[start:i])
            start = i
    parts.append(word[start:])
    return parts


def tokenize(text: str) -> list[str]:
    """Distinct search tokens of ``text`` in reading order (see the module docstring).

    Raises:
        ValidationError: ``text`` is not a ``str``.
    """
    if not isinstance(text, str):
        raise ValidationError("invalid search text", [Problem("text", "must be a str")])
    seen: dict[str, None] = {}
    for word in _words(text):
        seen.setdefault(_fold(word), None)
        parts = _parts(word)
        if len(parts) > 1:
            for part in parts:
                seen.setdefault(_fold(part), None)
    return list(seen)


def _tokens_of(texts: Iterable[str], limit: int) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in texts:
        for token in tokenize(text):
            seen.setdefault(token, None)
            if len(seen) >= limit:
                return tuple(sorted(seen))
    return tuple(sorted(seen))


def search_fields(
    title: Iterable[str] = (), body: Iterable[str] = ()
) -> dict[str, tuple[str, ...]]:
    """The indexed fields that make a document findable by ``title`` and ``body`` texts.

    Returns ``{SEARCH_TITLE_FIELD: tokens, SEARCH_BODY_FIELD: tokens}`` (sorted
    distinct tokens, at most ``MAX_TITLE_TOKENS`` / ``MAX_BODY_TOKENS``, the first
    ones in reading order), omitting an empty field; merge it into the
    ``IndexEntry.fields`` of the document's write.

    Raises:
        ValidationError: a text is not a ``str``.
    """
    fields: dict[str, tuple[str, ...]] = {}
    title_tokens = _tokens_of(title, MAX_TITLE_TOKENS)
    body_tokens = _tokens_of(body, MAX_BODY_TOKENS)
    if title_tokens:
        fields[SEARCH_TITLE_FIELD] = title_tokens
    if body_tokens:
        fields[SEARCH_BODY_FIELD] = body_tokens
    return fields


#: Postings a backend counts per term (at most) to pick the term that drives a search:
#: terms with more are left to the port's re-check instead of being intersected.
DRIVING_PROBE = 1000


def driving_terms(counts: Mapping[str, int]) -> list[str]:
    """The terms whose postings a backend should read and intersect, rarest first.

    ``counts`` maps each term to its number of postings, counted up to
    ``DRIVING_PROBE`` (a count of ``DRIVING_PROBE`` means "that many or more").
    The rarest term always drives; other terms are worth intersecting only when
    counted in full (fewer than ``DRIVING_PROBE``) — a common term's postings cost
    more to read than the port's check of the driving term's few candidates. When
    every term is common, all are intersected (the cost is then their matches).
    """
    ordered = sorted(counts, key=lambda term: (counts[term], term))
    if counts[ordered[0]] >= DRIVING_PROBE:
        return ordered
    return [term for term in ordered if counts[term] < DRIVING_PROBE]


#: Above every character a token can hold: ``[term, term + PREFIX_END)`` is the
#: range of the strings starting with ``term`` in code point (= UTF-8 byte) order.
PREFIX_END = "\U0010ffff"


def prefix_bounds(term: str) -> tuple[str, str]:
    """``(low, high)``: a token starts with ``term`` iff ``low <= token < high``.

    Holds for every token :func:`tokenize` makes (U+10FFFF is no letter or digit)
    under any code-point or UTF-8-byte ordering: PostgreSQL ``COLLATE "C"``, SQLite
    ``BINARY``, Python ``str`` comparison.
    """
    return term, term + PREFIX_END


def parse_query(text: object) -> tuple[str, ...]:
    """The query's terms: the distinct words of ``text`` in order, a word with camelCase
    or letter/digit boundaries giving its parts (see :func:`tokenize`).

    Raises:
        ValidationError: not a ``str``, longer than ``MAX_QUERY_CHARS``, no word
            in it, or more than ``MAX_QUERY_TERMS`` distinct words (path ``text``).
    """
    if not isinstance(text, str):
        raise ValidationError("invalid search", [Problem("text", "must be a str")])
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError(
            "invalid search", [Problem("text", f"is over {MAX_QUERY_CHARS} characters")]
        )
    terms: dict[str, None] = {}
    for word in _words(text):
        # A word with case or digit boundaries searches for its parts: documents index
        # both the whole word and its parts, so ``customerEmail`` finds
        # ``customer_email`` as well as ``customerEmail`` (and the reverse).
        for part in _parts(word):
            terms.setdefault(_fold(part), None)
    if not terms:
        raise ValidationError(
            "invalid search", [Problem("text", "holds no word (letters or digits) to search for")]
        )
    if len(terms) > MAX_QUERY_TERMS:
        raise ValidationError(
            "invalid search",
            [
                Problem(
                    "text",
                    f"has {len(terms)} distinct words (camelCase parts count apart); at most {MAX_QUERY_TERMS}",
                )
            ],
        )
    return tuple(terms)


def _term_score(term: str, title: tuple[str, ...], body: tuple[str, ...]) -> int:
    best = 0
    for token in title:
        if token == term:
            return _EXACT_TITLE
        if token.startswith(term):
            best = _PREFIX_TITLE
    if best:
        return best
    for token in body:
        if token == term:
            return _EXACT_BODY
        if token.startswith(term):
            best = _PREFIX_BODY
    return best


def score(terms: tuple[str, ...], fields: Mapping[str, tuple[str, ...]]) -> int:
    """Rank of a document with index ``fields`` for ``terms``; 0 when it does not match.

    A document matches when every term scores above 0 (see the module docstring).
    """
    title = fields.get(SEARCH_TITLE_FIELD, ())
    body = fields.get(SEARCH_BODY_FIELD, ())
    total = 0
    for term in terms:
        points = _term_score(term, title, body)
        if points == 0:
            return 0
        total += points
    return total


def matches(terms: tuple[str, ...], fields: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether every term is a prefix of one of the document's search tokens."""
    return score(terms, fields) > 0


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One document found: its current head and its score (higher ranks first)."""

    document: StoredDocument
    score: int


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Hits in ``(score descending, key ascending)`` order and the next page's token.

    A page may hold fewer than ``limit`` hits while ``next_token`` is set when
    documents changed between finding and reading them; ``None`` means the end.
    """

    hits: list[SearchHit]
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Position after the last hit of a page: ``(score, key)`` plus the query's terms."""

    score: int
    key: str

    def encode(self, terms: tuple[str, ...]) -> str:
        text = json.dumps({"s": self.score, "k": self.key, "q": list(terms)}, ensure_ascii=False)
        return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, token: object, terms: tuple[str, ...]) -> SearchCursor | None:
        """Decode a ``SearchPage.next_token``; ``None`` for the first page.

        Raises:
            ValidationError: malformed, or made for a different query (path ``page_token``).
        """
        if token is None:
            return None
        if not isinstance(token, str) or len(token) > 4096:
            raise ValidationError("invalid page token", [Problem("page_token", "malformed")])
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload = json.loads(raw)
            points, key, query = payload["s"], payload["k"], payload["q"]
        except (binascii.Error, ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ValidationError(
                "invalid page token", [Problem("page_token", "malformed")]
            ) from exc
        if isinstance(points, bool) or not isinstance(points, int) or not isinstance(key, str):
            raise ValidationError("invalid page token", [Problem("page_token", "malformed")])
        if query != list(terms):
            raise ValidationError(
                "invalid page token", [Problem("page_token", "belongs to a different search")]
            )
        return cls(points, key)

    def before(self, points: int, key: str) -> bool:
        """Whether a hit ``(points, key)`` was on this page or an earlier one."""
        return points > self.score or (points == self.score and key <= self.key)


def rank(
    terms: tuple[str, ...],
    candidates: Iterable[StoredDocument],
    cursor: SearchCursor | None,
) -> list[tuple[int, StoredDocument]]:
    """Score ``candidates``, drop non-matches, tombstones and hits up to ``cursor``,
    and order the rest by ``(score descending, key ascending)``.

    Backends may over-approximate their candidates; this is where the answer is
    decided, from each document's own index entry.
    """
    ranked: list[tuple[int, StoredDocument]] = []
    for doc in candidates:
        if doc.deleted:
            continue
        points = score(terms, doc.index.fields)
        if points == 0 or (cursor is not None and cursor.before(points, doc.key)):
            continue
        ranked.append((points, doc))
    ranked.sort(key=lambda pair: (-pair[0], pair[1].key))
    return ranked
