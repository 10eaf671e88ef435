"""Reports attached to job runs and datasets."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from dq_metadata.models import Report
from dq_metadata.scope import Scope
from dq_registries.domain._storeops import check_id, check_limit
from dq_stores.base import FilterValue, ItemPage
from dq_stores.typed import JobRunStore, ReportStore

__all__ = ["RunReports"]


class RunReports:
    """Report operations of ``JobRunRegistry`` (which provides these attributes)."""

    scope: Scope
    store: JobRunStore
    reports: ReportStore
    _clock: Callable[[], datetime]

    def attach_report(
        self,
        run_id: str,
        *,
        dataset: str,
        title: str | None = None,
        summary: Mapping[str, Any] | None = None,
        content: str | None = None,
        format: str = "json",
    ) -> Report:
        """Attach a report about ``dataset`` to an existing run. Raises ``NotFoundError``."""
        check_id(dataset, "dataset")
        run = self.store.get(self.scope, check_id(run_id, "run_id")).item
        report = self.reports.validate(
            {
                "report_id": f"report-{uuid.uuid4().hex}",
                "run_id": run_id,
                "job_id": run.job_id,
                "dataset": dataset,
                "created_at": self._clock().isoformat(),
                "title": title,
                "format": format,
                "summary": dict(summary or {}),
                "content": content,
            }
        )
        return self.reports.create(self.scope, report).item

    def get_report(self, report_id: str) -> Report:
        return self.reports.get(self.scope, check_id(report_id, "report_id")).item

    def list_reports(
        self,
        run_id: str | None = None,
        dataset: str | None = None,
        *,
        limit: int = 100,
        page_token: str | None = None,
    ) -> ItemPage[Report]:
        """Reports newest first, of one run and/or one dataset."""
        filters: dict[str, FilterValue] = {}
        if run_id is not None:
            filters["run_id"] = check_id(run_id, "run_id")
        if dataset is not None:
            filters["dataset"] = check_id(dataset, "dataset")
        return self.reports.list(
            self.scope,
            filters=filters,
            limit=check_limit(limit),
            page_token=page_token,
            descending=True,
        )
