"""The options every scoped ``dq`` command shares, declared once.

A command decorated with :func:`scoped` takes a :class:`Target` as its first
parameter instead of declaring ``--tenant/-t``, ``--env/-e``, ``--config/-c`` and
``--json`` itself; :func:`scoped` appends those options to the command's
signature, so users still type them after the command
(``dq runs list -t acme -e prod --json``), and builds the ``Target`` from them.

Exit codes follow one rule (see ``docs/usage.md``): a bad command line — unknown
option, missing argument, or a value the command cannot use — is a usage error,
exit 2; a bad input file, a refusal by the domain rules or a backend failure is
exit 1. Values checked deep inside a registry call are marked as command-line
values with :func:`command_line_values`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from dq_metadata.errors import ValidationError
from dq_metadata.scope import validate_id
from dq_registries.cli._common import (
    ConfigOpt,
    EnvOpt,
    JsonOpt,
    TenantOpt,
    UsageError,
    cli_errors,
    open_context,
)

if TYPE_CHECKING:
    from dq_registries.wiring.context import DQContext

__all__ = ["Target", "command_line_values", "scoped"]

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def command_line_values() -> Iterator[None]:
    """Report a ``ValidationError`` raised inside as a usage error (exit code 2).

    Wrap only code whose inputs all came from the command line (options and
    arguments), never code that reads an input file.
    """
    try:
        yield
    except ValidationError as exc:
        raise UsageError(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Target:
    """What the shared options chose: the scope, the config file and the output format."""

    tenant: str | None = None
    env: str | None = None
    config: Path | None = None
    as_json: bool = False

    @contextmanager
    def open(self) -> Iterator[DQContext]:
        """The ``DQContext`` of the chosen scope, closed afterwards.

        Raises:
            UsageError: ``--tenant`` / ``--env`` is not a valid id (exit 2).
            MisconfiguredError, ValidationError: the configuration is wrong (exit 1).
        """
        with command_line_values():
            if self.tenant is not None:
                validate_id(self.tenant, "tenant")
            if self.env is not None:
                validate_id(self.env, "environment")
        with open_context(self.tenant, self.env, self.config) as ctx:
            yield ctx


def _shared(with_json: bool) -> list[inspect.Parameter]:
    options = [
        ("tenant", TenantOpt, None),
        ("env", EnvOpt, None),
        ("config", ConfigOpt, None),
        ("as_json", JsonOpt, False),
    ]
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        for name, hint, default in options
        if with_json or name != "as_json"
    ]


def scoped(*, json: bool = True) -> Callable[[Callable[Concatenate[Target, P], R]], Callable[P, R]]:
    """Give a command the shared options and the one-line error handling of ``cli_errors``.

    The decorated function's first parameter is the :class:`Target`; typer sees the
    function's other parameters followed by ``--tenant``, ``--env``, ``--config`` and
    (unless ``json=False``) ``--json``.
    """

    def decorate(func: Callable[Concatenate[Target, P], R]) -> Callable[P, R]:
        guarded = cli_errors(func)
        signature = inspect.signature(func, eval_str=True)
        own = list(signature.parameters.values())[1:]

        @functools.wraps(func)
        def command(*args: P.args, **kwargs: P.kwargs) -> R:
            target = Target(
                kwargs.pop("tenant", None),  # type: ignore[arg-type]
                kwargs.pop("env", None),  # type: ignore[arg-type]
                kwargs.pop("config", None),  # type: ignore[arg-type]
                bool(kwargs.pop("as_json", False)),
            )
            return guarded(target, *args, **kwargs)

        # typer reads the parameters from the signature (and type hints by name).
        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *_shared(json)]
        )
        first = next(iter(signature.parameters))
        command.__annotations__ = {k: v for k, v in func.__annotations__.items() if k != first}
        return command

    return decorate
