"""RFC 9457 problem details for every error the API gives."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.exceptions import TemporalError

from iop.temporal import not_available_now

MEDIA_TYPE = "application/problem+json"
COMPONENTS = "#/components/schemas/"
RETRY_AFTER_SECONDS = 5
NOT_NOW = (
    "The workflow service (Temporal) did not answer in time or cannot be reached right now. The request may "
    "already be in progress: retrying it with the same Idempotency-Key is safe (it is done once). "
    f"Retry in {RETRY_AFTER_SECONDS} seconds."
)
DATABASE_BUSY = (
    "The records database is busy right now (another change holds its lock). Retrying the request "
    "with the same Idempotency-Key is safe (it is done once). "
    f"Retry in {RETRY_AFTER_SECONDS} seconds."
)
# SQLite's answers when its lock stays taken past the busy timeout; PostgreSQL's SQLSTATEs for a
# serialization failure, a deadlock the server broke, and a lock not available (NOWAIT / lock_timeout).
SQLITE_BUSY = ("database is locked", "database table is locked", "database is busy")
PG_TRANSIENT = {"40001", "40P01", "55P03"}
log = logging.getLogger(__name__)


def transient_database_error(exc: BaseException) -> bool:
    """A database error that a retry in a moment can get past: a lock, a broken deadlock, a lost connection.
    Anything else (a missing table, a bad statement) is a defect and stays a 500."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if getattr(orig, "pgcode", None) in PG_TRANSIENT or getattr(orig, "sqlstate", None) in PG_TRANSIENT:
        return True
    return isinstance(exc, OperationalError) and str(orig).strip().lower() in SQLITE_BUSY


class FieldError(BaseModel):
    """One input that is not valid."""

    field: str = Field(description="Where the problem is, e.g. 'body.date_of_birth'")
    message: str = Field(description="What is wrong with it")


class Problem(BaseModel):
    """An RFC 9457 problem document: every error answer of this API."""

    type: str = Field(
        default="about:blank", description="A URI naming the kind of problem; 'about:blank' when the status says it all"
    )
    title: str = Field(description="The HTTP status phrase, e.g. 'Conflict'")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong and what to do about it")
    instance: str | None = Field(default=None, description="The path of the request that failed")
    errors: list[FieldError] | None = Field(default=None, description="Each invalid input, for a 422")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self, status: int, detail: str, *, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def install(app: FastAPI) -> None:
    document(app)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        headers = exc.headers
        if exc.status == 503 and "Retry-After" not in (headers or {}):
            headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_SECONDS)}
        return problem_response(request, exc.status, exc.detail, errors=exc.errors, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(field=_field_name(e.get("loc", ())), message=e.get("msg", "invalid")) for e in exc.errors()
        ]
        named = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(request, 422, f"The request is not valid. {named}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no resource at {request.url.path}."
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
        return problem_response(request, exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # PostgreSQL refuses some text SQLite would take (a NUL character): the input's fault.
        if "NUL" in str(exc.orig):
            return problem_response(request, 422, "Text may not contain NUL characters (\\u0000); remove them.")
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "An unexpected error occurred; it has been logged. Try again later.")

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if transient_database_error(exc):
            # Not a fault of the request, nor a defect: the same request succeeds in a moment.
            log.warning("records database busy on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
            return problem_response(request, 503, DATABASE_BUSY, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return await _unexpected(request, exc)

    async def _temporal(request: Request, exc: Exception) -> JSONResponse:
        # Every call to Temporal (start, update, query, signal, describe, history) ends here when it
        # times out or Temporal cannot take it now: 503 with Retry-After, never 500.
        if not_available_now(exc):
            log.warning("Temporal not available on %s %s: %s", request.method, request.url.path, type(exc).__name__)
            return problem_response(request, 503, NOT_NOW, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return await _unexpected(request, exc)

    # Handled here, not by the catch-all below (whose answer Starlette sends and then raises again).
    for kind in (TemporalError, TimeoutError, RuntimeError):
        app.add_exception_handler(kind, _temporal)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and transient_database_error(exc):  # outside the routes (a middleware's write)
            return await _database(request, exc)
        # SQL parameters are hidden by the engine (hide_parameters), so the trace carries no PHI.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "An unexpected error occurred; it has been logged. Try again later.")


def responses(*statuses: int, model: type[Problem] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem answers a route can give: application/problem+json only (FastAPI's
    `model` key would declare application/json as well), with the Problem schema, or a subclass of it that
    adds extension members (RFC 9457 section 3.2)."""
    schema = {"$ref": f"{COMPONENTS}{(model or Problem).__name__}"}
    return {
        status: {"content": {MEDIA_TYPE: {"schema": schema}}, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


def document(app: FastAPI) -> None:
    """Put Problem, FieldError and every Problem subclass into the app's OpenAPI components, where the
    declarations of responses() point."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's document, built once and cached on the app
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        models: list[type[Problem]] = [Problem, *Problem.__subclasses__()]
        for model in models:
            own = model.model_json_schema(ref_template=COMPONENTS + "{model}", mode="serialization")
            for name, definition in own.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault(model.__name__, own)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


__all__ = ["HTTPException", "Problem", "ProblemError", "install", "responses", "MEDIA_TYPE"]
