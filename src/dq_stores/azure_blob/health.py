"""``dq doctor`` check of an Azure Blob container: it exists (the write probe then
shows that the credential can write)."""

from __future__ import annotations

from typing import Any

from dq_stores.azure_blob._client import ClientSettings, azure_errors, make_service_client
from dq_stores.health import Check

__all__ = ["azure_checks"]


def azure_checks(section: dict[str, Any], store: str) -> list[Check]:
    """Whether ``section``'s container exists (``section``: the ``azure_blob`` settings).

    Raises:
        MisconfiguredError / StoreUnavailableError: bad credentials or unreachable
            endpoint (``guarded`` turns them into an error check).
    """
    container = str(section.get("container") or "")
    connection_string = section.get("connection_string") or None
    client = make_service_client(
        connection_string=connection_string,
        account_url=None if connection_string else section.get("account_url"),
        credential=None,
        settings=ClientSettings(retry_total=2, connect_timeout=5.0, read_timeout=10.0),
    )
    try:
        with azure_errors(f"checking container {container!r}"):
            exists = client.get_container_client(container).exists()
    finally:
        client.close()
    if exists:
        return [Check("azure-container", store, "ok", f"container {container!r} exists")]
    return [
        Check(
            "azure-container", store, "error", f"container {container!r} does not exist",
            f"create it (az storage container create --name {container}) or set "
            "azure_blob.create_container: true",
        )
    ]  # fmt: skip
