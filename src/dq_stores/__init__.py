"""dq_stores: the Store ports, typed stores, backend adapters and conformance kit.

Adapters with heavy dependencies (``dq_stores.sql``, ``dq_stores.azure_blob``)
are not imported here; import them explicitly (the container does).
"""

from dq_stores.backend import DocumentBackend
from dq_stores.base import ItemPage, Revision, Store, Versioned
from dq_stores.documents import (
    ANY,
    MUST_NOT_EXIST,
    DocumentWrite,
    Expectation,
    ExpectKind,
    FieldFilter,
    IndexEntry,
    Page,
    PageCursor,
    Query,
    StoredDocument,
    at_revision,
)
from dq_stores.memory import MemoryBackend
from dq_stores.results import ResultRef, ResultsStore
from dq_stores.typed import (
    ActionProfileStore,
    ContractHeadStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    ReportStore,
)

__all__ = [
    "ANY",
    "MUST_NOT_EXIST",
    "ActionProfileStore",
    "ContractHeadStore",
    "ContractStore",
    "DocumentBackend",
    "DocumentWrite",
    "ExpectKind",
    "Expectation",
    "FieldFilter",
    "IndexEntry",
    "ItemPage",
    "JobDefinitionStore",
    "JobRunStore",
    "MemoryBackend",
    "Page",
    "PageCursor",
    "Query",
    "ReportStore",
    "ResultRef",
    "ResultsStore",
    "Revision",
    "Store",
    "StoredDocument",
    "Versioned",
    "at_revision",
]
