"""``dq verify``'s port walk on a key written while it is checked (issue 11 hostile
pass): a key whose numbering or head looks wrong is read again until one read is of
one moment — its head the same before and after — so a hot key is not reported as a
rolled-back head; a key written throughout every re-read is reported, saying so; real
damage still is.
"""

from __future__ import annotations

from dq_metadata.scope import Scope
from dq_stores.documents import ANY, StoredDocument
from dq_stores.memory import MemoryBackend
from dq_stores.testing._helpers import doc
from dq_stores.verify import verify

SCOPE = Scope("acme", "prod")
KIND = "contract"


class _WrittenDuringReads(MemoryBackend):
    """``hot`` is written ``writes`` times while the walk reads it: once between the
    listing and the walk's history read, then right after each later history read —
    between a re-read's history and its head, where a write makes the head look newer
    than its history (what a reader of the head last saw as a rolled-back head)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.n = 0

    def _write_hot(self, scope: Scope, kind: str) -> None:
        if self.writes > 0:
            self.writes -= 1
            self.n += 1
            self.put(scope, kind, doc("hot", 100 + self.n), ANY)

    def history(self, scope: Scope, kind: str, key: str) -> list[StoredDocument]:
        if key != "hot":
            return super().history(scope, kind, key)
        if self.n == 0:
            self._write_hot(scope, kind)
            return super().history(scope, kind, key)
        revisions = super().history(scope, kind, key)
        self._write_hot(scope, kind)
        return revisions


def _store(writes: int) -> _WrittenDuringReads:
    backend = _WrittenDuringReads()
    for n in range(3):
        backend.put(SCOPE, KIND, doc("hot", n), ANY)
        backend.put(SCOPE, KIND, doc("cold", n), ANY)
    backend.writes = writes
    return backend


def test_a_key_written_between_the_walks_reads_is_not_reported() -> None:
    # five writes: before the walk's history read, then after four re-reads' (the
    # earlier verifier re-read three times, head last, and reported the key)
    backend = _store(writes=5)
    assert [str(p) for p in verify(backend, SCOPE)] == []
    assert backend.writes == 0


def test_a_key_written_throughout_is_reported_saying_so() -> None:
    backend = _store(writes=1000)
    problems = list(verify(backend, SCOPE))
    assert [(p.code, p.key) for p in problems] == [("head", "hot")]
    assert "written throughout" in problems[0].message


def test_a_missing_revision_is_still_reported_next_to_a_hot_key() -> None:
    backend = _store(writes=4)
    bucket = backend._data[(SCOPE, KIND)]
    del bucket.revisions["cold"][1]  # revision 2 of cold gone: [1, 3]
    problems = list(verify(backend, SCOPE))
    assert [(p.code, p.key) for p in problems] == [("history", "cold")]
    assert "written throughout" not in problems[0].message
