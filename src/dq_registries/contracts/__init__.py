"""Data contracts: publishing, lifecycle, breaking-change detection and ODCS I/O."""

from dq_registries.contracts._reads import resolve_contract_ref
from dq_registries.contracts.change import Change, Severity, breaking
from dq_registries.contracts.diff import diff
from dq_registries.contracts.errors import BreakingChangeError, ContractInUseError
from dq_registries.contracts.lifecycle import LIFECYCLE_STATUSES, check_transition
from dq_registries.contracts.odcs import dump_odcs, load_odcs, parse_contract, validate_odcs
from dq_registries.contracts.registry import ContractRegistry, PublishResult

__all__ = [
    "LIFECYCLE_STATUSES",
    "BreakingChangeError",
    "Change",
    "ContractInUseError",
    "ContractRegistry",
    "PublishResult",
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
