"""Azure index hygiene logs no blob name: names carry tenant, contract ids and words."""

from __future__ import annotations

import logging
from typing import Any

import pytest

pytest.importorskip("azure.storage.blob")

from azure.core.exceptions import HttpResponseError

from dq_stores.azure_blob._clock import ServiceClock
from dq_stores.azure_blob._layout import Layout
from dq_stores.azure_blob._query import IndexScan


class _FailingContainer:
    def delete_blob(self, name: str, **_: Any) -> None:
        raise HttpResponseError(f"The server failed for {name}")


def test_a_stale_index_entry_left_behind_is_logged_without_its_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = "idx/acme-tenant/dev/contract_head/search_title/customeremail/alice-contract"
    scan = IndexScan(
        _FailingContainer(),  # type: ignore[arg-type]
        Layout(""),
        lambda *_: [],
        lambda f: None,
        ServiceClock().now,
    )
    with caplog.at_level(logging.DEBUG, logger="dq_stores"):
        scan.remove(name, "etag")
    assert caplog.records, "the failure is still logged"
    text = " ".join(r.getMessage() for r in caplog.records)
    for secret in ("acme-tenant", "customeremail", "alice-contract"):
        assert secret not in text
