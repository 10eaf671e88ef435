"""A tiny third-party backend plug-in, as a package outside dq-platform would ship it.

Its ``pyproject.toml`` would declare::

    [project.entry-points."dq.backends"]
    scratch = "tests.support.scratch_plugin:PLUGIN"
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from dq_registries.wiring.plugins import BackendPlugin
from dq_stores import FilesystemBackend, FilesystemResultsStore


class ScratchSettings(BaseModel):
    """``plugins.scratch`` — where the scratch area lives."""

    model_config = ConfigDict(extra="forbid")

    directory: Path


class ScratchBackend(FilesystemBackend):
    """Documents under ``<directory>/scratch`` (a real adapter reusing the filesystem one)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(Path(directory) / "scratch")


def scratch_results(directory: Path) -> FilesystemResultsStore:
    return FilesystemResultsStore(Path(directory) / "scratch")


PLUGIN = BackendPlugin(backend=ScratchBackend, results=scratch_results, settings=ScratchSettings)
#: Not a BackendPlugin: what a broken entry point might name.
NOT_A_PLUGIN = object()
#: A documents-only technology: it keeps no result objects.
DOCUMENTS_ONLY = BackendPlugin(backend=ScratchBackend, settings=ScratchSettings)
