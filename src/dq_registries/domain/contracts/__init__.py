"""Data contracts: publishing, lifecycle, breaking-change detection and ODCS I/O."""

from dq_registries.domain.contracts._reads import resolve_contract_ref
from dq_registries.domain.contracts._search import ContractHit, ContractSearchPage, ReindexResult
from dq_registries.domain.contracts.change import Change, Severity, breaking
from dq_registries.domain.contracts.diff import diff
from dq_registries.domain.contracts.errors import BreakingChangeError, ContractInUseError
from dq_registries.domain.contracts.lifecycle import LIFECYCLE_STATUSES, check_transition
from dq_registries.domain.contracts.odcs import dump_odcs, load_odcs, parse_contract, validate_odcs
from dq_registries.domain.contracts.registry import ContractRegistry, PublishResult

__all__ = [
    "LIFECYCLE_STATUSES",
    "BreakingChangeError",
    "Change",
    "ContractHit",
    "ContractInUseError",
    "ContractRegistry",
    "ContractSearchPage",
    "PublishResult",
    "ReindexResult",
    "Severity",
    "breaking",
    "check_transition",
    "diff",
    "dump_odcs",
    "load_odcs",
    "parse_contract",
    "resolve_contract_ref",
    "validate_odcs",
]
