"""Pytest plugin: an Azure Storage (blob) endpoint for adapter tests.

Found in this order (DESIGN §6):

1. ``DQ_TEST_AZURE_CONNECTION_STRING`` — an endpoint someone else runs;
2. testcontainers' Azurite module, when a Docker engine answers;
3. Azurite from the project's own ``node_modules`` (``npm ci``), started here on a
   free 127.0.0.1 port with in-memory persistence and stopped at session end —
   through ``azurite_launcher.js``, which holds off Azurite's blob GC (its sweep
   blocks the server for minutes once a session has made tens of thousands of
   blobs);
4. otherwise the tests skip with the reason — or fail when ``DQ_REQUIRE_BACKENDS=1``.

Every test gets its own container (``azure_container``), deleted afterwards;
``raw`` is a client of it that goes around the library (to plant or edit blobs).
Registered from the root ``conftest.py``: ``pytest_plugins = ["tests.support.azurite"]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

__all__ = ["AZURITE_ACCOUNT_KEY", "azure_connection_string", "azure_container", "raw"]

ROOT = Path(__file__).resolve().parents[2]
AZURITE_MAIN = ROOT / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
LAUNCHER = Path(__file__).with_name("azurite_launcher.js")
AZURITE_ACCOUNT = "devstoreaccount1"
#: Azurite's published development key (not a secret).
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_STARTUP_SECONDS = 30.0


def connection_string_for(host: str, port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("DQ_REQUIRE_BACKENDS") == "1":
        pytest.fail(f"Azure Storage API required (DQ_REQUIRE_BACKENDS=1): {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> str | None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"Azurite exited with code {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.1)
    return f"Azurite did not listen on port {port} within {_STARTUP_SECONDS:.0f} s"


def _from_testcontainers() -> Iterator[str] | None:
    try:
        from testcontainers.azurite import AzuriteContainer  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        container = AzuriteContainer()  # raises DockerException when no engine answers
    except Exception:  # docker's exception types are not importable without docker
        return None

    def run() -> Iterator[str]:
        with container:
            yield container.get_connection_string()

    return run()


def _from_node_modules() -> tuple[Iterator[str] | None, str]:
    node = shutil.which("node")
    if node is None:
        return None, "node is not on PATH (Azurite needs Node ≥ 18; 3.35.x on Node 20)"
    if not AZURITE_MAIN.exists():
        return None, f"Azurite not installed in {ROOT / 'node_modules'}: run npm ci"
    port = _free_port()
    command = [
        node,
        str(LAUNCHER),  # Azurite's main.js with its blob GC held off (see the launcher)
        "--inMemoryPersistence",
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--skipApiVersionCheck",
        "--silent",
        "--disableTelemetry",
    ]
    # a file, not a pipe: a full pipe would stall Azurite; closed when Azurite stops
    log = tempfile.TemporaryFile()  # noqa: SIM115
    env = {**os.environ, "AZURITE_BLOB_DIR": str(AZURITE_MAIN.parent)}
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, env=env)
    problem = _wait_for_port(port, proc)
    if problem is not None:
        proc.kill()
        proc.wait(timeout=10)
        log.seek(0)
        detail = log.read().decode("utf-8", "replace").strip().splitlines()[-1:]
        log.close()
        return None, f"{problem} {' '.join(detail)}".strip()

    def run() -> Iterator[str]:
        try:
            yield connection_string_for("127.0.0.1", port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()

    return run(), ""


@pytest.fixture(scope="session")
def azure_connection_string() -> Iterator[str]:
    """Connection string of a blob endpoint for this test session (see module doc)."""
    explicit = os.environ.get("DQ_TEST_AZURE_CONNECTION_STRING")
    if explicit:
        yield explicit
        return
    service = _from_testcontainers()
    reason = ""
    if service is None:
        service, reason = _from_node_modules()
    if service is None:
        _unavailable(f"no Azure Storage API: no testcontainers + Docker engine; {reason}")
        return
    yield from service


@pytest.fixture
def azure_container(azure_connection_string: str) -> Iterator[str]:
    """A fresh, empty container name for one test; the container is deleted afterwards."""
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    name = f"t{uuid.uuid4().hex[:20]}"
    with BlobServiceClient.from_connection_string(azure_connection_string) as service:
        # exists: the SDK retried a create whose first answer was lost (a loaded Azurite)
        with contextlib.suppress(ResourceExistsError):
            service.create_container(name)
        try:
            yield name
        finally:
            # not found: the SDK retried a delete whose first answer was lost
            with contextlib.suppress(ResourceNotFoundError):
                service.delete_container(name)


@pytest.fixture
def raw(azure_connection_string: str, azure_container: str) -> Iterator[ContainerClient]:
    """A ``ContainerClient`` of this test's container, for blob requests that go around
    the library (planting, editing or inspecting blobs as someone else would)."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(azure_connection_string) as service:
        yield service.get_container_client(azure_container)


def sas_connection_string(connection_string: str, container: str, *, hours: int = 1) -> str:
    """A connection string for the same account that authenticates with a container SAS.

    The SAS (read, write, delete, list, create, add on ``container``; valid ``hours``)
    is generated from the account key in ``connection_string`` — a different
    credential reaching the same blobs, as after a SAS rotation.
    """
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    fields = dict(
        part.split("=", 1) for part in connection_string.strip(";").split(";") if "=" in part
    )
    sas = generate_container_sas(
        account_name=fields["AccountName"],
        container_name=container,
        account_key=fields["AccountKey"],
        permission=ContainerSasPermissions(
            read=True, write=True, delete=True, list=True, create=True, add=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=hours),
    )
    return f"BlobEndpoint={fields['BlobEndpoint']};SharedAccessSignature={sas}"
