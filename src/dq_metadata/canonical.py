"""Canonical JSON: the one byte form every backend stores and hashes.

What JSON can hold exactly, and nothing else, is accepted (see :func:`check_json`):
``None``, ``bool``, ``int`` (up to ~3,900 digits), finite ``float``, ``str`` of valid Unicode
(no lone UTF-16 surrogates), ``list`` and ``dict`` with ``str`` keys, nested at most
:data:`MAX_DEPTH` containers deep. Everything else — NaN/±Infinity, ``bytes``,
``tuple``, ``set``, non-``str`` keys, arbitrary objects, deeper nesting — is refused
with a :class:`~dq_metadata.errors.ValidationError` naming the JSON path of the
offending value (``results.ratio``, ``items.3``), never coerced.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from dq_metadata.errors import Problem, ValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "JsonProblem",
    "canonical_json",
    "check_json",
    "check_text",
    "content_hash",
    "find_json_problem",
    "loads",
    "text_problem",
]

#: Containers (objects and arrays) a value may nest, counted from its root: ``{}`` is 1.
MAX_DEPTH = 64

#: Integers beyond this many bits (~3,900 decimal digits) are refused: Python's JSON
#: reader, like most, will not parse integers of more than 4,300 digits.
MAX_INT_BITS = 13_000

#: (JSON path, what is wrong) of the first value JSON cannot hold exactly.
JsonProblem = tuple[str, str]

_SCALARS = (str, int, float, bool, type(None))


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):  # a list position: ``items[3]``
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as UTF-8 (a lone surrogate), or ``None``."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"contains a lone UTF-16 surrogate at character {exc.start}, which is not Unicode text"
        )
    return None


def check_text(text: str, loc: str, what: str = "invalid text") -> str:
    """Return ``text`` if it is valid Unicode (encodable as UTF-8), else raise.

    Raises:
        ValidationError: ``text`` holds a lone surrogate; the problem is at ``loc``.
    """
    problem = text_problem(text)
    if problem is not None:
        raise ValidationError(what, [Problem(loc, problem)])
    return text


def _scalar_problem(value: object) -> str | None:
    kind = type(value)
    if kind is str:
        return text_problem(value)  # type: ignore[arg-type]
    if kind is float:
        return None if math.isfinite(value) else f"{value} is not a JSON number"  # type: ignore[arg-type]
    if kind is int:
        if value.bit_length() > MAX_INT_BITS:  # type: ignore[attr-defined]
            return "an integer over ~3,900 digits cannot be read back exactly by JSON readers"
        return None
    if kind is bool or value is None:
        return None
    return f"a {kind.__name__} is not a JSON value (use null, bool, number, str, list or object)"


def find_json_problem(value: Any, root: str = "") -> JsonProblem | None:
    """The first value in ``value`` that JSON cannot hold exactly, or ``None``.

    Iterative (no recursion), so any depth is answered without ``RecursionError``.
    """
    stack: list[tuple[Any, str, int]] = [(value, root, 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                return path, f"nested deeper than {MAX_DEPTH} levels (the limit)"
            if kind is list:
                stack.extend((v, _join(path, i), depth + 1) for i, v in enumerate(item))
                continue
            for key, v in item.items():
                if type(key) is not str:
                    return (
                        _join(path, repr(key)),
                        f"object keys must be str, not {type(key).__name__}",
                    )
                problem = text_problem(key)
                if problem is not None:
                    return _join(path, ascii(key)), f"key {problem}"
                stack.append((v, _join(path, key), depth + 1))
            continue
        problem = _scalar_problem(item)
        if problem is not None:
            return path, problem
    return None


def check_json(value: Any, root: str = "", what: str = "value is not exact JSON") -> Any:
    """Return ``value`` if JSON holds it exactly (see the module docstring), else raise.

    Raises:
        ValidationError: with one ``Problem`` whose ``loc`` is the JSON path (under
            ``root``) of the first offending value.
    """
    found = find_json_problem(value, root)
    if found is not None:
        raise ValidationError(what, [Problem(found[0] or "(root)", found[1])])
    return value


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, compact, UTF-8.

    Equal values give equal bytes, so the sha256 of the result identifies content.
    ``1`` and ``1.0`` stay distinct (``1`` / ``1.0``), ints of any size stay exact.

    Raises:
        ValidationError: ``value`` holds something JSON cannot hold exactly (NaN,
            Infinity, a lone surrogate, a non-JSON type, a non-``str`` key, or nesting
            beyond :data:`MAX_DEPTH`); the problem names its JSON path.
    """
    check_json(value, what="document is not canonical JSON")
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def content_hash(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def loads(data: bytes) -> Any:
    """Decode JSON bytes (the inverse of :func:`canonical_json`)."""
    return json.loads(data)
