"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.idempotency import IdempotentRoute
from api.deps import ServicesDep

router = APIRouter(route_class=IdempotentRoute, tags=["health"])


class Health(BaseModel):
    """The API process answers."""

    status: str = Field(description="Always 'ok' when the process answers")


class Readiness(BaseModel):
    """Whether the API can serve requests: its database and Temporal both answer."""

    status: str = Field(description="'ready', or 'not ready' (then the answer is 503)")
    database: str = Field(description="'ok', or 'unavailable: <error type>'")
    temporal: str = Field(description="'ok', 'unhealthy', or 'unavailable: <error type>'")


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    database = await run_in_threadpool(_database_ok, services)
    temporal = await _temporal_ok(services)
    ready = database == "ok" and temporal == "ok"
    body = Readiness(status="ready" if ready else "not ready", database=database, temporal=temporal)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


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
