"""Azure Blob Storage naming rules, without importing the Azure SDK.

One rule for everyone who checks a container name — the configuration (fails
closed at load time, naming ``azure_blob.container``), ``dq doctor`` (which
loads the configuration first) and the adapters themselves — so none of them
can accept a name another refuses.
"""

from __future__ import annotations

import re

from dq_metadata.errors import MisconfiguredError

__all__ = ["container_name_problem", "validate_container_name"]

# 3-63 characters: lowercase letters, digits and single hyphens, starting and
# ending with a letter or digit (Azure's rule for container names).
_CONTAINER_RE = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


def container_name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid Azure container name, or ``None`` when it is."""
    if not isinstance(name, str):
        return "must be a string"
    if not 3 <= len(name) <= 63:
        return f"must be 3-63 characters long (Azure's rule), got {len(name)}"
    if not _CONTAINER_RE.fullmatch(name):
        return (
            "may hold only lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit (Azure's rule)"
        )
    return None


def validate_container_name(name: object) -> str:
    """``name`` if it is a valid container name.

    Raises:
        MisconfiguredError: naming ``azure_blob.container`` and the rule broken.
    """
    problem = container_name_problem(name)
    if problem is not None:
        raise MisconfiguredError(f"azure_blob.container {name!r}: {problem}")
    assert isinstance(name, str)
    return name
