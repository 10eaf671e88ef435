"""The optional C accelerator of a filesystem ``get`` (``_native.c``), or ``None``.

``read_head`` is the extension's function when it is built, current and allowed;
otherwise ``None`` and the backend reads heads in pure Python. Both paths give the
same answer for every record: the C code verifies only what it can decide exactly
and hands anything unusual back to the Python decoder (see ``_native.c`` and
docs/adr/0016-native-head-reads.md).

``DQ_FS_NATIVE=0`` in the environment (read at import) forces the Python path.
A stale build — an extension whose ``ABI`` is not this module's, or (in a source
checkout) older than one of its C sources — is not used: one ``RuntimeWarning``
says so and how to rebuild (``python scripts/build_native.py``).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dq_metadata.scope import Scope
from dq_stores.documents import IndexEntry, StoredDocument

__all__ = ["ABI", "ReadHead", "build", "enabled", "load", "read_head"]

#: The interface version ``_native.c`` must export (bump both together).
ABI = 4
ENV = "DQ_FS_NATIVE"

#: read_head(base, scope, kind, key, linked, fresh_min, fresh_max, max_linked) -> tuple
ReadHead = Callable[[str, Scope, str, str, set[Any], float, float, int], tuple[Any, ...]]
#: The fields the C code fills, in its order; the classes must have exactly these.
DOC_FIELDS = ("scope", "kind", "key", "revision", "body", "sha256", "index", "written_at",
              "deleted")  # fmt: skip
INDEX_FIELDS = ("fields", "sort_key")
#: The C sources in a checkout (absent from an installed wheel): newer than the build = stale.
SOURCES = tuple(
    os.path.join(os.path.dirname(__file__), name)
    for name in ("_native.c", "_native_record.c", "_native.h")
)


def _stale(reason: str) -> None:
    warnings.warn(
        f"dq_stores.filesystem._native {reason}; using the pure-Python read path "
        "(rebuild: python scripts/build_native.py, or pip install -e .)",
        RuntimeWarning,
        stacklevel=3,
    )


def enabled() -> bool:
    """Whether the environment allows the C path (``DQ_FS_NATIVE`` is not 0/false/no/off)."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def build() -> ReadHead | None:
    """The configured native ``read_head`` if it is built and current, else ``None``
    (a stale build also warns once per call)."""
    try:
        from dq_stores.filesystem import _native
    except ImportError:
        return None  # not built (no compiler at install time): the Python path
    if getattr(_native, "ABI", None) != ABI:
        _stale(f"has ABI {getattr(_native, 'ABI', None)}, this code needs {ABI}")
        return None
    built = os.stat(_native.__file__).st_mtime
    for source in SOURCES:
        try:
            if os.stat(source).st_mtime > built:
                _stale(f"is older than {os.path.basename(source)}")
                return None
        except OSError:
            pass  # an installed package: no source beside it
    for cls, names in ((StoredDocument, DOC_FIELDS), (IndexEntry, INDEX_FIELDS)):
        if not _plain(cls, names):
            _stale(f"does not know {cls.__name__}'s fields (DOC_FIELDS/INDEX_FIELDS)")
            return None
    _native.configure(StoredDocument, DOC_FIELDS, IndexEntry, INDEX_FIELDS, datetime.fromisoformat)
    return _native.read_head


def load() -> ReadHead | None:
    """The native ``read_head`` if it may be used, else ``None``."""
    return build() if enabled() else None


def _plain(cls: type, names: tuple[str, ...]) -> bool:
    """``cls`` is a slots dataclass of exactly ``names``, set by its plain ``__init__``:
    C may then build it slot by slot, as that ``__init__`` would."""
    return (
        dataclasses.is_dataclass(cls)
        and tuple(f.name for f in dataclasses.fields(cls)) == names
        and all(f.init for f in dataclasses.fields(cls))
        and "__slots__" in cls.__dict__
        and not hasattr(cls, "__post_init__")
    )


read_head: ReadHead | None = load()
