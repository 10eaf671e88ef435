"""A FastAPI service that injects a ``DQContext`` per request.

Needs FastAPI and an ASGI server, which dq-platform core does not depend on::

    pip install fastapi uvicorn
    DQ_DEFAULT_BACKEND=filesystem DQ_FILESYSTEM__ROOT=/var/lib/dq \\
        uvicorn examples.fastapi_service:app

One ``DQContainer`` (the composition root) lives for the whole process: it opens
the configured backends once and shuts them down when the app stops. Each request
gets a cheap ``DQContext`` for its tenant and environment (from the path here;
from the auth token in a real service) built over those shared stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

try:
    from fastapi import Depends, FastAPI, HTTPException, Request
except ImportError as exc:  # pragma: no cover - only without the optional dependency
    raise ImportError(
        "examples/fastapi_service.py needs FastAPI: pip install fastapi uvicorn"
    ) from exc

from dq_metadata.errors import (
    ConflictError,
    DQError,
    InvalidScopeError,
    NotFoundError,
    ValidationError,
)
from dq_metadata.scope import Scope
from dq_registries import DQContainer, DQContext
from dq_registries.wiring.container import build_container


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    container = build_container()  # DQ_* env vars (or pass a YAML path / dict)
    container.init_resources()
    app.state.container = container
    try:
        yield
    finally:
        container.shutdown_resources()


app = FastAPI(title="dq registry service", lifespan=lifespan)


def get_dq(request: Request, tenant: str, environment: str) -> Iterator[DQContext]:
    """The request's DQContext; the backends it uses belong to the container."""
    container: DQContainer = request.app.state.container
    try:
        scope = Scope(tenant, environment)
    except InvalidScopeError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    with DQContext.from_container(container, scope) as dq:
        yield dq


DQ = Annotated[DQContext, Depends(get_dq)]
_STATUS = {NotFoundError: 404, ConflictError: 409, ValidationError: 422}


def _http(exc: DQError) -> HTTPException:
    for kind, status in _STATUS.items():
        if isinstance(exc, kind):
            return HTTPException(status_code=status, detail=str(exc))
    return HTTPException(status_code=503, detail=type(exc).__name__)


@app.get("/{tenant}/{environment}/datasets/{dataset}/contract")
def latest_contract(dq: DQ, dataset: str) -> dict[str, Any]:
    """The newest active contract governing ``dataset`` — the platform's hottest call."""
    try:
        return dq.contracts.get_latest_for_dataset(dataset).contract.to_odcs()
    except DQError as exc:
        raise _http(exc) from exc


@app.post("/{tenant}/{environment}/contracts", status_code=201)
def publish(dq: DQ, document: dict[str, Any], actor: str = "api") -> dict[str, Any]:
    try:
        result = dq.contracts.publish(document, actor=actor)
    except DQError as exc:
        raise _http(exc) from exc
    return {"id": result.version.id, "version": result.version.version, "created": result.created}


@app.get("/{tenant}/{environment}/runs")
def runs(dq: DQ, job_id: str | None = None, limit: int = 50) -> dict[str, Any]:
    try:
        page = dq.runs.list(job_id=job_id, limit=limit)
    except DQError as exc:
        raise _http(exc) from exc
    return {
        "items": [v.item.model_dump(mode="json") for v in page.items],
        "next_token": page.next_token,
    }
