"""YAML 1.2 (core schema) in, unambiguous YAML out: what JSON users expect from a file.

:func:`load_yaml` parses with ruamel.yaml (pure Python, YAML 1.2) and builds plain
JSON data itself, so the result never depends on YAML 1.1 habits:

* plain scalars resolve by the YAML 1.2 core schema only: ``14:30``, ``NO``, ``on``,
  ``yes``, ``1_000`` stay strings; ``0777`` is the decimal ``777``, ``0o777`` is 511;
* dates and timestamps stay the strings they are written as;
* quoted scalars are always strings; explicit tags are limited to the core ones
  (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``, ``!!map``, ``!!seq``).

A document whose meaning is ambiguous or not JSON is refused with a
:class:`~dq_metadata.errors.ValidationError` naming the line: duplicate keys, YAML 1.1
merge keys (``<<``), keys that are not strings, other tags (``!!binary``,
``!!timestamp``, ``!!set``, ``!python/…``), ``.nan``/``.inf``, integers too long for
JSON readers, a ``%YAML 1.1`` directive, recursive aliases, aliases that repeat more
than :data:`MAX_ALIAS_EXPANSION` values ("billion laughs"), more than one document.
See ADR 0009.

:func:`dump_yaml` writes block-style YAML whose strings read back as strings under
YAML 1.2 and YAML 1.1 readers alike (``'14:30'``, ``'yes'``, ``'0o17'`` are quoted).
"""

from __future__ import annotations

import io
import re
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

from dq_metadata.errors import Problem, ValidationError
from dq_registries._yaml_fast import compose_fast

__all__ = ["MAX_ALIAS_EXPANSION", "dump_yaml", "load_yaml"]

#: Values (scalars and containers) that aliases may repeat in one document, in total:
#: a few anchors reused are fine; a small file that expands to millions is refused.
MAX_ALIAS_EXPANSION = 100_000

#: A composed node: ruamel's or libyaml's (both have ``id``, ``tag``, ``value``, ``style``).
Node = Any

_CORE = "tag:yaml.org,2002:"
_PLAIN = "tag:dq-platform,2026:plain"  # untagged plain scalar, resolved below

# YAML 1.2.2 §10.3.2 (core schema), exactly.
_NULL = re.compile(r"(?:null|Null|NULL|~)?")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_NOT_JSON_FLOAT = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")


