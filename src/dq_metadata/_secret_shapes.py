"""Undisguising values before they are checked for inline credentials.

A credential-bearing URL is still one when it is percent-encoded (once or more), has
a port or a trailing dot in its host, a doubled slash, an upper-case scheme, a token
in its fragment or a password after an empty user name. :func:`forms` gives the
value as written plus the forms a URL reader would see, so the patterns of
:mod:`dq_metadata.secrets` match them all; :func:`header_pairs` finds the
``[name, value]`` / ``{name: …, value: …}`` entries that lists of HTTP headers use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["forms", "header_pairs", "url_password"]

_DECODE_ROUNDS = 3
_SLASHES = re.compile(r"/{2,}")
_NAME_FIELDS = ("name", "key", "header", "field")


def forms(value: str) -> list[str]:
    """``value``, its percent-decoded forms, and each as a normalised URL, distinct."""
    found = [value]
    current = value
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(current)
        if decoded == current:
            break
        found.append(decoded)
        current = decoded
    found.extend(url for text in list(found) if (url := _normalised_url(text)) is not None)
    return list(dict.fromkeys(found))


def _normalised_url(text: str) -> str | None:
    """``scheme://host/path?query&fragment``: no port, no user, no trailing dot, single
    slashes, lower-case scheme and host; ``None`` if ``text`` is not such a URL."""
    try:
        parts = urlsplit(text.strip())
        host = parts.hostname
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    path = _SLASHES.sub("/", parts.path)
    query = "&".join(p for p in (parts.query, parts.fragment) if p)
    return f"{parts.scheme.lower()}://{host.rstrip('.')}{path}" + (f"?{query}" if query else "")


def url_password(value: str) -> bool:
    """Whether ``value`` (or a decoded form) is a URL with a password in its user part."""
    for text in forms(value):
        try:
            parts = urlsplit(text.strip())
            if parts.scheme and parts.netloc and parts.password:
                return True
        except ValueError:
            continue
    return False


def header_pairs(items: list[Any]) -> Iterator[tuple[int, str, Any]]:
    """``(index, name, value)`` of each header-like entry of ``items``.

    Entries are ``[name, value]`` (when every item of ``items`` is a two-element list
    with a ``str`` name, as in a list of HTTP headers) or a mapping with ``value`` and
    one of ``name`` / ``key`` / ``header`` / ``field``.
    """
    pairs = all(isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) for i in items)
    for index, item in enumerate(items):
        if pairs:
            yield index, item[0], item[1]
        elif isinstance(item, Mapping) and "value" in item:
            name = next((item[f] for f in _NAME_FIELDS if isinstance(item.get(f), str)), None)
            if name is not None:
                yield index, name, item["value"]
