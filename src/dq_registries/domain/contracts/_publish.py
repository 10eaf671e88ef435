"""The publish rules of ``ContractRegistry``: ordering, immutability and breaking changes."""

from __future__ import annotations

from typing import Any

import semver

from dq_metadata.errors import ConflictError, Problem, ValidationError
from dq_metadata.models import ContractVersion, DataContract, ForcedPublish
from dq_metadata.sortkeys import normalize_version, parse_semver
from dq_registries.domain.contracts.change import Change, breaking
from dq_registries.domain.contracts.diff import diff
from dq_registries.domain.contracts.errors import BreakingChangeError

__all__ = ["check_breaking", "check_increasing", "same_content"]


def _without_status(contract: DataContract) -> dict[str, Any]:
    # The status of a published version moves through the lifecycle; its content does not.
    # Two spellings of one version (2.0, 2.0.0) are the same version.
    body = contract.to_odcs()
    body.pop("status", None)
    body["version"] = normalize_version(contract.version)
    return body


def same_content(stored: ContractVersion, candidate: DataContract) -> bool:
    """Whether ``candidate`` re-publishes ``stored`` unchanged (status and the spelling
    of its version aside: ``2.0`` re-publishes ``2.0.0``).

    Raises:
        ConflictError: same version, different content — published versions are immutable.
    """
    if _without_status(stored.contract) == _without_status(candidate):
        return True
    where = ", ".join(c.path for c in diff(stored.contract, candidate)[:5]) or "document"
    raise ConflictError(
        f"contract {candidate.id!r} version {candidate.version} is already published with "
        f"different content ({where}); published versions are immutable, publish a new version"
    )


def check_increasing(
    candidate: DataContract,
    wanted: semver.Version,
    highest_stored: str | None,
    head_version: str | None,
) -> None:
    """Raise ``ConflictError`` unless ``wanted`` is above every published version.

    A version equal to a published one but for its build metadata (``1.0.0+b1`` after
    ``1.0.0``) has the same precedence (semver 2.0.0 §10): it is refused as the same
    version, with a message that says so.

    ``head_version`` (the highest version ever claimed) may equal ``wanted``: that
    finishes a publish interrupted between claiming the head and writing the version.
    """
    floors = [highest_stored] if highest_stored else []
    if head_version is not None and wanted.compare(parse_semver(head_version)) < 0:
        floors.append(head_version)
    for floor in floors:
        if wanted.compare(parse_semver(floor)) == 0:  # equal but for build metadata
            raise ConflictError(
                f"contract {candidate.id!r} version {candidate.version} is the same version as "
                f"the published {floor}: build metadata (after '+') is ignored when versions "
                "are ordered (semver 2.0.0 §10), so it cannot name a new version; publish a "
                "higher version instead (a patch, or a prerelease of one: 1.0.1-b.1)"
            )
        if wanted.compare(parse_semver(floor)) < 0:
            raise ConflictError(
                f"contract {candidate.id!r} version {candidate.version} must be greater than "
                f"the highest published version {floor}"
            )


def check_breaking(
    candidate: DataContract,
    wanted: semver.Version,
    previous: DataContract | None,
    changes: list[Change],
    *,
    force: bool,
    forced_by: dict[str, Any],
) -> ForcedPublish | None:
    """Enforce "a breaking change needs a major bump"; return the force record if bypassed.

    ``forced_by`` holds ``actor``, ``at`` and ``reason`` of the publish.

    Raises:
        BreakingChangeError: breaking changes, same major version, not forced.
        ValidationError: forced without a reason.
    """
    errors = breaking(changes)
    if previous is None or not errors or wanted.major > parse_semver(previous.version).major:
        return None
    if not force:
        raise BreakingChangeError(
            f"contract {candidate.id!r} {previous.version} → {candidate.version} has "
            f"{len(errors)} breaking change(s); bump the major version or publish with force",
            errors,
        )
    if forced_by.get("reason") is None:
        raise ValidationError(
            "a forced publish needs a reason",
            [Problem("reason", "say why the break is acceptable")],
        )
    return ForcedPublish(**forced_by, changes=[c.to_dict() for c in errors])
