"""The ``fs_read_path`` fixture: a test runs once per filesystem ``get`` read path.

``native`` — the C accelerator (``dq_stores.filesystem._native``; skipped when it is
not built); ``python`` — the pure-Python decoder. Backends read the path when they
are constructed, so the fixture is set before any backend fixture (use it through
``pytest.mark.usefixtures("fs_read_path")``). ``DQ_FS_NATIVE`` is set to match, for
child processes. Registered from the root ``conftest.py``.
"""

from __future__ import annotations

import pytest

from dq_stores.filesystem import _accel


@pytest.fixture(params=["native", "python"])
def fs_read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native":
        read_head = _accel.build()
        if read_head is None:
            pytest.skip("the C accelerator is not built (scripts/build_native.py)")
        monkeypatch.setattr(_accel, "read_head", read_head)
        monkeypatch.setenv(_accel.ENV, "1")
    else:
        monkeypatch.setattr(_accel, "read_head", None)
        monkeypatch.setenv(_accel.ENV, "0")
    return str(request.param)
