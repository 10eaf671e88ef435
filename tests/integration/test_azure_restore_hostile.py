"""Hostile tests of the Azure restore's claims (ADR 0004, "Restore"): revision blobs
left before empty heads existed, a live restore met by a writer, a head write whose
response was lost or that failed. Runs on Azurite."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from azure.storage.blob import ContainerClient
from tests.integration._azure_helpers import memory_history, write

from dq_metadata.errors import ConflictError, StoreUnavailableError
from dq_metadata.scope import Scope
from dq_stores.azure_blob import AzureBlobBackend
from dq_stores.documents import ANY
from dq_stores.verify import verify

pytestmark = pytest.mark.azure

ACME = Scope("acme", "prod")
KIND = "contract"


def _slow_uploads(monkeypatch: pytest.MonkeyPatch, seconds: float) -> threading.Event:
    """Every revision a restore uploads waits ``seconds`` first; the event is set when
    the first one starts waiting (the restore has claimed its key)."""
    from dq_stores.azure_blob import _restore

    upload = _restore.RestoreMixin._upload_revision
    started = threading.Event()

    def slow_upload(self: Any, *args: Any) -> None:
        started.set()
        time.sleep(seconds)
        upload(self, *args)

    monkeypatch.setattr(_restore.RestoreMixin, "_upload_revision", slow_upload)
    return started


def test_a_restore_into_revision_blobs_left_before_empty_heads_replaces_them(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    """Revision blobs with no head and no empty head (a restore before this scheme
    died): a restore of the key deletes them and writes its own history."""
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as old:
        old.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 4))])
    raw.delete_blob("acme/prod/contract/h/m1")  # as if its head write never happened
    for blob in raw.list_blobs(name_starts_with="acme/prod/contract/r/m1/"):
        client = raw.get_blob_client(blob.name)
        client.set_blob_metadata({})  # as written before: no restore id
    time.sleep(1.1)  # their Last-Modified precedes the next claim
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as app:
        app.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 2))])
        assert [d.revision for d in app.history(ACME, KIND, "m1")] == [1, 2]
        app.put(ACME, KIND, write("m1", "next"), ANY)
        assert [d.revision for d in app.history(ACME, KIND, "m1")] == [1, 2, 3]
        assert not list(verify(app, scope=ACME))


def test_a_write_waits_for_a_live_restore_instead_of_clearing_it(
    azure_connection_string: str, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore slower than nothing but within the lease is waited for, not cleared:
    the writer's put lands on top of the restored history."""
    started = _slow_uploads(monkeypatch, 1.5)
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as dest:
        thread = threading.Thread(
            target=dest.restore_many,
            args=(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))]),
        )
        thread.start()
        assert started.wait(20)
        with AzureBlobBackend(
            azure_container, connection_string=azure_connection_string, commit_lease=20.0
        ) as app:
            assert app.put(ACME, KIND, write("m1", "after"), ANY).revision == 4
        thread.join(30)
        assert [d.revision for d in dest.history(ACME, KIND, "m1")] == [1, 2, 3, 4]
        assert not list(verify(dest, scope=ACME))


@pytest.mark.parametrize("landed", [True, False])
def test_a_restore_whose_head_write_failed_keeps_or_removes_what_it_wrote(
    azure_connection_string: str,
    azure_container: str,
    raw: ContainerClient,
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """The head write raises (after retries): if it landed (its response was lost),
    the key is restored and nothing is removed; if not, the restore removes its
    revisions and its empty head — the key is absent and can be restored again."""
    write_head = AzureBlobBackend._write_head

    def failing(self: Any, *args: Any) -> None:
        if landed:
            write_head(self, *args)
        raise StoreUnavailableError("connection reset")

    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as dest:
        with monkeypatch.context() as patch:
            patch.setattr(AzureBlobBackend, "_write_head", failing)
            if landed:
                dest.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))])
            else:
                with pytest.raises(StoreUnavailableError):
                    dest.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))])
        if landed:
            assert [d.revision for d in dest.history(ACME, KIND, "m1")] == [1, 2, 3]
        else:
            assert not list(raw.list_blobs(name_starts_with="acme/prod/contract/r/m1/"))
            assert not list(raw.list_blobs(name_starts_with="acme/prod/contract/h/m1"))
            dest.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 2))])
            assert [d.revision for d in dest.history(ACME, KIND, "m1")] == [1, 2]
        assert not list(verify(dest, scope=ACME))


