"""The embedded default's location: the filesystem backend under ``$DQ_HOME`` or ``./.dq``.

This is a configuration default (``filesystem.root``, shown by ``dq config show``);
nothing here opens a backend — the container does, and only when configured.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DQ_HOME_ENV", "default_root"]

DQ_HOME_ENV = "DQ_HOME"


def default_root() -> Path:
    """The filesystem default's root: ``$DQ_HOME`` if set and non-empty (``~`` expanded), else ``./.dq``."""
    home = os.environ.get(DQ_HOME_ENV, "").strip()
    return Path(home).expanduser() if home else Path(".dq")
