"""Document keys: validated lightly, encoded reversibly into safe storage names.

Keys come from real documents (ODCS ids, dataset names), so almost any string is
legal. Only empty, NUL-containing and oversized keys are rejected. Backends that
need a file or blob name call :func:`encode_key`, whose output

* uses only ``[a-z0-9_-]`` — safe on case-insensitive filesystems and in blob names;
* is reversible (:func:`decode_key`) and injective, so ``Air_Quality`` and
  ``air_quality``, or ``a/b`` and ``a%2Fb``, never share a name;
* never contains ``/``, ``\\`` or ``.``, so it can never leave its directory/prefix;
* is at most ``MAX_NAME`` characters: longer encodings are replaced by a sha256
  digest form (``_h`` + hex) and the backend keeps the original key alongside.
"""

from __future__ import annotations

import hashlib

from dq_metadata.errors import Problem, ValidationError

__all__ = ["MAX_KEY_BYTES", "MAX_NAME", "decode_key", "encode_key", "validate_key"]

MAX_KEY_BYTES = 1024
MAX_NAME = 180
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def validate_key(key: object) -> str:
    """Return ``key`` if storable; raise ``ValidationError`` if empty, NUL, too long or not str."""
    # Fast path for the common case (runs on every get/put): an ASCII str is valid
    # UTF-8 of exactly len(key) bytes, so this accepts exactly what the checks below do.
    if type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES and "\x00" not in key:
        return key
    if not isinstance(key, str):
        raise ValidationError(
            "invalid key", [Problem("key", f"must be str, not {type(key).__name__}")]
        )
    if not key:
        raise ValidationError("invalid key", [Problem("key", "must not be empty")])
    if "\x00" in key:
        raise ValidationError("invalid key", [Problem("key", "must not contain NUL")])
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError("invalid key", [Problem("key", "is not valid Unicode")]) from exc
    if size > MAX_KEY_BYTES:
        raise ValidationError(
            "invalid key", [Problem("key", f"is {size} bytes; the limit is {MAX_KEY_BYTES}")]
        )
    return key


#: Indexed by ASCII code point, for str.translate: a plain character or its escape.
_ASCII_ESCAPES = [ch if ch in _PLAIN else f"_{ord(ch):02x}" for ch in map(chr, range(128))]


def encode_key(key: str) -> str:
    """Encode a validated key into a safe, case-insensitive-unique storage name."""
    if key.isascii():  # the common case, ~3x faster than the loop below
        name = key.translate(_ASCII_ESCAPES)
    else:
        out: list[str] = []
        for ch in key:
            if ch in _PLAIN:
                out.append(ch)
            else:
                out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
        name = "".join(out)
    if len(name) > MAX_NAME:
        # '_h' can never start an escape ('h' is not a hex digit): no collision possible.
        return "_h" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return name


def is_digest_name(name: str) -> bool:
    """True when ``name`` is the digest form, whose key must be read from the document."""
    return name.startswith("_h")


def decode_key(name: str) -> str:
    """Invert :func:`encode_key` (not possible for digest names: raises ``ValueError``)."""
    if is_digest_name(name):
        raise ValueError("digest names are not reversible; read the key from the document")
    raw = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "_":
            raw.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(name[i].encode("ascii"))
            i += 1
    return raw.decode("utf-8")
