"""Dependencies shared by the routers: services, database sessions, the authenticated actor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.problems import ProblemError
from api.tokens import Actor, TokenRejected, authenticate
from ingest.lab import LabIngest
from iop.settings import Settings
from store.db import writing


@dataclass
class Services:
    settings: Settings
    engine: Engine
    temporal: Client
    lab: LabIngest


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_session(request: Request, services: ServicesDep) -> Iterator[Session]:
    """A session for the request. A request that may write takes SQLite's write lock when its
    transaction begins (a read that later writes would otherwise fail when another writer went
    first). Async routes call `done_reading` before awaiting Temporal, so that no connection,
    lock or snapshot is held while they wait."""
    engine = services.engine if request.method in ("GET", "HEAD") else writing(services.engine)
    with Session(engine, expire_on_commit=False) as session:
        yield session


def done_reading(session: Session) -> None:
    session.commit()  # ends the transaction; loaded objects stay usable (expire_on_commit=False)


def _shown(request: Request) -> list[str]:
    """A list read fills this with the participant ids on the page; the audit trail records them."""
    shown: list[str] = []
    request.state.audit_shown = shown
    return shown


# The participant ids a list read showed (api/audit.py records them with the request).
ShownDep = Annotated[list[str], Depends(_shown)]

# Closed as soon as the route function returns, before the answer is sent (and audited).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="A token from `iop token create`")


def authenticated(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        request.state.audit_detail = "no bearer token"
        raise ProblemError(401, "Send an 'Authorization: Bearer <token>' header.", headers=unauthorized)
    try:
        # A session of its own, closed at once: no connection is held for the rest of the request.
        with Session(services.engine) as session:
            actor = authenticate(session, credentials.credentials)
    except TokenRejected as exc:
        request.state.audit_detail = f"token rejected: {exc}"
        if exc.token_id:  # a revoked or expired token: the trail names which one was still in use
            request.state.rejected_token = (exc.token_id, exc.role)
        raise ProblemError(401, str(exc)[0].upper() + str(exc)[1:] + ".", headers=unauthorized) from exc
    request.state.actor = actor  # for the audit trail
    return actor


def require(*roles: str) -> Callable[..., Actor]:
    """Deny by default: only the roles named here may use the route."""

    def check(actor: Annotated[Actor, Depends(authenticated)]) -> Actor:
        if actor.role not in roles:
            raise ProblemError(403, f"The {actor.role} role may not do this; it needs one of: {', '.join(roles)}.")
        return actor

    check.allowed_roles = roles  # type: ignore[attr-defined]  # read by api/roles.py
    return check
