"""Bearer tokens: `iop_<id>_<secret>`. Only a SHA-256 of the secret is stored; the id finds the
row, a constant-time comparison checks the secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from sqlmodel import Session

from domain.vocab import Role
from store.models import ApiToken, utcnow

ROLES = tuple(Role)
PREFIX = "iop"


@dataclass(frozen=True)
class Actor:
    token_id: str
    role: str
    name: str
    # A lab token's registered sender (MSH-3 / MSH-4 namespace ids); None for other roles.
    sender_application: str | None = None
    sender_facility: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sender_problem(role: str, application: str | None, facility: str | None) -> str | None:
    """Why this role/sender combination cannot be issued, or None. A lab token is bound to the
    sender it may send as; other roles send no lab messages and carry no sender."""
    application, facility = (application or "").strip(), (facility or "").strip()
    if role == "lab" and not (application and facility):
        return (
            "a lab token must be registered to the sender it sends as: give sender_application (MSH-3) and "
            "sender_facility (MSH-4, or the JSON lab_id), e.g. 'LAB' and 'ACME LAB'"
        )
    if role != "lab" and (application or facility):
        return f"only a lab token has a sender; leave sender_application and sender_facility out for a {role} token"
    if "^" in application + facility:
        return "give the sender's namespace id only (the first component of MSH-3 / MSH-4), without '^'"
    return None


def issue_token(
    session: Session,
    *,
    name: str,
    role: str,
    expires_at: datetime | None = None,
    sender_application: str | None = None,
    sender_facility: str | None = None,
) -> tuple[ApiToken, str]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if problem := sender_problem(role, sender_application, sender_facility):
        raise ValueError(problem)
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiToken(
        id=token_id,
        name=name,
        role=role,
        secret_sha256=_digest(secret),
        expires_at=expires_at,
        sender_application=(sender_application or "").strip() or None,
        sender_facility=(sender_facility or "").strip() or None,
    )
    session.add(row)
    return row, f"{PREFIX}_{token_id}_{secret}"


MAX_TOKEN_DAYS = 3650


_When = TypeVar("_When", datetime, date)


def expiry_after(days: int | None, now: _When) -> _When | None:
    """When a token created `now` expires: `days` later, or never when days is None (an explicit
    choice; the CLI and POST /tokens both leave it out for that). 0, negative or more than ten years
    is refused: 0 must not silently mean "never"."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise ValueError(
            f"days must be a whole number from 1 to {MAX_TOKEN_DAYS}; got {days!r} "
            "(leave it out for a token that does not expire)"
        )
    return now + timedelta(days=days)


class TokenRejected(Exception):
    def __init__(self, message: str, token_id: str | None = None, role: str | None = None) -> None:
        super().__init__(message)
        self.token_id, self.role = token_id, role  # set when the secret was right but the token is dead


def authenticate(session: Session, presented: str) -> Actor:
    prefix, _, rest = presented.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != PREFIX or not token_id or not secret:
        raise TokenRejected("the bearer token is malformed; it should look like iop_<id>_<secret>")
    row = session.get(ApiToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        raise TokenRejected("the bearer token is not valid")
    if row.revoked_at is not None:
        raise TokenRejected("the bearer token has been revoked", row.id, row.role)
    if row.expires_at is not None and _aware(row.expires_at) <= utcnow():
        raise TokenRejected("the bearer token has expired; ask an administrator for a new one", row.id, row.role)
    return Actor(
        token_id=row.id,
        role=row.role,
        name=row.name,
        sender_application=row.sender_application,
        sender_facility=row.sender_facility,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
