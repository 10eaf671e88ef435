"""Secret redaction for everything we render or log: URLs, connection strings, records.

One place knows what a credential looks like in text:

- the password of a URL's user-info part (``scheme://user:PASSWORD@host``);
- credential-bearing query parameters (``?password=``, ``sslpassword=``, a SAS's
  ``sig=``, ``AccountKey``-like ``…key=`` and ``…token=`` parameters);
- ``key=value`` pairs of connection strings (``AccountKey=…;``,
  ``SharedAccessSignature=…;``, ``Password=…;``) and libpq DSNs (``password='…'``,
  blanks around ``=``), with a percent-encoded name or ``=`` (``pass%77ord=``,
  ``sig%3D…``) and nested in another value (``options=-c%20password%3D…``);
- ``'name': value`` in a dict's ``repr`` or JSON, and ``Authorization:`` /
  ``Cookie:`` header lines.

Not recognised: an unquoted ``name: value`` (``password: x`` in YAML), which reads
like our own ``field: message`` error lines; such values must be known literals
(``secrets``) to be masked.

:func:`redact` rewrites a text; :class:`RedactingFilter` applies it to log records;
:func:`install_log_redaction` attaches that filter to our loggers and to the SDK
loggers we configure (Azure SDK, urllib3), and narrows the Azure HTTP logging
policy so request URLs and headers are logged without their secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

__all__ = [
    "MASK",
    "REDACTED_LOGGERS",
    "RedactingFilter",
    "install_log_redaction",
    "is_secret_name",
    "redact",
]

MASK = "***"

#: Parameter and key names whose values are credentials (case-insensitive, whole name).
_SECRET_NAME = re.compile(
    r"sig|pwd|sas|.*pass(word|wd|phrase|file)?|.*secret.*|.*token.*|.*credential.*"
    r"|.*signature.*|.*(account|access|ssl|private|api|shared)[_-]?key.*"
    r"|(proxy-)?authorization|(set-)?cookie",
    re.IGNORECASE,
)
# the password runs to the *last* ``@`` of the authority: an unencoded ``@`` in a
# password (``user:p@ss@host``) must not leave its tail readable as the host
# (one slash too: a URL given where a path is expected comes back as ``scheme:/u:pw@h``)
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*:/{1,2}[^:/@\s?#]*:)[^\s/?#]*(?=@)", re.I)
# A value as written after ``=`` or ``:``: quoted (libpq DSN, JSON, Python repr, with
# backslash escapes) or bare, up to a query / connection-string / word separator.
_VALUE = r"""'(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|[^&;\s"'<>]*"""
# name=value inside a query string, a connection string or a libpq DSN (separators
# & ; ? and spaces, blanks around ``=``); the name and the ``=`` may be percent-encoded
# (``pass%77ord=``, ``sig%3D…``)
_PAIR = re.compile(
    r"(?P<name>[A-Za-z](?:[A-Za-z0-9_.-]|%(?!3[dDbB]|26)[0-9A-Fa-f]{2})*)"
    r"[ \t]*(?:=|%3[dD])[ \t]*(?P<value>" + _VALUE + ")"
)
# name=value inside a value that is itself a command line (libpq ``options``): the
# value runs to the next blank
_OPTION = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_.-]*)=(?P<value>(?:\\.|\S)+)")
# 'name': value / "name": value (a dict's repr, JSON) and an ``Authorization:`` header
_QUOTED_KEY = re.compile(
    r"""(?P<q>['"])(?P<name>[A-Za-z][A-Za-z0-9_.-]*)(?P=q)\s*:\s*(?P<value>""" + _VALUE + ")"
)
_HEADER = re.compile(r"(?im)\b(?P<name>(?:proxy-)?authorization|cookie)[ \t]*:[ \t]*[^\r\n'\"]+")

#: Logger trees whose records :func:`install_log_redaction` filters: ours and the SDKs'.
REDACTED_LOGGERS = (
    "dq_metadata",
    "dq_stores",
    "dq_registries",
    "azure",
    "urllib3",
    "sqlalchemy",
    "psycopg",
)
#: Leaf loggers known to print request URLs or connection details at DEBUG; created
#: up front so they are filtered even before their modules log for the first time.
_KNOWN_LEAVES = (
    "urllib3.connectionpool",
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.core.pipeline.policies._universal",
    "azure.storage.blob._shared.policies",
    "azure.identity",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool.impl.QueuePool",
    "psycopg",
)


def is_secret_name(name: str) -> bool:
    """True when a parameter / key called ``name`` holds a credential."""
    return bool(_SECRET_NAME.fullmatch(name))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential replaced by ``***``.

    Masks URL user-info passwords, credential-bearing ``name=value`` pairs (query
    parameters, connection-string fields), and every literal in ``secrets``
    (values known to be secret, e.g. the configured password).
    """
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(lambda m: m["head"] + MASK, text)
    text = _HEADER.sub(lambda m: f"{m['name']}: {MASK}", text)
    text = _QUOTED_KEY.sub(_mask_quoted_key, text)
    return _PAIR.sub(_mask_pair, text)


def _secret_pair_name(name: str) -> bool:
    # ``pass%77ord`` is ``password``; ``-c%20password`` (libpq ``options``) ends with it
    words = unquote_plus(name).split()
    return bool(words) and is_secret_name(words[-1])


def _mask_pair(match: re.Match[str]) -> str:
    value = match["value"]
    if value in ("", "''", '""'):
        return match[0]
    head = match[0][: match.start("value") - match.start()]
    if _secret_pair_name(match["name"]):
        return head + MASK
    # a value holding pairs of its own: ``options='-c password=…'``, ``options=-c%20pass…``
    quote = value[:1] if value[:1] in ("'", '"') else ""
    body = value[len(quote) :]
    for text in (body, unquote_plus(body)):  # as written, or as a URL's query value
        inner = _OPTION.sub(_mask_option, _PAIR.sub(_mask_pair, text))
        if MASK in inner:
            return head + quote + inner
    return match[0]


def _mask_option(match: re.Match[str]) -> str:
    if is_secret_name(match["name"]):
        return match[0][: match.start("value") - match.start()] + MASK
    return match[0]


def _mask_quoted_key(match: re.Match[str]) -> str:
    if match["value"] and is_secret_name(match["name"]):
        return match[0][: match.start("value") - match.start()] + MASK
    return match[0]


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` that redacts the formatted message of every record.

    The record's ``msg`` becomes the redacted, fully formatted message and its
    ``args`` are cleared, so handlers further on never see a secret; exception
    text is redacted too. Records are never dropped.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is the logger's problem, not ours
            message = str(record.msg)
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def _in_trees(name: str) -> bool:
    return any(name == tree or name.startswith(tree + ".") for tree in REDACTED_LOGGERS)


def install_log_redaction() -> None:
    """Redact credentials from the log records of our code and of the SDKs we use.

    Idempotent; called by every adapter that holds a credential when it is built
    (and by the CLI). A ``logging`` filter only sees records logged to its own
    logger, so a :class:`RedactingFilter` is added to *every* existing logger of
    the trees in :data:`REDACTED_LOGGERS` (ours, ``azure``, ``urllib3`` —
    whose connection pool prints request lines with the SAS ``sig=`` at DEBUG —,
    ``sqlalchemy``, ``psycopg``) and to the known leaf loggers. Records are
    rewritten, never dropped, so every handler downstream gets the redacted text.
    Loggers of those trees created later (modules the SDKs import lazily) are
    covered by a log-record factory that redacts their records as they are made.

    Also narrows the Azure SDK's ``HttpLoggingPolicy`` allow-lists so that no
    credential-bearing query parameter or header is ever allow-listed: the SDK
    then prints them as ``REDACTED`` itself.
    """
    for name in _KNOWN_LEAVES:
        logging.getLogger(name)
    names = [name for name in list(logging.root.manager.loggerDict) if _in_trees(name)]
    for name in (*REDACTED_LOGGERS, *names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
    _install_record_factory()
    _narrow_azure_http_logging()


_FACTORY_MARK = "_dq_redacting"


def _install_record_factory() -> None:
    """Redact every record of the trees as it is made, whatever its logger: a filter
    is per logger, and the SDKs create loggers when they import a module lazily
    (after this ran), whose records would reach the root handlers untouched."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, _FACTORY_MARK, False):
        return
    redacting = RedactingFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _in_trees(record.name):
            redacting.filter(record)
        return record

    setattr(factory, _FACTORY_MARK, True)
    logging.setLogRecordFactory(factory)


def _narrow_azure_http_logging() -> None:
    try:
        from azure.core.pipeline.policies import HttpLoggingPolicy
    except ImportError:  # the azure extra is not installed: nothing to narrow
        return
    allowed: Any = HttpLoggingPolicy.DEFAULT_QUERY_PARAMS_ALLOWLIST
    for name in [n for n in allowed if is_secret_name(n)]:
        allowed.discard(name)
    headers: Any = HttpLoggingPolicy.DEFAULT_HEADERS_ALLOWLIST
    for name in [n for n in headers if is_secret_name(n) or n.lower() == "authorization"]:
        headers.discard(name)
