"""``dq quickstart``: a guided tour that stores real data in a directory of your choice.

It publishes the shipped ``orders`` ODCS contract, shows a breaking change being
refused, publishes a proper major bump, saves an action profile and a validation
job, validates two CSV files it writes (one clean, one with problems) and records
both runs with checkpoint results, metrics, results and reports. Only the public
registry API is used; re-running it in the same directory changes nothing.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from dq_registries.checks.csv import run_validation_job
from dq_registries.cli._common import UsageError, emit, make_console
from dq_registries.cli._options import Target, scoped
from dq_registries.data import orders_contract
from dq_registries.domain.contracts import BreakingChangeError
from dq_registries.wiring.config import settings_from_mapping
from dq_registries.wiring.context import DQContext

__all__ = ["orders_contract", "quickstart"]

ACTOR = "dq-quickstart"
JOB_ID = "orders-daily-validation"
PROFILE_ID = "notify-data-team"

CLEAN_CSV = """order_id,customer_id,order_date,amount,status,gift_wrap
1001,c-17,2026-11-20,129.90,shipped,false
1002,c-08,2026-11-20,15.00,shipped,true
1003,c-17,2026-11-21,42.50,pending,
1004,c-23,2026-11-21,310.00,shipped,false
1005,c-02,2026-11-22,8.99,cancelled,no
"""

BROKEN_CSV = """order_id,customer_id,order_date,amount,status,gift_wrap
2001,c-05,2026-11-22,19.99,shipped,false
2002,,2026-11-22,23.10,pending,true
2002,c-11,2026-11-23,n/a,shipped,false
2004,c-12,23/11/2026,57.00,shipped,maybe
"""


def _evolved(base: dict[str, Any], version: str) -> dict[str, Any]:
    """v2 of the contract: ``gift_wrap`` dropped and ``status`` now required (breaking)."""
    doc = copy.deepcopy(base)
    doc["version"] = version
    props = doc["schema"][0]["properties"]
    doc["schema"][0]["properties"] = [p for p in props if p["name"] != "gift_wrap"]
    for prop in doc["schema"][0]["properties"]:
        if prop["name"] == "status":
            prop["required"] = True
    return doc


def _profile() -> dict[str, Any]:
    return {
        "id": PROFILE_ID,
        "action_type": "send_notification",
        "name": "Notify the data team",
        "channel": "email",
        "recipients": ["data-team@example.com"],
        "secret": "keyvault://dq-vault/smtp-password",
    }


def _job() -> dict[str, Any]:
    return {
        "id": JOB_ID,
        "name": "Daily orders validation",
        "job_type": "validation",
        "contract": {"id": "orders", "version_range": ">=2.0.0,<3.0.0"},
        "dataset": "orders",
        "checkpoints": [
            {"name": "has rows", "check": "row_count", "params": {"min": 1}},
            {"name": "all columns present", "check": "columns"},
            {"name": "required values", "check": "required"},
            {"name": "types", "check": "types"},
            {"name": "unique order ids", "check": "unique", "severity": "critical"},
        ],
        "trigger": {"type": "cron", "expression": "0 6 * * *", "timezone": "UTC"},
        "tags": ["orders", "daily"],
        "on_failure": [PROFILE_ID],
    }


class _Tour:
    """Runs the steps against one context and collects what happened."""

    def __init__(self, dq: DQContext, data_dir: Path) -> None:
        self.dq = dq
        self.data_dir = data_dir
        self.steps: list[dict[str, Any]] = []

    def step(self, name: str, outcome: str, detail: str = "") -> None:
        self.steps.append({"step": name, "outcome": outcome, "detail": detail})

    def publish_contracts(self) -> None:
        contracts = self.dq.contracts
        v1 = orders_contract()
        result = contracts.publish(v1, actor=ACTOR)
        self.step("publish orders 1.0.0", "published" if result.created else "already published")
        self.try_breaking_minor()
        result = contracts.publish(_evolved(v1, "2.0.0"), actor=ACTOR, reason="drop gift_wrap")
        changes = "; ".join(str(c) for c in result.changes)
        self.step(
            "publish orders 2.0.0 (major bump)",
            "published" if result.created else "already published",
            changes,
        )
        if contracts.get("orders", "1.0.0").status == "active":
            contracts.deprecate("orders", "1.0.0", actor=ACTOR, reason="superseded by 2.0.0")
            self.step("deprecate orders 1.0.0", "deprecated")
        else:
            self.step("deprecate orders 1.0.0", "already deprecated")

    def try_breaking_minor(self) -> None:
        """Drop the last field of the highest version in a minor bump: always refused."""
        latest = self.dq.contracts.get("orders").contract.to_odcs()
        major, minor, _ = (int(part) for part in latest["version"].split("."))
        attempt = copy.deepcopy(latest)
        attempt["version"] = f"{major}.{minor + 1}.0"
        dropped = attempt["schema"][0]["properties"].pop()
        step = f"publish orders {attempt['version']} without {dropped['name']!r} (breaking)"
        try:
            self.dq.contracts.publish(attempt, actor=ACTOR)
        except BreakingChangeError as exc:
            self.step(step, "refused", str(exc))
            return
        self.step(step, "published", "expected a refusal")  # pragma: no cover

    def save_definitions(self) -> None:
        before = {v.item.id: v.revision for v in self.dq.actions.list().items}
        profile = self.dq.actions.save_versioned(_profile())
        self.step(
            "save action profile",
            "unchanged" if before.get(PROFILE_ID) == profile.revision else "saved",
            f"{profile.item.id} ({profile.item.action_type})",
        )
        jobs_before = {v.item.id: v.revision for v in self.dq.jobs.list().items}
        job = self.dq.jobs.save_versioned(_job())
        self.step(
            "save job definition",
            "unchanged" if jobs_before.get(JOB_ID) == job.revision else "saved",
            f"{job.item.id} over {job.item.dataset}",
        )

    def run_jobs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (("orders-clean.csv", CLEAN_CSV), ("orders-broken.csv", BROKEN_CSV)):
            path = self.data_dir / name
            if not path.exists():
                path.write_text(text, encoding="utf-8")
            run, outcome = run_validation_job(
                self.dq,
                JOB_ID,
                path,
                idempotency_key=f"quickstart-{path.stem}",
                triggered_by=ACTOR,
            )
            detail = f"run {run.run_id}"
            if outcome is None:
                self.step(f"validate {name}", f"already recorded: {run.status.value}", detail)
            else:
                self.step(f"validate {name}", run.status.value, detail)

    def stored(self) -> dict[str, Any]:
        dq = self.dq
        contracts = [
            {
                "id": v.item.id,
                "version": v.item.version,
                "status": v.item.status,
                "datasets": ", ".join(v.item.contract.dataset_names()),
                "forced": v.item.forced is not None,
            }
            for v in dq.contracts.list(contract_id="orders").items
        ]
        runs = [
            {
                "run_id": r.item.run_id,
                "job_id": r.item.job_id,
                "status": r.item.status.value,
                "checks": f"{sum(c.passed for c in r.item.checkpoint_results)}/"
                f"{len(r.item.checkpoint_results)} passed",
                "rows": r.item.metrics.get("rows"),
            }
            for r in dq.runs.list(job_id=JOB_ID).items
        ]
        reports = [
            {
                "report_id": r.item.report_id,
                "run_id": r.item.run_id,
                "dataset": r.item.dataset,
                "title": r.item.title,
            }
            for r in dq.runs.list_reports(dataset="orders").items
        ]
        return {
            "contracts": contracts,
            "action_profiles": [
                {"id": p.item.id, "type": p.item.action_type, "name": p.item.name}
                for p in dq.actions.list().items
            ],
            "job_definitions": [
                {
                    "id": j.item.id,
                    "contract": "orders " + str(j.item.contract.version_range),
                    "checkpoints": len(j.item.checkpoints),
                    "trigger": j.item.trigger.type,
                }
                for j in dq.jobs.list().items
            ],
            "job_runs": runs,
            "reports": reports,
        }


def _write_config(directory: Path, root: Path, tenant: str, env: str) -> Path:
    path = directory / "dq.yaml"
    if not path.exists():
        body = {
            "tenant": tenant,
            "environment": env,
            "default_backend": "filesystem",
            "filesystem": {"root": str(root)},
        }
        path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


@scoped()
def quickstart(
    target: Target,
    directory: Annotated[
        Path,
        typer.Option("--dir", "-d", help="Where to store everything (created if missing)."),
    ] = Path("dq-quickstart"),
) -> None:
    """Publish a contract, save a job, validate CSVs and record runs — in DIR.

    Without --config everything is stored on the filesystem under DIR/.dq (tenant
    'demo', environment 'dev' unless given); with --config the configured backends
    are used. Re-running it changes nothing already stored.
    """
    from dq_registries.wiring.config import load_config

    directory = directory.expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--dir {directory} exists and is not a directory")
    root = directory / ".dq"
    config = target.config
    if config is None:
        settings = settings_from_mapping(
            {
                "default_backend": "filesystem",
                "filesystem": {"root": str(root)},
                "tenant": "demo",
                "environment": "dev",
            }
        )
    else:
        settings = load_config(config)
    tenant = target.tenant if target.tenant is not None else settings.tenant
    env = target.env if target.env is not None else settings.environment
    with DQContext.from_config(tenant, env, settings) as dq:
        directory.mkdir(parents=True, exist_ok=True)
        tour = _Tour(dq, directory / "data")
        tour.publish_contracts()
        tour.save_definitions()
        tour.run_jobs()
        stored = tour.stored()
    config_path = _write_config(directory, root, tenant, env) if config is None else config
    if target.as_json:
        emit(
            {
                "scope": f"{tenant}/{env}",
                "directory": directory,
                "config": config_path,
                "steps": tour.steps,
                "stored": stored,
            },
            as_json=True,
        )
        return
    console = make_console()
    emit(tour.steps, as_json=False, title=f"dq quickstart in {tenant}/{env}", console=console)
    titles = {
        "contracts": "Contract versions",
        "action_profiles": "Action profiles",
        "job_definitions": "Job definitions",
        "job_runs": "Job runs",
        "reports": "Reports",
    }
    for key, title in titles.items():
        emit(stored[key], as_json=False, title=title, console=console)
    console.print(
        f"Stored under {root}. Explore it with:\n"
        f"  dq runs list --config {config_path}\n"
        f"  dq runs show <run_id> --config {config_path}",
        markup=False,
    )
