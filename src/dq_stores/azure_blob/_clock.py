"""The offset between this machine's clock and the storage service's, learned for free.

Every response carries the service's ``Date`` header (whole seconds). A response
received at local time ``t`` with ``Date: D`` was produced at a service time in
``[D, D + 1)``, shortly before ``t``: ``D + 0.5 - t`` estimates ``service - local``
to within about half a second plus the response's transit. :class:`ServiceClock`
keeps the last samples from a response hook on every request the backend makes
(the client's own when the backend built it; per operation through
:class:`HookedClient` on a client the caller passed in) and answers with their
median; no request is ever made for it.

``get`` uses it to decide whether a head blob was put in place by its writer
(``Last-Modified`` within a few seconds of the record's time, shifted by the
offset) or later — which only decides whether one more request checks the head's
place, never whether the head is wrong (see ADR 0004).
"""

from __future__ import annotations

import functools
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["HookedClient", "ServiceClock"]

_SAMPLES = 16
#: Samples older than this (seconds) are not trusted: clocks drift and get stepped.
_MAX_AGE = 600.0


def _now() -> float:
    """This machine's clock (a function, so tests can skew it)."""
    return time.time()


class ServiceClock:
    """Recent estimates of ``service time - local time`` (seconds), thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)  # (local, offset)

    def observe(self, date: datetime | None) -> None:
        """Record one response's ``Date`` (as a datetime; ``None`` is ignored)."""
        if date is None:
            return
        local = _now()
        with self._lock:
            self._samples.append((local, date.timestamp() + 0.5 - local))

    def response_hook(self, response: Any) -> None:
        """An SDK ``raw_response_hook``: learn from the ``Date`` of every response."""
        try:
            header = response.http_response.headers.get("Date")
            date = parsedate_to_datetime(header) if header else None
        except (AttributeError, TypeError, ValueError, IndexError):
            return
        self.observe(date)

    def now(self) -> datetime:
        """The service's time as near as known: this machine's clock shifted by the
        offset (unshifted while none is known). For ages measured against the
        service's Last-Modified, which a local clock off by minutes would distort."""
        return datetime.fromtimestamp(_now() + (self.offset() or 0.0), UTC)

    def offset(self) -> float | None:
        """The median recent offset, ``None`` while nothing recent was seen."""
        now = _now()
        with self._lock:
            recent = [offset for local, offset in self._samples if now - local <= _MAX_AGE]
        return statistics.median(recent) if recent else None


def _client_hook(client: Any) -> Callable[[Any], None] | None:
    """The ``raw_response_hook`` a client was built with, if any (best effort: the
    SDK keeps it in its ``StorageResponseHook`` policy and offers no accessor)."""
    pipeline = getattr(client, "_pipeline", None)
    for policy in getattr(pipeline, "_impl_policies", None) or ():
        callback = getattr(policy, "_response_callback", None)
        if type(policy).__name__ == "StorageResponseHook" and callable(callback):
            return callback  # type: ignore[no-any-return]
    return None


class HookedClient:
    """A container or blob client that passes ``raw_response_hook`` with every
    operation (azure-core's per-operation keyword): for a client the caller built,
    so that the backend's own requests feed its :class:`ServiceClock` without the
    caller's client being changed. A hook the caller's client was built with still
    runs on these requests (the per-operation keyword replaces it, so ours calls it)."""

    __slots__ = ("_client", "_hook")

    def __init__(self, client: Any, clock: ServiceClock, user_hook: Any = None) -> None:
        self._client = client
        user = user_hook if user_hook is not None else _client_hook(client)
        if user is None:
            self._hook: Callable[[Any], None] = clock.response_hook
        else:

            def both(response: Any) -> None:
                clock.response_hook(response)
                user(response)

            self._hook = both

    def get_blob_client(self, *args: Any, **kwargs: Any) -> Any:
        blob = self._client.get_blob_client(*args, **kwargs)
        hooked = HookedClient.__new__(HookedClient)
        hooked._client, hooked._hook = blob, self._hook
        return hooked

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr
        hook = self._hook

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("raw_response_hook", hook)
            return attr(*args, **kwargs)

        return call
