"""dq_stores: the Store ports, typed stores, backend adapters and conformance kit.

Adapters with heavy dependencies (``dq_stores.sql``, ``dq_stores.azure_blob``)
are not imported here; import them explicitly (the container does).
"""

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
    "MAX_COMMIT_OPERATIONS",
    "MUST_NOT_EXIST",
    "ActionProfileStore",
    "ConditionCheck",
    "ContractHeadStore",
    "ContractStore",
    "Delete",
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
    "Operation",
    "Page",
    "PageCursor",
    "Put",
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
