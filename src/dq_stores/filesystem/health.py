"""``dq doctor`` checks of a filesystem root: writable, atomic renames, hard links
and ``flock`` (what ``FilesystemBackend`` relies on; network filesystems often lack
one of them)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from dq_stores.health import Check

__all__ = ["filesystem_checks"]


def filesystem_checks(root: str | os.PathLike[str], store: str) -> list[Check]:
    """Probe ``root`` with scratch files (removed afterwards).

    A missing root is one error check (``filesystem-root``): the doctor reports
    it and creates nothing (the backend creates it on its first write).
    """
    path = Path(root)
    fix = f"give the process a local, writable directory (e.g. mkdir -p {path} && chown it)"
    if not os.path.lexists(path):
        return [Check("filesystem-root", store, "error", f"{path} does not exist", fix)]
    token = uuid.uuid4().hex
    temp, final, link = (path / f".dq-doctor-{token}.{n}" for n in ("tmp", "final", "link"))
    checks: list[Check] = []
    try:
        try:
            temp.write_bytes(b"probe")
        except OSError as exc:
            return [Check("filesystem-writable", store, "error", f"{path}: {exc}", fix)]
        checks.append(Check("filesystem-writable", store, "ok", f"{path} is writable"))
        checks.append(_step("filesystem-rename", store, lambda: os.replace(temp, final)))
        checks.append(_step("filesystem-hard-links", store, lambda: os.link(final, link)))
        checks.append(_step("filesystem-locks", store, lambda: _lock(final)))
    finally:
        for leftover in (temp, final, link):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return checks


def _lock(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _step(name: str, store: str, run: Callable[[], object]) -> Check:
    try:
        run()
    except OSError as exc:
        return Check(
            name,
            store,
            "error",
            f"not supported here: {exc}",
            "use a local filesystem (ext4, xfs, apfs…) for the root; NFS/SMB mounts often "
            "lack hard links or flock",
        )
    return Check(name, store, "ok", "supported")
