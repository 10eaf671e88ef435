"""One classified difference between two contract versions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

__all__ = ["Change", "Severity", "breaking"]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Change:
    """A difference between two contract versions.

    ``severity`` is ``error`` for a breaking change (needs a major version bump),
    ``warning`` for a change that may surprise someone, ``info`` otherwise.
    ``path`` locates it, e.g. ``schema[orders].properties[customer].properties[id]``.
    """

    kind: str
    severity: Severity
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.severity}] {self.path}: {self.message}"


def breaking(changes: Iterable[Change]) -> list[Change]:
    """The error-severity changes of ``changes``."""
    return [c for c in changes if c.severity == "error"]
