"""Shared pieces of every ``dq`` command: options, context opening, output, errors.

Each command takes ``--tenant``, ``--env``, ``--config`` and ``--json``; opens a
``DQContext`` with :func:`open_context`; prints with :func:`emit`; and is wrapped in
:func:`cli_errors` so a bad input ends as one ``error: ...`` line on stderr with exit
code 1 (2 for usage errors, 130 when interrupted), never a traceback.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import pydantic
import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dq_metadata.canonical import MAX_DEPTH
from dq_metadata.errors import DQError, Problem, ValidationError
from dq_stores._redact import redact

if TYPE_CHECKING:
    from dq_registries.wiring.context import DQContext

__all__ = [
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_USAGE",
    "ConfigOpt",
    "EnvOpt",
    "JsonOpt",
    "TenantOpt",
    "UsageError",
    "cli_errors",
    "emit",
    "emit_page",
    "fail",
    "history_rows",
    "make_console",
    "open_context",
    "parse_when",
    "read_document",
    "set_verbose",
    "to_jsonable",
    "verbose_requested",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
#: The exit codes, as ``dq --help`` shows them (kept in step with docs/usage.md).
EXIT_CODES_HELP = (
    "Exit codes: 0 done; "
    "1 refused: a bad input file or config, a domain rule (not found, conflict, "
    "breaking change) or an unavailable backend; "
    "2 bad command line: unknown option, missing argument or a bad option value "
    "(--since, --status, --limit, --page-token, --tenant…); "
    "130 interrupted."
)

TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="Tenant id (default: 'tenant' from the config, else 'default').",
        show_default=False,
    ),
]
EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="Environment id (default: 'environment' from the config, else 'dev').",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file (default: $DQ_CONFIG, else DQ_* env vars and built-in defaults).",
        envvar="DQ_CONFIG",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print JSON for scripts instead of tables."),
]

#: Width given to a console that is not a terminal: wide enough for any table row.
_UNWRAPPED_WIDTH = 1_000_000

P = ParamSpec("P")
R = TypeVar("R")


class UsageError(DQError):
    """A command was called with arguments that make no sense together (exit code 2)."""


def fail(message: str, *, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` as one line on stderr and return the ``Exit`` to raise."""
    one_line = redact(" ".join(str(message).split()))  # e.g. a URL given as --config
    # never fail while reporting: text that cannot be encoded is shown escaped
    one_line = one_line.encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stderr.write(f"error: {one_line}\n")
    sys.stderr.flush()
    return typer.Exit(code=code)


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    problems = [Problem(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
    return str(ValidationError(f"invalid {exc.title}", problems))


def cli_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one ``error: ...`` line and a non-zero exit code.

    ``DQError`` (and pydantic validation errors), unreadable, undecodable or too
    deeply nested files and malformed YAML/JSON exit with 1; :class:`UsageError`
    exits with 2. ``KeyboardInterrupt`` is left to :func:`dq_registries.cli.main`
    (``error: interrupted``, exit 130).
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UsageError as exc:
            raise fail(str(exc), code=EXIT_USAGE) from None
        except DQError as exc:
            raise fail(str(exc)) from None
        except pydantic.ValidationError as exc:
            raise fail(_pydantic_message(exc)) from None
        except yaml.YAMLError as exc:
            raise fail(f"invalid YAML: {exc}") from None
        except json.JSONDecodeError as exc:
            raise fail(f"invalid JSON: {exc}") from None
        except UnicodeDecodeError as exc:
            raise fail(f"input is not valid UTF-8 text (byte {exc.start})") from None
        except UnicodeEncodeError:
            raise fail("input holds text that is not valid Unicode (a lone surrogate)") from None
        except RecursionError:
            raise fail(
                f"input is nested too deeply (documents may nest at most {MAX_DEPTH} levels)"
            ) from None
        except FileNotFoundError as exc:
            raise fail(f"file not found: {exc.filename}") from None
        except IsADirectoryError as exc:
            raise fail(f"is a directory, not a file: {exc.filename}") from None
        except PermissionError as exc:
            raise fail(f"permission denied: {exc.filename}") from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(f"{exc.strerror or type(exc).__name__}{where}") from None

    return wrapper


def read_document(path: Path) -> Any:
    """Parse a YAML or JSON file (JSON is YAML) into Python data.

    Raises:
        ValidationError: the file is empty, not YAML 1.2 (or is ambiguous: the line is
            named), or its top level is not a mapping.
        FileNotFoundError: left to :func:`cli_errors` to report.
    """
    from dq_registries.yaml12 import load_yaml

    text = Path(path).read_text(encoding="utf-8")
    data = load_yaml(text, source=str(path))
    if data is None:
        raise ValidationError(f"{path} is empty")
    if not isinstance(data, Mapping):
        raise ValidationError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


@contextmanager
def open_context(tenant: str | None, env: str | None, config: Path | None) -> Iterator[DQContext]:
    """Load the configuration and yield a ``DQContext`` for one scope; close it after.

    ``tenant``/``env`` of ``None`` fall back to the config's ``tenant``/``environment``.
    With ``dq --verbose``, one ``using …`` line on stderr says what the command is
    connected to (secrets redacted).
    """
    from dq_registries.wiring.config import load_config
    from dq_registries.wiring.config_env import connection_summary
    from dq_registries.wiring.context import DQContext

    settings = load_config(config)
    scope = (
        tenant if tenant is not None else settings.tenant,
        env if env is not None else settings.environment,
    )
    if verbose_requested():
        source = f"config {config}" if config is not None else "no config file"
        sys.stderr.write(
            f"using {scope[0]}/{scope[1]}: {connection_summary(settings)} [{source}]\n"
        )
    with DQContext.from_config(*scope, settings) as ctx:
        yield ctx


# Set by the root command's callback on every invocation (``dq --verbose …``).
_VERBOSE: ContextVar[bool] = ContextVar("dq_cli_verbose", default=False)


def set_verbose(value: bool) -> None:
    """Record the root command's ``--verbose`` for this invocation."""
    _VERBOSE.set(value)


def verbose_requested() -> bool:
    """True when the root command was given ``--verbose``."""
    return _VERBOSE.get()


def to_jsonable(data: Any) -> Any:
    """Convert models, dataclasses-like pages, dates and enums into plain JSON data."""
    if isinstance(data, pydantic.BaseModel):
        return data.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(data, Mapping):
        return {str(k): to_jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in data]
    if isinstance(data, (datetime, date)):
        return data.isoformat()
    if isinstance(data, Enum):
        return data.value
    if isinstance(data, Path):
        return str(data)
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    if data is None or isinstance(data, (str, int, float, bool)):
        return data
    if hasattr(data, "__dataclass_fields__"):
        return {name: to_jsonable(getattr(data, name)) for name in data.__dataclass_fields__}
    return str(data)


# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings,
# overrides and isolates: data (a contract's name, a description) must not move the
# cursor, retitle the window or reorder what a person reads in a table.
_TERMINAL_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _visible(text: str) -> str:
    """``text`` with every terminal control character written as its escape (``\\x1b``)."""
    return _TERMINAL_CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return _visible(json.dumps(value, ensure_ascii=False, sort_keys=True))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _visible(str(value))


def _title(title: str | None) -> Text | None:
    return Text(title, style="table.title") if title is not None else None


def _cell(value: Any) -> Text:
    # Text, not str: data such as "[error] a.b: ..." must never be read as rich markup.
    return Text(_text(value))


def make_console() -> Console:
    """A console for stdout that never hard-wraps output going to a pipe or file.

    On a terminal, tables fit its width. Elsewhere lines are as long as their
    content, so a run id or page token printed for a script stays one piece.
    """
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=True, width=_UNWRAPPED_WIDTH)
    return console


def emit(
    data: Any,
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``data`` as JSON (``as_json``) or as a rich table for people.

    A list becomes one row per item (``columns`` picks and orders the fields, default:
    the first item's keys); a single object becomes a field/value table.
    """
    plain = to_jsonable(data)
    out = console or make_console()
    if as_json:
        sys.stdout.write(json.dumps(plain, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        return
    if isinstance(plain, list):
        rows = [r if isinstance(r, dict) else {"value": r} for r in plain]
        names = list(columns) if columns else (list(rows[0]) if rows else ["value"])
        table = Table(title=_title(title), show_lines=False)
        for name in names:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(n)) for n in names))
        if not rows:
            table.caption = "(none)"
        out.print(table)
        return
    if isinstance(plain, dict):
        table = Table(title=_title(title), show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        keys = list(columns) if columns else list(plain)
        for key in keys:
            table.add_row(Text(key), _cell(plain.get(key)))
        out.print(table)
        return
    out.print(_cell(plain))


def emit_page(
    page: Any,
    row: Callable[[Any], Mapping[str, Any]],
    *,
    as_json: bool,
    columns: Sequence[str],
    title: str,
) -> None:
    """Print an ``ItemPage``: its rows and, if there is more, the next page token.

    JSON output is ``{"items": [<full items>], "next_token": ...}``.
    """
    if as_json:
        emit(
            {"items": [v.item for v in page.items], "next_token": page.next_token},
            as_json=True,
        )
        return
    console = make_console()
    emit(
        [row(v.item) for v in page.items],
        as_json=False,
        columns=columns,
        title=title,
        console=console,
    )
    if page.next_token:
        # soft_wrap: the terminal may fold it visually, but a copy stays one token
        console.print(f"more: --page-token {page.next_token}", markup=False, soft_wrap=True)


def history_rows(revisions: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per stored revision (``Revision`` objects), deletions marked."""
    return [
        {
            "revision": r.revision,
            "written_at": r.written_at,
            "deleted": r.deleted,
            "sha256": r.sha256[:12],
        }
        for r in revisions
    ]


def parse_when(value: str | None, option: str) -> datetime | None:
    """Parse an ISO date/time option; naive values are taken as UTC."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option}: {value!r} is not an ISO date or date-time (e.g. 2026-11-23T08:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
