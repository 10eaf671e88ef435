"""``dq verify``: prove the stores — every document, revision, index entry and results object.

    dq verify                       # the whole store
    dq verify --tenant acme         # every environment of one tenant
    dq verify -t acme -e prod       # one scope
    dq verify --repair-index        # also rebuild indexes that disagree with the documents
                                    # (filesystem: and seal unsealed superseded revisions)
    dq verify --json                # one JSON object for scripts (no progress bar)

Prints one line per problem and a summary; exits 1 when anything is wrong (an
index problem repaired by ``--repair-index`` still counts: run it again to see
a clean store; a scope holding a damaged record is not rebuilt, see the
``note:`` line), 0 otherwise. A ``--tenant`` / ``--env`` that no store holds is
an error (``error: scope acme/prdo does not exist: ...``, exit 1, nothing
checked), never a clean result. Every document store the configuration uses is
walked once, and the results store checks each run's results object. The
doctor's scratch tenant ``dq-doctor`` is left out of a whole-store walk.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dq_registries.cli._common import ConfigOpt, UsageError, cli_errors

if TYPE_CHECKING:
    from dq_stores.backend import DocumentBackend
    from dq_stores.results import ResultsStore

__all__ = ["verify_command"]

_TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", "-t", help="Check only this tenant (default: every tenant).",
                 show_default=False),
]  # fmt: skip
_EnvOpt = Annotated[
    str | None,
    typer.Option("--env", "-e", help="With --tenant: check only this environment.",
                 show_default=False),
]  # fmt: skip
_RepairOpt = Annotated[
    bool,
    typer.Option(
        "--repair-index",
        help="Rebuild the derived indexes of scopes whose index disagrees with their "
        "documents, and seal superseded filesystem revision files found unsealed "
        "(document contents are never changed; a scope holding a damaged record is "
        "left alone, so reads keep failing on it instead of skipping it).",
    ),
]
_JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object, no progress bar.")]


@contextmanager
def _stores(config: Path | None) -> Iterator[tuple[list[DocumentBackend], ResultsStore]]:
    """Every distinct document backend the configuration uses, and its results store."""
    from dq_registries.wiring.config import STORE_NAMES, load_config
    from dq_registries.wiring.container import build_container

    settings = load_config(config)
    container = build_container(settings)
    try:
        stores = settings.stores.model_dump()
        names = sorted({stores[store] for store in STORE_NAMES})
        backends = [getattr(container, f"{name}_backend")() for name in names]
        yield backends, container.results_store()
    finally:
        container.shutdown_resources()


def verify_command(
    tenant: _TenantOpt = None,
    env: _EnvOpt = None,
    config: ConfigOpt = None,
    repair_index: _RepairOpt = False,
    as_json: _JsonOpt = False,
) -> None:
    """Check every document, revision, index entry and results object; exit 1 on any problem.

    A --tenant/--env that no store holds is an error (exit 1), not a clean result.
    """
    problems, summary = _run(tenant, env, config, repair_index, as_json)
    if as_json:
        sys.stdout.write(json.dumps({"summary": summary, "problems": problems}, indent=2) + "\n")
    else:
        repaired = summary["repaired"]
        typer.echo(
            f"checked {summary['scopes']} scope(s), {summary['documents']} document(s), "
            f"{summary['revisions']} revision(s), {summary['results']} results object(s): "
            f"{summary['problems']} problem(s)"
            + (f"; index rebuilt in {len(repaired)} scope(s)" if repaired else "")
        )
        if summary["not_repaired"]:
            typer.echo(
                f"note: index not rebuilt in {', '.join(summary['not_repaired'])}: it holds "
                "damaged or rolled-back records, which a rebuilt index would leave out "
                "(queries and exports would skip them silently); restore them from a "
                "backup, then repair"
            )
        if summary["legacy_records"]:
            typer.echo(
                f"note: {summary['legacy_records']} record(s) in the format before issue 11 "
                "(identity bound to kind and key only; rewritten on their next change)"
            )
        if summary["interrupted"]:
            typer.echo(
                f"note: {summary['interrupted']} uncommitted revision file(s) left by an "
                "interrupted write (a power loss); not part of any history, replaced by "
                "the key's next write"
            )
        if summary["unsealed"]:
            typer.echo(
                f"note: {summary['unsealed']} superseded revision file(s) not sealed "
                "(written before seals, or a write stopped between its head move and its "
                "seal); `dq verify --repair-index` seals them"
            )
        if summary["unchained"]:
            typer.echo(
                f"note: {summary['unchained']} SQL revision(s) written before record hashes "
                "(schema 0005): not chained, so edits to them cannot be detected; their "
                "keys' later revisions are chained"
            )
    if summary["problems"]:
        raise typer.Exit(code=1)


@cli_errors
def _run(
    tenant: str | None, env: str | None, config: Path | None, repair: bool, as_json: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from dq_metadata.errors import DQError
    from dq_metadata.scope import Scope, validate_id
    from dq_stores.verify import VerifyCounts, has_scope, missing_scope, verify

    if env is not None and tenant is None:
        raise UsageError("--env needs --tenant")
    try:
        scope = None if env is None or tenant is None else Scope(tenant, env)
        if tenant is not None:
            validate_id(tenant, "tenant")
    except (ValueError, DQError) as exc:
        raise UsageError(str(exc)) from exc
    counts = VerifyCounts()
    found: list[dict[str, Any]] = []
    by_tenant = None if scope is not None else tenant
    with _stores(config) as (backends, results), _progress(not as_json) as step:
        # a typo must not verify as a clean, empty scope: walk the stores holding it
        holding = [b for b in backends if has_scope(b, scope, by_tenant)]
        if not holding:
            raise missing_scope(backends, scope, by_tenant)
        for backend in holding:
            walk = verify(
                backend,
                scope=scope,
                tenant=by_tenant,
                results=results,
                counts=counts,
                repair_index=repair,
                on_scope=step,
            )
            for problem in walk:
                if as_json:
                    found.append(problem.to_json())
                else:
                    typer.echo(str(problem))
    summary = {
        "scopes": counts.scopes,
        "documents": counts.documents,
        "revisions": counts.revisions,
        "results": counts.results,
        "legacy_records": counts.legacy_records,
        "interrupted": counts.interrupted,
        "unsealed": counts.unsealed,
        "unchained": counts.unchained,
        "problems": counts.problems,
        "repaired": [str(s) for s in counts.repaired],
        "not_repaired": [str(s) for s in counts.not_repaired],
    }
    return found, summary


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich progress line on a terminal (stderr); a no-op elsewhere or with --json."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda _scope: None
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("verifying", total=None)
        yield lambda scope: bar.update(task, description=f"verifying {scope}", advance=1)
