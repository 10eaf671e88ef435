"""Running the Typer application so that its usage errors are one line, like ours.

Typer shows a usage error (missing argument, unknown option or command, a value
that does not convert) as a usage block and a box. ``dq`` prints every failure as
one ``error: ...`` line on stderr instead: what is wrong and the ``--help`` to run,
with exit code 2 for usage errors (see :mod:`dq_registries.cli`).
"""

from __future__ import annotations

from typing import Any

import typer

from dq_registries.cli._common import EXIT_ERROR, EXIT_USAGE, fail

__all__ = ["run", "usage_message"]

# Click's exception classes, wherever this Typer takes click from (Typer ≥ 0.2x
# vendors it privately): ``typer.BadParameter`` is click's, a ``UsageError``
# (exit code 2), itself a ``ClickException``.
_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]
_CLICK_ERROR: type[Exception] = _USAGE_ERROR.__mro__[1]


def usage_message(exc: Any) -> str:
    """One line for a click usage error: what is wrong, and the ``--help`` to run."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "dq"
    param = getattr(exc, "param", None)
    if type(exc).__name__ == "MissingParameter" and _is_argument(param):
        what = f"missing argument {(getattr(param, 'name', None) or 'ARGUMENT').upper()}"
    else:
        what = str(exc.format_message()).rstrip(".")
    return f"{path}: {what}; see `{path} --help`"


def _is_argument(param: object) -> bool:
    return getattr(param, "param_type_name", None) == "argument"


def run(app: typer.Typer) -> int:
    """Run ``app`` on ``sys.argv`` and return its exit code (a usage error: printed, 2).

    ``KeyboardInterrupt`` and ``SystemExit`` pass through to the caller.
    """
    try:
        result = app(standalone_mode=False)
    except _USAGE_ERROR as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help
            fail(usage_message(exc), code=EXIT_USAGE)
        return EXIT_USAGE
    except _CLICK_ERROR as exc:
        code = int(getattr(exc, "exit_code", EXIT_ERROR))
        fail(str(getattr(exc, "format_message", exc.__str__)()), code=code)
        return code
    except typer.Abort:
        fail("aborted (end of input)")
        return EXIT_ERROR
    # Typer returns the code of an ``Exit`` (``typer.Exit``, ``--help``, ``--version``)
    # instead of exiting; a command's own return value (None) means success.
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
