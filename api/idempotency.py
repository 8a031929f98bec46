"""Idempotency-Key on every state-changing POST (IETF draft-ietf-httpapi-idempotency-key-header).

One mechanism for all of them: `IdempotentRoute`, the route class of every router, adds the
`idempotency` dependency to each POST. It scopes a key to the caller's token, the route and the
ids in the path, and keeps a digest of the body:
- the same key with another body is refused (422) and nothing is done;
- the same key after a success replays the stored answer (header `Idempotent-Replayed: true`);
- a route that changes a workflow asks for `attempt.update_id(subject)`: a retry whose first attempt
  was cut off before its answer was stored sends the same update id, and Temporal joins it to the
  first attempt (one screening, one dose, one review), or returns the first attempt's outcome;
- any other route, while a first attempt with the key is still in flight, answers 409 with
  Retry-After; a first attempt that never answered (its process died) is taken over after a while.

Enrollment (its key is kept with the participant record), the lab intake routes (deduplicated by
sender and MSH-10) and the SMS gateway's posts (by the gateway's message id) keep their own mechanisms;
the codec routes change nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select
from starlette.middleware.base import BaseHTTPMiddleware

from api.deps import authenticated
from api.problems import ProblemError, transient_database_error
from api.tokens import Actor
from store.db import session_scope, writing
from store.models import IdempotentAnswer, utcnow

# Routes with their own once-only mechanism, and routes that change nothing.
# The SMS gateway's posts carry no Idempotency-Key: they are deduplicated by the gateway's own message id
# (api/routers/channel.py).
OWN_MECHANISM = {
    "/participants",
    "/lab/hl7",
    "/lab/results",
    "/codec/decode",
    "/codec/encode",
    "/channel/inbound",
    "/channel/receipts",
}
# How long a first attempt that has not answered yet is presumed to be still running.
IN_FLIGHT = timedelta(seconds=60)
REPLAYED = "Idempotent-Replayed"
log = logging.getLogger(__name__)


class Replay(Exception):
    """The answer of the first attempt with this key, given again."""

    def __init__(self, status_code: int, answer: Any) -> None:
        super().__init__("replayed")
        self.status_code = status_code
        self.answer = answer


@dataclass(frozen=True)
class Attempt:
    actor: str
    route: str
    subject: str
    key: str
    digest: str
    record_id: int | None
    retry: bool = False  # a first attempt with this key was made and never answered (cut off or crashed)

    def update_id(self, subject_id: str) -> str:
        """The workflow update id of this request: the same for every retry with the same key."""
        scoped = hashlib.sha256(f"{self.actor}\0{self.key}".encode()).hexdigest()[:32]
        return f"{self.route}-{subject_id}-{scoped}"


def body_digest(body: bytes) -> str:
    """A digest of the request body; JSON is normalised first (key order and spacing do not count)."""
    try:
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        pass
    return hashlib.sha256(body).hexdigest()


async def idempotency(
    request: Request,
    actor: Annotated[Actor, Depends(authenticated)],
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            description="A unique value per intended change (e.g. a UUID). Retrying with the same key is safe: "
            "the change is made once and the first answer is given again.",
        ),
    ] = None,
) -> Attempt | None:
    if idempotency_key is None:
        return None
    route = request.scope.get("route")
    name = getattr(route, "name", None) or request.url.path
    subject = "&".join(f"{k}={v}" for k, v in sorted(request.path_params.items()))
    digest = body_digest(await request.body())
    joins = getattr(route, "joins_update", False)
    engine = request.app.state.services.engine
    record_id, retry = await run_in_threadpool(
        _claim, engine, actor.token_id, name, subject, idempotency_key, digest, joins
    )
    attempt = Attempt(actor.token_id, name, subject, idempotency_key, digest, record_id, retry)
    request.state.idempotency = attempt
    return attempt


Idempotency = Annotated[Attempt | None, Depends(idempotency)]


def _claim(engine, actor: str, route: str, subject: str, key: str, digest: str, joins: bool) -> tuple[int, bool]:
    for _ in range(2):
        with Session(writing(engine)) as session:
            row = session.exec(
                select(IdempotentAnswer).where(
                    IdempotentAnswer.actor == actor,
                    IdempotentAnswer.route == route,
                    IdempotentAnswer.subject == subject,
                    IdempotentAnswer.key == key,
                )
            ).first()
            if row is None:
                row = IdempotentAnswer(actor=actor, route=route, subject=subject, key=key, request_sha256=digest)
                session.add(row)
                try:
                    session.commit()
                except IntegrityError:
                    continue  # another attempt with this key claimed it just now: look again
                assert row.id is not None  # committed
                return row.id, False
            if row.request_sha256 != digest:
                raise ProblemError(
                    422,
                    "This Idempotency-Key was already used with a different request body; "
                    "nothing was done. Use a new key for a new request.",
                )
            if row.status_code is not None:
                raise Replay(row.status_code, row.answer)
            if not joins and utcnow() - _aware(row.created_at) < IN_FLIGHT:
                raise ProblemError(
                    409,
                    "A request with this Idempotency-Key is still being processed; retry with "
                    "the same key in a few seconds to get its answer.",
                    headers={"Retry-After": "5"},
                )
            row.created_at = utcnow()  # taken over: the first attempt never answered
            session.add(row)
            session.commit()
            assert row.id is not None  # a stored row
            return row.id, True
    raise ProblemError(
        409,
        "A request with this Idempotency-Key is being processed; retry with the same key.",
        headers={"Retry-After": "5"},
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _answered(engine, record_id: int, status_code: int, answer: Any) -> None:
    with session_scope(writing(engine)) as session:
        row = session.get(IdempotentAnswer, record_id)
        if row is not None and row.status_code is None:
            row.status_code, row.answer, row.answered_at = status_code, answer, utcnow()
            session.add(row)


def _release(engine, record_id: int) -> None:
    """A first attempt that failed leaves the key free: the retry is a first attempt again."""
    with session_scope(writing(engine)) as session:
        row = session.get(IdempotentAnswer, record_id)
        if row is not None and row.status_code is None:
            session.delete(row)


class IdempotentRoute(APIRoute):
    """The route class of every router: each POST takes an Idempotency-Key (see the module)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        self.idempotent = "POST" in methods and path not in OWN_MECHANISM
        if self.idempotent:
            kwargs["dependencies"] = [*(kwargs.get("dependencies") or []), Depends(idempotency)]
        # A route that passes the key to Temporal as an update id joins a first attempt still in flight.
        self.joins_update = getattr(endpoint, "joins_update", False)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not self.idempotent:
            return handler

        async def answer_once(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return JSONResponse(replay.answer, status_code=replay.status_code, headers={REPLAYED: "true"})
            except ProblemError:
                request.state.idempotency_release = True  # refused: nothing was done
                raise
            except BaseException:
                # Cut off, timed out, Temporal unavailable: a workflow update may still happen. Its claim
                # stays, so the retry knows it is one and joins the update by its id.
                request.state.idempotency_release = not self.joins_update
                raise
            # Stored by SettleIdempotentAnswers, not here: this handler runs while the route's own session
            # (a function-scoped dependency) is still open, and on SQLite that session may hold the write
            # lock (BEGIN IMMEDIATE) until it is closed. Writing the answer on another connection now would
            # wait for a lock this very request holds: "database is locked" after the busy timeout.
            if 200 <= response.status_code < 300 and _is_json(response):
                request.state.idempotency_answer = (response.status_code, json.loads(bytes(response.body)))
            else:
                request.state.idempotency_release = True
            return response

        return answer_once


class SettleIdempotentAnswers(BaseHTTPMiddleware):
    """Stores the answer of a request sent with an Idempotency-Key, or frees the key of one that failed,
    once the request's own database session is closed and before the answer leaves: a retry finds it."""

    async def dispatch(self, request: Request, call_next) -> Response:
        try:
            return await call_next(request)  # returns once the route and its dependencies have finished
        finally:
            await _settle(request)


async def _settle(request: Request) -> None:
    attempt: Attempt | None = getattr(request.state, "idempotency", None)
    if attempt is None or attempt.record_id is None:
        return
    engine = request.app.state.services.engine
    answer = getattr(request.state, "idempotency_answer", None)
    try:
        if answer is not None:
            await run_in_threadpool(_answered, engine, attempt.record_id, *answer)
        elif getattr(request.state, "idempotency_release", False):
            # Refused, or failed without an answer (Temporal unavailable): the key is free for the retry.
            # A workflow change that may still be in progress is joined by the retry through its update id.
            await run_in_threadpool(_release, engine, attempt.record_id)
    except OperationalError as exc:
        if not transient_database_error(exc):
            raise
        # The database stayed locked: the claim stays unanswered, so a retry with the key within IN_FLIGHT is
        # told to wait (409), and after it takes the claim over. The request's own answer is not spoiled.
        log.warning("idempotency key of %s not settled: records database busy", attempt.route)


def _is_json(response: Response) -> bool:
    return (response.media_type or "").endswith("json") and isinstance(getattr(response, "body", None), bytes)


def joins_update(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route whose change is a workflow update sent with `attempt.update_id(...)`."""
    endpoint.joins_update = True  # type: ignore[attr-defined]  # a function attribute
    return endpoint
