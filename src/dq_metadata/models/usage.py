"""``UsageStamp``: the document that serialises "X is referenced" against "X is removed".

Retiring a contract version or deleting an action profile first checks that no
enabled job references it; saving a job checks that what it references still
exists. Two such checks racing can both pass (write skew). Every job save that
references a target rewrites the target's stamp, and every retire or delete
guards the stamp at the revision it read before its check, inside one atomic
commit — so of the two racing operations exactly one commits (the conflict is
"materialised" in one document, as Kleppmann's *Designing Data-Intensive
Applications*, ch. 7, calls the technique).
"""

from __future__ import annotations

from typing import Literal

from dq_metadata.models.base import DQModel, Identifier, UtcDatetime

__all__ = ["UsageStamp", "UsageTarget"]

UsageTarget = Literal["contract", "action_profile"]


class UsageStamp(DQModel):
    """Per referenced target (a contract id or an action profile id): last referenced at."""

    schema_version: Literal[1] = 1
    target_kind: UsageTarget
    target_id: Identifier
    referenced_at: UtcDatetime
