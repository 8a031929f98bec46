"""Calls into running workflows, with Temporal's failures turned into problem answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import RPCError, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCStatusCode

from api.problems import ProblemError
from workflows.contracts import CONFLICT, INVALID

_STATUS_BY_ERROR_TYPE = {CONFLICT: 409, INVALID: 422}
TEMPORAL_DOWN = "The workflow service (Temporal) cannot be reached right now; nothing was changed. Try again shortly."


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, RPCError):
        return exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN)
    # A lazy client that never connected raises the core's connection error.
    return isinstance(exc, RuntimeError) and "connect" in str(exc).lower()


@asynccontextmanager
async def workflow_call(what: str) -> AsyncIterator[None]:
    """Map what Temporal says about an update or query into 404/409/422/503 with the reason."""
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
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ProblemError(404, f"There is no running process for this {what}.") from exc
        if is_unavailable(exc):
            raise ProblemError(503, TEMPORAL_DOWN) from exc
        raise
    except RuntimeError as exc:
        if is_unavailable(exc):
            raise ProblemError(503, TEMPORAL_DOWN) from exc
        raise


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."
