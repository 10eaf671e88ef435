"""dq_registries: domain registries, ``DQContext``, configuration, container, plug-ins and CLI.

Services and jobs need one object::

    from dq_registries import DQContext

    with DQContext.create("acme", "prod") as dq:   # filesystem default ($DQ_HOME or ./.dq)
        contract = dq.contracts.get_latest_for_dataset("orders")

Names are imported lazily so ``import dq_registries`` stays fast and never pulls in
SQLAlchemy, the Azure SDK or dependency-injector until they are used.
"""

from __future__ import annotations

import importlib

# Not ``typing.TYPE_CHECKING``: importing typing costs start-up time in which a Ctrl-C
# of ``dq`` would still print a traceback (mypy treats this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dq_registries.domain.actions import ActionProfileRegistry
    from dq_registries.domain.contracts import ContractRegistry
    from dq_registries.domain.jobs import JobDefinitionRegistry
    from dq_registries.domain.runs import JobRunRegistry
    from dq_registries.wiring.config import DQSettings, load_config
    from dq_registries.wiring.container import DQContainer, build_container
    from dq_registries.wiring.context import DQContext
    from dq_registries.wiring.plugins import BackendPlugin, BackendRegistry

__all__ = [
    "ActionProfileRegistry",
    "BackendPlugin",
    "BackendRegistry",
    "ContractRegistry",
    "DQContainer",
    "DQContext",
    "DQSettings",
    "JobDefinitionRegistry",
    "JobRunRegistry",
    "build_container",
    "load_config",
]

_LAZY = {
    "ActionProfileRegistry": "dq_registries.domain.actions",
    "ContractRegistry": "dq_registries.domain.contracts",
    "DQContainer": "dq_registries.wiring.container",
    "DQContext": "dq_registries.wiring.context",
    "DQSettings": "dq_registries.wiring.config",
    "JobDefinitionRegistry": "dq_registries.domain.jobs",
    "JobRunRegistry": "dq_registries.domain.runs",
    "BackendPlugin": "dq_registries.wiring.plugins",
    "BackendRegistry": "dq_registries.wiring.plugins",
    "build_container": "dq_registries.wiring.container",
    "load_config": "dq_registries.wiring.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_registries' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
