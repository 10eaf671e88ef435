"""Conformance for results stores: names of any length and script (ADR 0012, "Long names").

Stores that name objects by :func:`dq_stores.keys.encode_key` keep a run id or
name whose encoding is over ``MAX_NAME`` characters under its digest (``_h…``),
which cannot be decoded. Every store must still list such objects under their
original names (``dq gc``, ``dq export``/``migrate`` see them), open and delete
them by name, and resolve a ``digest_name`` reference — what an old-style ``uri``
of a long name is read into — to the object. Mixed into
:class:`~dq_stores.testing.results.ResultsStoreConformance`.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dq_metadata.errors import NotFoundError, ValidationError
from dq_metadata.models import JobRun
from dq_metadata.scope import Scope
from dq_stores.keys import MAX_NAME, encode_key, validate_key
from dq_stores.results import ResultRef, ResultsStore, StoredObject, is_long_name

__all__ = ["ResultNamesConformance", "result_names"]

NAME_EXAMPLES = 20
_NAMES = settings(
    max_examples=NAME_EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.differing_executors,
    ],
)


def _valid(name: str) -> bool:
    try:
        validate_key(name)
    except ValidationError:
        return False
    return True


def result_names() -> st.SearchStrategy[str]:
    """Names a store must keep: any script, 1..400 characters, many right around the
    length whose encoding turns into a digest (``MAX_NAME``)."""
    # 'a' encodes to 1 character, '.' to 3 and 'é' to 6: lengths straddling MAX_NAME
    around = st.sampled_from(["a", ".", "é", "😀"]).flatmap(
        lambda ch: st.integers(-3, 3).map(
            lambda d: ch * max(1, MAX_NAME // len(encode_key(ch)) + d)
        )
    )
    anything = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=400)
    return st.one_of(around, anything).filter(_valid)


def _scope() -> Scope:
    return Scope("acme", f"n{uuid.uuid4().hex[:12]}")


def _listed(store: ResultsStore, scope: Scope) -> list[tuple[str, str, int, bool, bool]]:
    return sorted(
        (o.run_id, o.name, o.size, o.digest_name, o.digest_run_id)
        for o in store.iter_objects(scope)
    )


def job_run(run_id: str, result_object: object) -> JobRun:
    """The job run ``run_id`` with ``result_object`` (a ``ResultObject``, or the dict of
    one as stored), validated as a stored run is read (old-style forms upgraded)."""
    return JobRun.model_validate(
        {
            "run_id": run_id,
            "job_id": "job",
            "created_at": "2024-01-01T00:00:00Z",
            "result_object": result_object,
        }
    )


class ResultNamesConformance:
    """Long and unicode run ids and names round-trip through every operation."""

    def legacy_uri(self, store: ResultsStore, ref: ResultRef) -> str:
        """The ``uri`` this adapter recorded for ``ref`` before ADR 0012."""
        raise NotImplementedError("subclasses give the old-style uri of their adapter")

    def legacy_run(self, store: ResultsStore, ref: ResultRef) -> JobRun:
        """The run of ``ref`` as recorded before ADR 0012 — its result object the
        :meth:`legacy_uri` with ``ref``'s size, sha256 and content type — as read now."""
        legacy = {
            "uri": self.legacy_uri(store, ref),
            "size": ref.size,
            "sha256": ref.sha256,
            "content_type": ref.content_type,
        }
        return job_run(ref.run_id, legacy)

    @_NAMES
    @given(run_id=result_names(), name=result_names())
    @example(run_id="run-1", name="é" * 400)
    @example(run_id="r" + "._" * 31, name="a" * MAX_NAME)
    @example(run_id="r" * 512, name="a" * (MAX_NAME + 1))
    def test_long_and_unicode_names_are_listed_opened_and_deleted_by_name(
        self, results_store: ResultsStore, run_id: str, name: str
    ) -> None:
        scope = _scope()
        sibling = name[:-1] + ("b" if name[-1:] != "b" else "c")  # shares a long prefix
        refs = {
            n: results_store.upload(scope, run_id, n, iter([n.encode()])) for n in {name, sibling}
        }
        expected = sorted((run_id, n, len(n.encode()), False, False) for n in refs)
        assert _listed(results_store, scope) == expected  # listed by the original names
        for n, ref in refs.items():
            again = ResultRef.of(ref.to_object())  # as a run document keeps it
            assert b"".join(results_store.open(scope, again)) == n.encode()
        if is_long_name(name):
            # what an old-style uri holding only the name's digest is read into
            digest = ResultRef(
                scope, run_id, encode_key(name), refs[name].size, refs[name].sha256,
                digest_name=True,
            )  # fmt: skip
            assert b"".join(results_store.open(scope, digest)) == name.encode()
        for obj in results_store.iter_objects(scope):
            _delete(results_store, obj)
        assert _listed(results_store, scope) == []
        with pytest.raises(NotFoundError):
            results_store.open(scope, refs[name])

    def test_an_old_style_reference_to_a_long_name_opens(self, results_store: ResultsStore) -> None:
        run_id = "r" + "._" * 31  # a valid run id whose encoding is a digest too
        name = "résultat-" + "é" * 200 + ".json"
        scope = Scope("acme", "prod")
        ref = results_store.upload(scope, run_id, name, iter([b"[1, 2]"]))
        run = self.legacy_run(results_store, ref)
        assert run.result_object is not None
        upgraded = ResultRef.of(run.result_object)
        assert (upgraded.run_id, upgraded.size, upgraded.sha256) == (run_id, ref.size, ref.sha256)
        assert b"".join(results_store.open(scope, upgraded)) == b"[1, 2]"
        assert hashlib.sha256(b"[1, 2]").hexdigest() == upgraded.sha256
        # the upgraded form is a document of its own: it validates as it is written
        again = JobRun.model_validate_json(run.model_dump_json())
        assert again.result_object == run.result_object


def _delete(store: ResultsStore, obj: StoredObject) -> None:
    store.delete_object(
        obj.scope, obj.run_id, obj.name, digest_name=obj.digest_name,
        digest_run_id=obj.digest_run_id,
    )  # fmt: skip
