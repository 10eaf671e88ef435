"""The embedded default: everything on the local filesystem under ``$DQ_HOME`` or ``./.dq``.

Registries built without stores, and ``DQContext.create()`` without a backend, use
these. Nothing is opened until a function is called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dq_stores.backend import DocumentBackend
    from dq_stores.results import ResultsStore

__all__ = ["DQ_HOME_ENV", "default_backend", "default_results_store", "default_root"]

DQ_HOME_ENV = "DQ_HOME"


def default_root() -> Path:
    """The filesystem default's root: ``$DQ_HOME`` if set and non-empty, else ``./.dq``."""
    home = os.environ.get(DQ_HOME_ENV, "").strip()
    return Path(home) if home else Path(".dq")


def default_backend() -> DocumentBackend:
    """A ``FilesystemBackend`` at :func:`default_root`."""
    from dq_stores.filesystem import FilesystemBackend

    return FilesystemBackend(default_root())


def default_results_store() -> ResultsStore:
    """A ``FilesystemResultsStore`` sharing ``default_root()`` (``<tenant>/<env>/results/``)."""
    from dq_stores.filesystem.results import FilesystemResultsStore

    return FilesystemResultsStore(default_root())
