"""Writers SIGKILLed at random requests of two-document commits (real processes).

After every kill, fresh and long-lived readers see each transfer whole or not at
all (sum and equal revisions); a later writer settles what the dead ones left.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import ContainerClient
from tests.integration.test_azure_commit import (
    assert_consistent,
    leftovers,
    setup_accounts,
    transfer_retrying,
)

from dq_stores.azure_blob import AzureBlobBackend

pytestmark = pytest.mark.azure

ROOT = Path(__file__).resolve().parents[2]
KILLS = 12

_CHILD = """
import os, signal, sys
sys.path[:0] = [{root!r}, {src!r}]
from azure.storage.blob import BlobServiceClient
from dq_stores.azure_blob import AzureBlobBackend
from tests.integration.test_azure_commit import transfer_retrying

cs, container, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = [0]

def hook(request):
    seen[0] += 1
    if seen[0] >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

client = BlobServiceClient.from_connection_string(cs, raw_request_hook=hook)
backend = AzureBlobBackend(container, client=client, commit_lease=1.0)
while True:
    transfer_retrying(backend)
"""


def test_writers_killed_at_random_requests_never_leave_a_partial_commit(
    azure_connection_string: str, azure_container: str, raw: ContainerClient
) -> None:
    script = _CHILD.format(root=str(ROOT), src=str(ROOT / "src"))
    rng = random.Random(20261130)
    with AzureBlobBackend(
        azure_container, connection_string=azure_connection_string, commit_lease=1.0
    ) as survivor:
        setup_accounts(survivor)
        long_lived = AzureBlobBackend(azure_container, connection_string=azure_connection_string)
        done = 0
        for _ in range(KILLS):
            kill_at = rng.randrange(1, 40)  # somewhere in the child's first ~3 transfers
            child = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    script,
                    azure_connection_string,
                    azure_container,
                    str(kill_at),
                ],
                env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                timeout=120,
                check=False,
                capture_output=True,
            )
            assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
            # nobody has settled anything yet: readers resolve through the records
            seen = assert_consistent(long_lived)
            with AzureBlobBackend(
                azure_container, connection_string=azure_connection_string
            ) as fresh:
                assert assert_consistent(fresh) == seen
            assert seen >= done
            done = seen
        long_lived.close()
        transfer_retrying(survivor)  # settles (rolls forward or aborts) what was left
        assert assert_consistent(survivor) == done + 1
    assert leftovers(raw)[0] == []
