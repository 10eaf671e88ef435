"""dq_metadata: models, scope, canonical JSON and errors. No I/O."""

from dq_metadata.canonical import canonical_json, content_hash
from dq_metadata.errors import (
    ConflictError,
    DQError,
    IntegrityError,
    InvalidScopeError,
    MisconfiguredError,
    NotFoundError,
    Problem,
    SchemaOutOfDateError,
    StoreUnavailableError,
    ValidationError,
)
from dq_metadata.scope import Scope, validate_id
from dq_metadata.sortkeys import parse_semver, semver_sort_key, time_sort_key

__all__ = [
    "ConflictError",
    "DQError",
    "IntegrityError",
    "InvalidScopeError",
    "MisconfiguredError",
    "NotFoundError",
    "Problem",
    "SchemaOutOfDateError",
    "Scope",
    "StoreUnavailableError",
    "ValidationError",
    "canonical_json",
    "content_hash",
    "parse_semver",
    "semver_sort_key",
    "time_sort_key",
    "validate_id",
]
