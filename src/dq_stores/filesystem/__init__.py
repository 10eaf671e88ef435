"""Filesystem adapters: the embedded default for documents and large results."""

from dq_stores.filesystem.backend import FilesystemBackend
from dq_stores.filesystem.results import FilesystemResultsStore

__all__ = ["FilesystemBackend", "FilesystemResultsStore"]
