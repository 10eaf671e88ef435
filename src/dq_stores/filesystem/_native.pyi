from collections.abc import Callable
from datetime import datetime
from typing import Any

from dq_metadata.scope import Scope

ABI: int

def configure(
    document: type,
    document_fields: tuple[str, ...],
    index: type,
    index_fields: tuple[str, ...],
    fromisoformat: Callable[[str], datetime],
    /,
) -> None: ...
def read_head(
    base: str,
    scope: Scope,
    kind: str,
    key: str,
    linked: set[Any],
    fresh_min: float,
    fresh_max: float,
    max_linked: int,
    /,
) -> tuple[Any, ...]: ...
