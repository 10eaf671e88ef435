"""``dq``: the command-line interface of dq-platform core.

Sub-apps: ``contracts``, ``jobs``, ``actions``, ``runs``, ``db``, ``config``, and
the ``quickstart`` command. Scoped commands share ``--tenant``, ``--env``,
``--config`` and ``--json``, declared once in :mod:`dq_registries.cli._options`.
``dq --verbose <command>`` prints what it connects to; ``dq --version`` prints the
installed version; ``--install-completion`` / ``--show-completion`` set up shell
completion.

Exit codes (every failure is one ``error: ...`` line on stderr, never a traceback):

* ``0`` success;
* ``1`` the command failed: bad input (invalid, undecodable or too deeply nested
  document, unknown id…), a conflict, a missing file, an unreachable backend;
* ``2`` usage: options that make no sense (unknown option, bad ``--since``…);
* ``130`` interrupted (Ctrl-C), at any moment including start-up.

This module imports nothing heavy (not even ``typing``): the application
(:mod:`._app`) is loaded inside :func:`main`'s interrupt guard. A Ctrl-C during
the interpreter's own start-up, before any dq module runs, is Python's to report.
"""

from __future__ import annotations

import sys

__all__ = ["EXIT_INTERRUPTED", "app", "main"]

EXIT_INTERRUPTED = 130


def _interrupted() -> SystemExit:
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    return SystemExit(EXIT_INTERRUPTED)


def main() -> None:
    """Entry point of the ``dq`` console script (exit codes: see the module docstring)."""
    try:
        from dq_registries.cli._app import app

        app()
    except KeyboardInterrupt:
        raise _interrupted() from None
    except SystemExit as exc:
        # Typer turns a Ctrl-C outside a command body into a silent exit 130.
        if exc.code == EXIT_INTERRUPTED:
            raise _interrupted() from None
        raise
    except RecursionError:
        sys.stderr.write("error: input is nested too deeply to read\n")
        raise SystemExit(1) from None


def __getattr__(name: str):  # type: ignore[no-untyped-def]  # no typing import: start fast
    if name == "app":
        from dq_registries.cli._app import app

        return app
    raise AttributeError(f"module 'dq_registries.cli' has no attribute {name!r}")
