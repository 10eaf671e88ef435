"""dq_stores: the Store ports, typed stores, backend adapters and conformance kit.

Every adapter is exported here by its technology name: ``MemoryBackend``,
``FilesystemBackend``, ``PostgresBackend``, ``SqliteBackend``, ``AzureBlobBackend``
and the results stores. Those with heavy dependencies (SQLAlchemy, the Azure SDK)
and the filesystem adapter load on first access (module ``__getattr__``), so
``import dq_stores`` stays light.
"""

import importlib
from typing import TYPE_CHECKING, Any

from dq_stores.backend import DocumentBackend
from dq_stores.base import ItemPage, Revision, Store, Versioned
from dq_stores.documents import (
    ANY,
    MAX_COMMIT_OPERATIONS,
    MUST_NOT_EXIST,
    ConditionCheck,
    Delete,
    DocumentWrite,
    Expectation,
    ExpectKind,
    FieldFilter,
    IndexEntry,
    Operation,
    Page,
    PageCursor,
    Put,
    Query,
    StoredDocument,
    at_revision,
)
from dq_stores.memory import MemoryBackend
from dq_stores.memory_results import MemoryResultsStore
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractHeadStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

if TYPE_CHECKING:
    from dq_stores.azure_blob import AzureBlobBackend, AzureBlobResultsStore
    from dq_stores.filesystem import FilesystemBackend, FilesystemResultsStore
    from dq_stores.sql import PostgresBackend, SqlBackend, SqliteBackend, SqlResultsStore

_LAZY = {
    "AzureBlobBackend": "dq_stores.azure_blob",
    "AzureBlobResultsStore": "dq_stores.azure_blob",
    "FilesystemBackend": "dq_stores.filesystem",
    "FilesystemResultsStore": "dq_stores.filesystem",
    "PostgresBackend": "dq_stores.sql",
    "SqlBackend": "dq_stores.sql",
    "SqlResultsStore": "dq_stores.sql",
    "SqliteBackend": "dq_stores.sql",
}

__all__ = [
    "ANY",
    "MAX_COMMIT_OPERATIONS",
    "MUST_NOT_EXIST",
    "ActionProfileStore",
    "AzureBlobBackend",
    "AzureBlobResultsStore",
    "ConditionCheck",
    "ContractHeadStore",
    "ContractStore",
    "Delete",
    "DocumentBackend",
    "DocumentWrite",
    "ExpectKind",
    "Expectation",
    "FieldFilter",
    "FilesystemBackend",
    "FilesystemResultsStore",
    "IndexEntry",
    "ItemPage",
    "JobDefinitionStore",
    "JobRunStore",
    "MemoryBackend",
    "MemoryResultsStore",
    "Operation",
    "Page",
    "PageCursor",
    "PostgresBackend",
    "Put",
    "Query",
    "ReportStore",
    "ResultRef",
    "ResultsStore",
    "Revision",
    "SqlBackend",
    "SqlResultsStore",
    "SqliteBackend",
    "Store",
    "StoredDocument",
    "Versioned",
    "at_revision",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_stores' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
