"""Move, back up and prove: export, import, migrate and verify between any two backends.

Every revision moves as stored (numbers, times, tombstones, index entries) through
``DocumentBackend.iter_histories`` / ``restore_many``; offloaded run results move
with their runs. The archive format is ``dq_stores.archive`` (docs/archive-format.md).

    from dq_registries.operations.transfer import open_endpoint, migrate

    with open_endpoint("old.yaml") as src, open_endpoint("new.yaml") as dst:
        report = migrate(src, dst, verify=True)
    assert report.ok
"""

from __future__ import annotations

from dq_registries.operations.transfer._api import (
    export_archive,
    import_archive,
    migrate,
    verify_archive,
)
from dq_registries.operations.transfer._endpoint import Endpoint, open_endpoint, select_scopes
from dq_registries.operations.transfer._events import ProgressFn, TransferReport, tally_endpoint

__all__ = [
    "Endpoint",
    "ProgressFn",
    "TransferReport",
    "export_archive",
    "import_archive",
    "migrate",
    "open_endpoint",
    "select_scopes",
    "tally_endpoint",
    "verify_archive",
]
