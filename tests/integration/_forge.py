"""Forging dq archives as an attacker would: members edited, the manifest re-signed.

The manifest's digests are not a signature: anyone can rewrite an archive and
compute a manifest that matches it. These helpers do exactly that, so tests can
check what a reader refuses *whatever the manifest says*.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from dq_metadata.errors import IntegrityError
from dq_metadata.scope import Scope
from dq_registries.operations.transfer._results import normalize_body
from dq_stores.archive import ScopeTally, decode_line
from dq_stores.archive._writer import member_digest_prefix

__all__ = ["Members", "members_of", "resign", "write_tar"]

#: ``(member name, member data)`` in archive order.
Members = list[tuple[str, bytes]]


def members_of(path: Path) -> Members:
    """Every member of the archive at ``path``, in order."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def write_tar(members: Members, out: Path) -> Path:
    """A plain tar of ``members`` as they are (nothing recomputed)."""
    with tarfile.open(out, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def resign(members: Members, out: Path) -> Path:
    """Write ``members`` with a manifest recomputed to match them, as a forger would.

    A line the library cannot parse is left out of the tally (its reader refuses
    it anyway); everything else counts exactly as the reader counts it.
    """
    digest = hashlib.sha256()
    tallies: dict[str, ScopeTally] = {}
    meta: dict[str, Any] = {}
    edited: Members = []
    for name, original in members:
        data, parts = original, name.split("/")
        if name.endswith("manifest.json"):
            manifest = json.loads(data)
            manifest["archive_digest"] = digest.hexdigest()
            manifest["scopes"] = {k: t.as_dict() for k, t in tallies.items()}
            data = json.dumps(manifest).encode()
        else:
            digest.update(member_digest_prefix(name, len(data)))
            digest.update(hashlib.sha256(data).digest())
            if name.endswith(".jsonl"):
                tally = tallies.setdefault(f"{parts[2]}/{parts[3]}", ScopeTally())
                scope = Scope(parts[2], parts[3])
                for line in data.splitlines(keepends=True):
                    try:
                        history = decode_line(line, scope, name, validate=False)
                    except IntegrityError:
                        continue
                    tally.add_history(history, normalize_body)
            elif name.endswith(".json") and "/results/" in name:
                meta = json.loads(data)
            elif name.endswith(".bin"):
                tally = tallies.setdefault(f"{parts[2]}/{parts[3]}", ScopeTally())
                tally.add_result(meta["sha256"], len(data), meta["content_type"])
        edited.append((name, data))
    return write_tar(edited, out)