def test_a_restore_taken_over_after_the_lease_says_so(
    azure_connection_string: str, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore slower than the lease is cleared by a writer; its head write then
    fails If-Match: the error names the takeover and commit_lease (it was a bare
    'HTTP 412 CONDITION_NOT_MET'), and the writer's document is what stays."""
    started = _slow_uploads(monkeypatch, 2.5)
    failed: list[BaseException] = []

    def restore(dest: AzureBlobBackend) -> None:
        try:
            dest.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))])
        except BaseException as exc:
            failed.append(exc)

    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=0.5
    ) as app:
        thread = threading.Thread(target=restore, args=(app,))
        thread.start()
        assert started.wait(20)
        app.put(ACME, KIND, write("m1", "writer"), ANY)
        thread.join(30)
        assert len(failed) == 1
        assert isinstance(failed[0], ConflictError)
        assert "taken over" in str(failed[0])
        assert "commit_lease (0.5 s)" in str(failed[0])
        assert [d.revision for d in app.history(ACME, KIND, "m1")] == [1]
        assert not list(verify(app, scope=ACME))


def test_an_empty_head_forged_with_a_finished_restores_id_clears_no_older_revision(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    """Every revision a finished restore wrote carries its id, readable by anyone who
    can list. Someone puts an empty head tagged with that id over the real head: a
    writer meeting it after the lease must not delete the key's restored history
    (only what that "restore" wrote after its claim); the damage stays visible."""
    from dq_metadata.errors import IntegrityError

    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as dest:
        dest.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))])
    prefix = "acme/prod/contract/r/m1/"
    props = raw.get_blob_client(prefix + "000000000001").get_blob_properties()
    rid = props.metadata["restore"]
    time.sleep(4.5)  # the forgery comes later than the restore (beyond the 3 s slack)
    raw.get_blob_client("acme/prod/contract/h/m1").upload_blob(
        b"", overwrite=True, metadata={"restore": rid}
    )
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=0.5
    ) as app:
        app.put(ACME, KIND, write("m1", "after"), ANY)
        kept = sorted(b.name for b in raw.list_blobs(name_starts_with=prefix))
        assert kept == [prefix + "000000000001", prefix + "000000000002"]
        with pytest.raises(IntegrityError):
            app.history(ACME, KIND, "m1")


def test_a_restore_into_a_key_left_empty_by_an_aborted_commit_restores_it(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    """An empty head without lock or restore id (a commit that aborted released it)
    reads as absent and a put creates the key: a restore was refused with 'already
    has a history'. It clears it If-Match and restores, as a writer would."""
    raw.upload_blob("acme/prod/contract/h/m1", b"")
    with AzureBlobBackend(azure_container, connection_string=azure_connection_string) as app:
        app.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 2))])
        assert [d.revision for d in app.history(ACME, KIND, "m1")] == [1, 2]
        assert not list(verify(app, scope=ACME))


def test_revisions_a_taken_over_restore_wrote_late_do_not_replace_the_writers(
    azure_connection_string: str, azure_container: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restore slower than the lease is taken over by a writer (the key starts
    afresh), then writes its revisions anyway and dies before removing them. The
    writer's next archive of revision 1 found the restore's r/1 there and kept it
    (409 ignored): the writer's revision 1 was silently replaced by the restore's.
    Archives now replace a restore's blob; two more writes leave a clean history."""
    from dq_stores.azure_blob import _restore

    _slow_uploads(monkeypatch, 2.0)
    monkeypatch.setattr(_restore.RestoreMixin, "_abandon_key", lambda self, *a: False)
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=0.5
    ) as app:

        def restore() -> None:
            with pytest.raises(ConflictError, match="taken over"):
                app.restore_many(ACME, KIND, [("m1", memory_history(ACME, KIND, "m1", 3))])

        thread = threading.Thread(target=restore)
        thread.start()
        time.sleep(0.3)
        app.put(ACME, KIND, write("m1", "w1"), ANY)
        thread.join(30)
        app.put(ACME, KIND, write("m1", "w2"), ANY)
        app.put(ACME, KIND, write("m1", "w3"), ANY)
        history = app.history(ACME, KIND, "m1")
        assert [json.loads(d.body)["value"] for d in history] == ["w1", "w2", "w3"]
        assert not list(verify(app, scope=ACME))
