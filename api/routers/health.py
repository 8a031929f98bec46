"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.deps import ServicesDep
from api.idempotency import IdempotentRoute
from api.problems import MEDIA_TYPE, RETRY_AFTER_SECONDS, Problem, responses

router = APIRouter(route_class=IdempotentRoute, tags=["health"])


class Health(BaseModel):
    """The API process answers."""

    status: str = Field(description="Always 'ok' when the process answers")


class Readiness(BaseModel):
    """Whether the API can serve requests: its database and Temporal both answer."""

    status: str = Field(description="'ready' (when not ready the answer is a 503 problem document)")
    database: str = Field(description="'ok', or 'unavailable: <error type>'")
    temporal: str = Field(description="'ok', 'unhealthy', or 'unavailable: <error type>'")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the API process answers. Depends on nothing else; for a container's liveness probe."""
    return Health(status="ok")


class NotReady(Problem):
    """A 503 problem document that says which dependency is not ready (RFC 9457 extension members)."""

    database: str = Field(description="'ok', or 'unavailable: <error type>'")
    temporal: str = Field(description="'ok', 'unhealthy', or 'unavailable: <error type>'")


@router.get("/readyz", response_model=Readiness, responses=responses(503, model=NotReady))
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the database and Temporal both answer. 200 when ready; otherwise a 503 problem document naming
    what is not ready, with Retry-After. For load balancers and readiness probes."""
    database = await run_in_threadpool(_database_ok, services)
    temporal = await _temporal_ok(services)
    if database == "ok" and temporal == "ok":
        return JSONResponse(Readiness(status="ready", database=database, temporal=temporal).model_dump())
    down = ", ".join(name for name, state in (("the database", database), ("Temporal", temporal)) if state != "ok")
    body = NotReady(
        title="Service Unavailable",
        status=503,
        instance="/readyz",
        database=database,
        temporal=temporal,
        detail=f"Not ready: {down} cannot be reached. Retry in {RETRY_AFTER_SECONDS} seconds.",
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=503,
        media_type=MEDIA_TYPE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _database_ok(services: ServicesDep) -> str:
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # the reason is for the operator; no PHI can be in it
        return f"unavailable: {type(exc).__name__}"


async def _temporal_ok(services: ServicesDep) -> str:
    try:
        ok = await asyncio.wait_for(services.temporal.service_client.check_health(), timeout=3)
        return "ok" if ok else "unhealthy"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
