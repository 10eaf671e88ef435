"""The suite's Azurite runs without its blob GC sweep (``tests/support/azurite_launcher.js``).

Azurite's sweep of unreferenced extents blocks its event loop, for minutes once a
session has written tens of thousands of blobs (every Azure test then timed out
after its retries). Its debug log states the loop's sleep: it must be the longest
timer Node allows, not Azurite's 10 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from tests.support.azurite import AZURITE_MAIN, LAUNCHER, _free_port


def test_the_launcher_holds_off_azurites_blob_gc(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not AZURITE_MAIN.exists():
        if os.environ.get("DQ_REQUIRE_BACKENDS") == "1":
            pytest.fail("node and node_modules/azurite are required (DQ_REQUIRE_BACKENDS=1)")
        pytest.skip("node or node_modules/azurite missing")
    debug = tmp_path / "debug.log"
    env = {**os.environ, "AZURITE_BLOB_DIR": str(AZURITE_MAIN.parent)}
    args = ["--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", str(_free_port())]
    args += ["--silent", "--disableTelemetry", "--debug", str(debug)]
    proc = subprocess.Popen([node, str(LAUNCHER), *args], env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "Sleep for" not in (debug.read_text() if debug.exists() else ""):
            assert time.monotonic() < deadline, "Azurite's GC loop never slept"
            assert proc.poll() is None, "Azurite exited"
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(10)
    sleeps = [line for line in debug.read_text().splitlines() if "Sleep for" in line]
    assert sleeps[0].endswith(f"Sleep for {2**31 - 1}ms."), sleeps[0]
