"""Calls into running workflows, with Temporal's failures turned into problem answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from temporalio.client import RPCError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from api.lookups import closed_screening_problem
from api.problems import ProblemError
from iop.temporal import not_available_now
from workflows.contracts.errors import CONFLICT, INVALID

_STATUS_BY_ERROR_TYPE = {CONFLICT: 409, INVALID: 422}
TEMPORAL_DOWN = "The workflow service (Temporal) cannot be reached right now; nothing was changed. Try again shortly."


def is_unavailable(exc: BaseException) -> bool:
    return not_available_now(exc)


@asynccontextmanager
async def workflow_call(what: str) -> AsyncIterator[None]:
    """Map what Temporal says about an update or query into 404/409/422 with the reason. Timeouts and
    unavailability pass through to the app's one handler (api/problems.py): 503 with Retry-After."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError):
            status = _STATUS_BY_ERROR_TYPE.get(cause.type or "", 409)
            raise ProblemError(status, _sentence(cause.message)) from exc
        raise ProblemError(409, f"The {what} was refused: {cause}.") from exc
    except WorkflowQueryFailedError as exc:
        raise ProblemError(409, f"The {what} could not be read: {exc}.") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "already completed" in str(exc):
            raise ProblemError(409, f"This {what}'s process has already ended; nothing was changed.") from exc
        if exc.status == RPCStatusCode.NOT_FOUND and not not_available_now(exc):
            raise ProblemError(404, f"There is no running process for this {what}.") from exc
        raise


@asynccontextmanager
async def screening_call(engine: Engine, screening_id: str) -> AsyncIterator[None]:
    """workflow_call for one screening's workflow. A screening whose workflow has closed still exists: Temporal's
    "not found" for it answers 409 with how it ended and what can still be done, not 404 (api/lookups.py)."""
    async with workflow_call("screening"):
        try:
            yield
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND or not_available_now(exc):
                raise
            raise await run_in_threadpool(closed_screening_problem, engine, screening_id) from exc


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."
