"""A fast composer for the common case of :func:`dq_registries.yaml12.load_yaml`.

ruamel.yaml (pure Python, YAML 1.2) composes ~5,000 nodes a second on this machine:
a 20,000-property contract takes 20 s. libyaml (through PyYAML's C parser) composes
the same node graph five times faster. Its parser follows YAML 1.1, which differs
from 1.2 at the syntax level only in rare corners, so it is used only when none of
them can occur, and only if it succeeds; otherwise (or for any error, so messages
stay the same) the caller composes with ruamel:

* no ``%`` directive line (``%YAML 1.1`` must be refused; ``%TAG`` changes tags);
* no NEL / LINE SEPARATOR / PARAGRAPH SEPARATOR (line breaks in 1.1, text in 1.2);
* no backslash (double-quoted escapes differ between 1.1 and 1.2), no tab (ruamel
  refuses tabs in places libyaml accepts them);
* no non-specific tag ``!`` (libyaml reads ``! 1`` as a string, ruamel as a number);
* no comment glued to a block scalar header (``|#``), no anchor or alias name with
  characters other than letters, digits, ``_`` and ``-`` (1.2 allows more).

Plain scalars are left untagged (resolved by the YAML 1.2 core schema by the caller),
exactly as with ruamel.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["compose_fast"]

_UNSAFE = re.compile(
    r"^%|[\t\x85\u2028\u2029\\]"  # directives, 1.1 line breaks, tabs, escapes
    r"|[|>][-+0-9]*#"  # a comment glued to a block scalar header (libyaml accepts it)
    r"|(?:^|\W)!"  # tags (the non-specific ``!`` differs)
    r"|[&*][\w-]*[^\w\s,\[\]{}-]",  # anchor names libyaml ends early (1.2 allows ':' …)
    re.MULTILINE,
)
_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None)


class _PlainResolver(yaml.resolver.BaseResolver):
    """Plain untagged scalars get ``plain_tag``; everything else its default tag."""

    plain_tag = ""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return self.plain_tag
        return super().resolve(kind, value, (False, False))  # type: ignore[no-untyped-call]


def compose_fast(text: str, plain_tag: str) -> tuple[bool, Any]:
    """``(True, node)`` when libyaml composed ``text`` safely, else ``(False, None)``.

    ``node`` is ``None`` for an empty document. Nodes have ``id`` (``"scalar"``,
    ``"sequence"``, ``"mapping"``), ``tag``, ``value``, ``style`` and ``start_mark``
    like ruamel's.
    """
    if _CParser is None or _UNSAFE.search(text):
        return False, None

    class Loader(_CParser, yaml.composer.Composer, _PlainResolver):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)

    Loader.plain_tag = plain_tag
    loader = Loader(text)
    try:
        return True, loader.get_single_node()
    except (yaml.YAMLError, RecursionError):
        return False, None
    finally:
        loader.dispose()
