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
* ``2`` usage: a missing argument, an unknown option or command, options that make
  no sense (bad ``--since``…): one line naming what is wrong and the ``--help`` to run;
* ``130`` interrupted (Ctrl-C), at any moment including start-up. In rare
  timings CPython itself marks the interrupt "unhandled" (it arrived while C code
  ran Python code) and, after ``error: interrupted``, ends the process by SIGINT
  instead; a shell reports that as 130 too.

Once the command has ended, its exit code stands: from then on the process ignores
SIGINT, so a Ctrl-C during the interpreter's shutdown (``atexit`` callbacks,
finalisers, CPython restoring the default SIGINT action) neither prints a traceback
nor turns a finished command into a death by SIGINT. SIGTERM and SIGKILL still end it.
(:func:`main` run outside the main thread leaves SIGINT as it is.)

This module imports nothing heavy (not even ``typing``): the application
(:mod:`._app`) is loaded inside :func:`main`'s interrupt guard. A Ctrl-C during
the interpreter's own start-up, before any dq module runs, is Python's to report.
"""

from __future__ import annotations

import signal
import sys

__all__ = ["EXIT_INTERRUPTED", "app", "main"]

EXIT_INTERRUPTED = 130


def _interrupted() -> SystemExit:
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    return SystemExit(EXIT_INTERRUPTED)


def _quiet_interrupts(hook):  # type: ignore[no-untyped-def]  # no typing import
    # A Ctrl-C landing in a callback CPython runs for itself (an import lock's weakref
    # callback, a finaliser) cannot stop the command; CPython would print it as an
    # "Exception ignored … Traceback". The command then simply goes on to its end.
    def hook_without_interrupts(unraisable):  # type: ignore[no-untyped-def]
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    return hook_without_interrupts


def _ignore_interrupts() -> None:
    # ``signal.signal`` runs any pending Python handler first, so an interrupt that
    # arrived before this call raises here, inside the caller's guard. SIG_IGN is
    # process-wide and CPython leaves it in place while it shuts down (it restores
    # SIGINT's default action only over a handler of its own). Outside the main
    # thread (``main`` run by an embedding runner) no KeyboardInterrupt reaches the
    # command and ``signal.signal`` raises ValueError: the process's SIGINT is left
    # to its main thread.
    try:  # noqa: SIM105  # no contextlib import: start fast
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        pass


def main() -> None:
    """Entry point of the ``dq`` console script (exit codes: see the module docstring)."""
    sys.unraisablehook = _quiet_interrupts(sys.unraisablehook)  # type: ignore[no-untyped-call]
    try:
        try:
            from dq_registries.cli._app import app
            from dq_registries.cli._usage import run

            code = run(app)
        except SystemExit as exc:
            code = exc.code  # type: ignore[assignment]  # no typing import
        except RecursionError:
            sys.stderr.write("error: input is nested too deeply to read\n")
            code = 1
        _ignore_interrupts()
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    # Typer turns a Ctrl-C outside a command body into a silent exit code 130.
    if code == EXIT_INTERRUPTED:
        _ignore_interrupts_after_an_interrupt()
        raise _interrupted()
    raise SystemExit(code)


def _ignore_interrupts_after_an_interrupt() -> None:
    # A second Ctrl-C while the first is being reported changes nothing.
    for _ in range(3):
        try:
            _ignore_interrupts()
            return
        except KeyboardInterrupt:
            continue


def __getattr__(name: str):  # type: ignore[no-untyped-def]  # no typing import: start fast
    if name == "app":
        from dq_registries.cli._app import app

        return app
    raise AttributeError(f"module 'dq_registries.cli' has no attribute {name!r}")
