"""Liveness of running runs: heartbeats, the reaper and the ``running`` context manager.

A process running a run calls :meth:`RunLiveness.heartbeat` now and then (the
:meth:`RunLiveness.running` context manager does it on a background thread). A
run whose process died stays ``running``; :meth:`RunLiveness.reap` finishes every
running run whose last sign of life (``last_heartbeat_at``, else ``started_at``)
is older than a duration as ``failed``, with the reason in ``error``. Every write
here is conditional on the revision read, so a reaper racing a late ``finish`` or
``heartbeat`` loses or wins as a whole: exactly one of them changes the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from dq_metadata.errors import (
    ConflictError,
    DQError,
    IllegalTransitionError,
    Problem,
    ValidationError,
)
from dq_metadata.models import JobRun, RunStatus
from dq_registries.domain.runs.lifecycle import check_transition
from dq_registries.durations import check_duration

if TYPE_CHECKING:
    from dq_metadata.scope import Scope
    from dq_stores.base import Versioned
    from dq_stores.typed import JobRunStore

__all__ = ["DEFAULT_HEARTBEAT_INTERVAL", "REAPED_PREFIX", "RunLiveness", "last_sign_of_life"]

log = logging.getLogger(__name__)

#: Seconds between automatic heartbeats of :meth:`RunLiveness.running`.
DEFAULT_HEARTBEAT_INTERVAL = 30.0
#: ``error`` of a reaped run starts with this.
REAPED_PREFIX = "reaped:"
_RETRIES = 8
_PAGE = 200


def last_sign_of_life(run: JobRun) -> datetime:
    """``last_heartbeat_at``, else ``started_at``, else ``created_at``."""
    return run.last_heartbeat_at or run.started_at or run.created_at


class _Heartbeat:
    """Calls ``beat`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, beat: Callable[[], object], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except IllegalTransitionError:
                return  # finished, cancelled or reaped meanwhile: nothing left to keep alive
            except Exception as exc:  # a store hiccup: try again next interval
                log.warning("heartbeat failed (%s); retrying in %ss", exc, self._interval)


class RunLiveness:
    """Heartbeat, reap and ``running`` of :class:`JobRunRegistry` (mixed into it)."""

    scope: Scope
    store: JobRunStore
    _clock: Callable[[], datetime]

    if TYPE_CHECKING:  # provided by JobRunRegistry

        def _versioned(self, run_id: str) -> Versioned[JobRun]: ...
        def _changed(self, run: JobRun, changes: Mapping[str, Any]) -> JobRun: ...
        def _write(self, current: Versioned[JobRun], run: JobRun) -> JobRun: ...
        def get(self, run_id: str) -> JobRun: ...
        def start(
            self, job_id: str, *, idempotency_key: str | None = ..., triggered_by: str | None = ...
        ) -> JobRun: ...
        def mark_running(self, run_id: str) -> JobRun: ...
        def finish(
            self, run_id: str, status: Literal["succeeded", "failed"], *, error: str | None = ...
        ) -> JobRun: ...

    def heartbeat(self, run_id: str) -> JobRun:
        """Record that ``run_id`` is alive now (``last_heartbeat_at``).

        Retried against concurrent checkpoint writes.

        Raises:
            NotFoundError: no such run.
            IllegalTransitionError: the run is not running (finished, cancelled, reaped).
        """
        for _ in range(_RETRIES):
            current = self._versioned(run_id)
            if current.item.status is not RunStatus.RUNNING:
                raise IllegalTransitionError(
                    f"run {run_id!r} is {current.item.status.value}; no heartbeat to record"
                )
            run = self._changed(current.item, {"last_heartbeat_at": self._clock()})
            try:
                return self._write(current, run)
            except IllegalTransitionError:
                raise
            except ConflictError:
                continue
        raise ConflictError(f"run {run_id!r} is changing too fast; heartbeat not recorded")

    def stale_runs(self, older_than: timedelta) -> list[JobRun]:
        """Running runs of this scope whose last sign of life is older than ``older_than``."""
        cutoff = self._clock() - check_duration(older_than, "older_than")
        stale: list[JobRun] = []
        token: str | None = None
        while True:
            page = self.store.list_by_tenant(
                self.scope.tenant,
                self.scope.environment,
                status=[RunStatus.RUNNING],
                limit=_PAGE,
                page_token=token,
            )
            stale.extend(v.item for v in page.items if last_sign_of_life(v.item) < cutoff)
            token = page.next_token
            if token is None:
                return stale

    def reap(
        self,
        older_than: timedelta,
        *,
        reason: str | None = None,
        dry_run: bool = False,
    ) -> list[JobRun]:
        """Fail every running run whose last sign of life is older than ``older_than``.

        Each run becomes ``failed`` with ``error`` = ``"reaped: no heartbeat since
        <time> (older than <duration>)"`` (plus ``reason``), conditional on the
        revision read: a run that finished, was cancelled or sent a heartbeat
        meanwhile is left alone. Queued runs are never reaped (cancel them).

        Returns:
            The runs reaped, as stored (with ``dry_run``: the runs that would be).

        Raises:
            ValidationError: ``older_than`` is not a positive ``timedelta``.
        """
        if reason is not None and not isinstance(reason, str):
            raise ValidationError("invalid reason", [Problem("reason", "must be a string")])
        stale = self.stale_runs(older_than)
        if dry_run:
            return stale
        cutoff = self._clock() - older_than
        reaped = [self._reap_one(run.run_id, cutoff, older_than, reason) for run in stale]
        return [run for run in reaped if run is not None]

    def _reap_one(
        self,
        run_id: str,
        cutoff: datetime,
        older_than: timedelta,
        reason: str | None,
    ) -> JobRun | None:
        for _ in range(_RETRIES):
            current = self._versioned(run_id)
            seen = last_sign_of_life(current.item)
            if current.item.status is not RunStatus.RUNNING or seen >= cutoff:
                return None  # finished, cancelled or alive again: the other writer won
            check_transition(current.item, RunStatus.FAILED)
            error = (
                f"{REAPED_PREFIX} no heartbeat since {seen.isoformat()} (older than {older_than})"
            )
            if reason:
                error += f"; {reason}"
            changes = {"status": RunStatus.FAILED, "finished_at": self._clock(), "error": error}
            try:
                return self._write(current, self._changed(current.item, changes))
            except ConflictError:
                continue  # changed meanwhile: look again
        return None

    @contextmanager
    def running(
        self,
        job_id: str,
        *,
        idempotency_key: str | None = None,
        triggered_by: str | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    ) -> Iterator[JobRun]:
        """Start a run of ``job_id``, mark it running and keep it alive while the block runs.

        Yields the running ``JobRun``. A background thread calls :meth:`heartbeat`
        every ``heartbeat_interval`` seconds. When the block raises, the run is
        finished ``failed`` with ``error`` = ``"<ExceptionType>: <message>"`` and the
        exception propagates; when it returns without finishing the run itself,
        the run is finished ``succeeded``. A run finished, cancelled or reaped
        inside the block is left as it is.

        Raises:
            ValidationError: ``heartbeat_interval`` is not a positive number.
            Whatever :meth:`start` and :meth:`mark_running` raise.
        """
        if (
            isinstance(heartbeat_interval, bool)
            or not isinstance(heartbeat_interval, int | float)
            or not heartbeat_interval > 0
        ):
            raise ValidationError(
                "invalid heartbeat_interval",
                [Problem("heartbeat_interval", "must be a positive number of seconds")],
            )
        run = self.start(job_id, idempotency_key=idempotency_key, triggered_by=triggered_by)
        run = self.mark_running(run.run_id)
        run_id = run.run_id
        try:
            with _Heartbeat(lambda: self.heartbeat(run_id), heartbeat_interval, f"dq-{run_id}"):
                yield run
        except BaseException as exc:
            try:
                self._finish_if_running(run_id, "failed", f"{type(exc).__name__}: {exc}")
            except DQError as store_error:  # keep the block's own exception the one raised
                log.warning("could not finish run %s as failed: %s", run_id, store_error)
            raise
        self._finish_if_running(run_id, "succeeded", None)

    def _finish_if_running(self, run_id: str, status: str, error: str | None) -> None:
        try:
            if self.get(run_id).status is RunStatus.RUNNING:
                self.finish(run_id, "failed" if status == "failed" else "succeeded", error=error)
        except ConflictError:
            pass  # finished by someone else (the block, a reaper, a cancel) meanwhile
