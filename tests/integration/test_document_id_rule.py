"""One id rule, checked once: an id the rule accepts works in every later call.

Property: for generated ids (any script, 1-600 characters, around the 512 limit in
characters and in UTF-8 bytes), saving a contract, an action profile and a job is
either refused at once with our ``ValidationError`` at the ``id`` field, or every
later step (reference, run, reads, deletes) succeeds — never refused later with a
store-level message about keys or index entries.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dq_metadata.errors import ValidationError
from dq_metadata.scope import MAX_DOCUMENT_ID_LENGTH, document_id_problem
from dq_registries.wiring.context import DQContext
from dq_registries.yaml12 import load_yaml
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore

_ODCS = Path(__file__).parents[1] / "data" / "odcs"

_chars = st.sampled_from(["x", "é", "日", "😀", "-", " "])
_ids = st.one_of(
    st.builds(lambda c, n: c * n, _chars, st.integers(1, 600)),
    st.builds(lambda a, b, n: (a + b) * n, _chars, _chars, st.integers(100, 300)),
)


def _contract(contract_id: str) -> dict[str, Any]:
    text = (_ODCS / "fundamentals-table-column-description.odcs.yaml").read_text()
    return {**load_yaml(text), "id": contract_id}


def _refused_at_id(call: Any) -> bool:
    try:
        call()
    except ValidationError as exc:
        locs = [p.loc for p in exc.problems]
    else:
        return False
    # a discriminated union (action profiles) prefixes its tag: "custom.id"
    assert [loc.rsplit(".", 1)[-1] for loc in locs] == ["id"], locs
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ident=_ids, role=st.sampled_from(["contract", "profile", "job"]))
def test_an_accepted_id_works_in_every_later_call(ident: str, role: str) -> None:
    cid, pid, jid = (ident if role == r else r[0] for r in ("contract", "profile", "job"))
    with DQContext.create("acme", "prod", MemoryBackend(), MemoryResultsStore()) as dq:
        document = _contract(cid)
        if _refused_at_id(
            lambda: dq.contracts.publish(dq.contracts.import_odcs(json.dumps(document)), actor="t")
        ):
            assert role == "contract"
            assert document_id_problem(cid) is not None
            return
        profile = {"id": pid, "name": "n", "action_type": "custom", "handler": "h"}
        if _refused_at_id(lambda: dq.actions.save(profile)):
            assert role == "profile"
            assert document_id_problem(pid) is not None
            return
        job = {"id": jid, "name": "j", "job_type": "profiling", "on_failure": [pid],
               "contract": {"id": cid, "version": document["version"]},
               "dataset": document["schema"][0]["name"]}  # fmt: skip
        if _refused_at_id(lambda: dq.jobs.save(job)):
            assert role == "job"
            assert document_id_problem(jid) is not None
            return
        assert document_id_problem(ident) is None
        assert len(ident) <= MAX_DOCUMENT_ID_LENGTH
        run = dq.runs.start(jid, idempotency_key=uuid.uuid4().hex)
        dq.runs.finish(dq.runs.mark_running(run.run_id).run_id, "succeeded", results={})
        assert dq.jobs.get(jid).id == jid
        assert dq.actions.get(pid).id == pid
        assert dq.contracts.get(cid, document["version"]).contract.id == cid
        dq.jobs.delete(jid)
        dq.actions.delete(pid)