class _PlainResolver(VersionedResolver):
    """Marks untagged plain scalars instead of resolving them (we apply the core schema)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return Tag(suffix=_PLAIN)
        return super().resolve(kind, value, (False, False))


def load_yaml(text: str, *, source: str = "document") -> Any:
    """Parse one YAML 1.2 document (JSON is YAML) into plain JSON data.

    Args:
        text: the document.
        source: what to call it in errors (a file name, "contract document").

    Returns:
        ``dict`` / ``list`` / ``str`` / ``int`` / ``float`` / ``bool`` / ``None``;
        ``None`` for an empty document.

    Raises:
        ValidationError: not YAML, or ambiguous / not JSON (see the module docstring);
            the problem's location is ``line N``.
    """
    fast, node = compose_fast(text, _PLAIN)
    if not fast:
        node = _compose(text, source)
    if node is None:
        return None
    try:
        return _Builder(source).build(node)
    except RecursionError:
        raise _error(source, None, "nested too deeply") from None


def _compose(text: str, source: str) -> Any:
    """The node graph of ``text`` composed by ruamel.yaml (YAML 1.2), or ``None``."""
    parser = YAML(typ="safe", pure=True)
    parser.Resolver = _PlainResolver
    try:
        node = parser.compose(text)
        version = parser.resolver.processing_version
    except MarkedYAMLError as exc:
        raise _error(source, exc.problem_mark or exc.context_mark, _describe(exc)) from None
    except YAMLError as exc:
        raise _error(source, None, " ".join(str(exc).split())) from None
    except RecursionError:
        raise _error(source, None, "nested too deeply") from None
    if version is not None and tuple(version) != (1, 2):
        raise _error(
            source, None, "declares %YAML 1.1; remove the directive (files are read as YAML 1.2)"
        )
    return node


def _describe(exc: MarkedYAMLError) -> str:
    parts = [exc.context or "", exc.problem or ""]
    return " ".join(" ".join(p.split()) for p in parts if p) or type(exc).__name__


def _error(source: str, mark: Any, message: str) -> ValidationError:
    where = f"line {mark.line + 1}" if mark is not None else ""
    return ValidationError(f"{source} is not valid YAML 1.2", [Problem(where, message)])


class _Builder:
    """Builds JSON data from a composed node graph; aliases share one built value."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._built: dict[int, Any] = {}
        self._sizes: dict[int, int] = {}  # values in each built node, itself included
        self._open: set[int] = set()
        self._repeated = 0  # values that aliases have repeated so far

    def build(self, node: Node) -> Any:
        key = id(node)
        if key in self._built:
            self._repeated += self._sizes[key]
            if self._repeated > MAX_ALIAS_EXPANSION:
                raise self._fail(
                    node,
                    f"aliases repeat more than {MAX_ALIAS_EXPANSION:,} values; "
                    "write the document out instead of expanding anchors",
                )
            return self._built[key]
        if key in self._open:
            raise self._fail(node, "an alias refers to a node that contains it")
        self._open.add(key)
        value = self._build(node)
        self._open.discard(key)
        self._built[key] = value
        self._sizes[key] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return value

    def _fail(self, node: Node, message: str) -> ValidationError:
        return _error(self._source, node.start_mark, message)

    def _build(self, node: Node) -> Any:
        tag = str(node.tag)
        if node.id == "mapping":  # ruamel's and libyaml's nodes alike (see _yaml_fast)
            self._expect(node, tag, "map")
            return self._mapping(node)
        if node.id == "sequence":
            self._expect(node, tag, "seq")
            return [self.build(item) for item in node.value]
        if tag == _PLAIN:
            return self._plain(node, node.value)
        return self._tagged(node, tag, node.value)

    def _expect(self, node: Node, tag: str, kind: str) -> None:
        if tag != _CORE + kind:
            raise self._fail(node, f"tag {tag!r} is not supported; remove it")

    def _mapping(self, node: Node) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if str(key_node.tag) == _CORE + "merge" or (
                key_node.id == "scalar" and key_node.value == "<<" and not key_node.style
            ):
                raise self._fail(key_node, "merge keys (<<) are YAML 1.1; write the keys out")
            key = self.build(key_node)
            if not isinstance(key, str):
                raise self._fail(key_node, f"key {key!r} must be a string; quote it")
            if key in result:
                raise self._fail(key_node, f"duplicate key {key!r}")
            result[key] = self.build(value_node)
        return result

    def _plain(self, node: Node, value: str) -> Any:
        if _NULL.fullmatch(value):
            return None
        if value in _BOOL:
            return _BOOL[value]
        if _INT10.fullmatch(value):
            try:
                return int(value, 10)
            except ValueError:  # beyond Python's (and most JSON readers') digit limit
                raise self._fail(node, "an integer this long is not a JSON number") from None
        if _INT8.fullmatch(value):
            return int(value[2:], 8)
        if _INT16.fullmatch(value):
            return int(value[2:], 16)
        if _FLOAT.fullmatch(value):
            return float(value)
        if _NOT_JSON_FLOAT.fullmatch(value):
            raise self._fail(node, f"{value} is not a JSON number; quote it if it is text")
        return value

    def _tagged(self, node: Node, tag: str, value: str) -> Any:
        name = tag.removeprefix(_CORE)
        if name == "str":
            return value
        if name not in ("int", "float", "bool", "null"):
            raise self._fail(node, f"tag {tag!r} is not supported; remove it")
        built = self._plain(node, value)
        kind = "null" if built is None else type(built).__name__
        if kind == name or (name == "float" and kind == "int"):
            return float(built) if name == "float" else built
        raise self._fail(node, f"{value!r} is not a valid {name}")


def _children(node: Node) -> list[Node]:
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    if node.id == "sequence":
        return list(node.value)
    return []


class _Dumper(yaml.SafeDumper):
    """Block-style YAML that keeps key order and quotes strings YAML 1.2 would not keep."""


_QUOTE_IF = re.compile(
    "|".join(p.pattern for p in (_NULL, _INT10, _INT8, _INT16, _FLOAT, _NOT_JSON_FLOAT))
)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        style: str | None = "|"
    elif value in _BOOL or _QUOTE_IF.fullmatch(value):
        style = "'"  # PyYAML quotes what YAML 1.1 resolves; this adds what YAML 1.2 does
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    """Block-style YAML of JSON ``data``, key order kept, strings read back as strings.

    The output reads back equal through :func:`load_yaml` and through YAML 1.1
    readers without timestamp resolution.
    """
    out = io.StringIO()
    yaml.dump(data, out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return out.getvalue()
