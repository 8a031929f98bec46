"""The audit trail: append-only, hash-chained, appends serialised on SQLite and PostgreSQL.

Each event's hash covers its fields and the previous event's hash, so editing or deleting any row
breaks the chain from that row on; `verify` names the first broken link.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.db import session_scope
from store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# Any fixed number: the PostgreSQL advisory lock that serialises appends across processes.
_APPEND_LOCK = 42_4242


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    role: str
    action: str
    outcome: str
    subject_type: str | None = None
    subject_id: str | None = None
    participant_id: str | None = None
    request_id: str | None = None
    source: str | None = None
    detail: str | None = None


_FIELDS = ("seq", "at", "actor", "role", "action", "subject_type", "subject_id", "participant_id", "outcome",
           "request_id", "source", "detail", "prev_hash")


def _digest(row: AuditEvent) -> str:
    values = {name: getattr(row, name) for name in _FIELDS}
    at = values["at"]
    values["at"] = (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc).isoformat(
        timespec="microseconds")
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def append(engine: Engine, entry: AuditEntry) -> AuditEvent:
    """Add one event at the end of the chain (one writer at a time)."""
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_APPEND_LOCK))
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
        row = AuditEvent(
            seq=(last.seq + 1) if last else 1,
            at=datetime.now(timezone.utc),
            prev_hash=last.hash if last else GENESIS,
            hash="",
            **{k: (_storable(v)[:_limit(k)] if isinstance(v, str) else v) for k, v in entry.__dict__.items()},
        )
        row.hash = _digest(row)
        session.add(row)
        head = session.get(AuditHead, 1) or AuditHead(id=1, seq=0, hash=GENESIS)
        head.seq, head.hash = row.seq, row.hash
        session.add(head)
        return row


def _storable(text: str) -> str:
    # A request path can carry a NUL, which PostgreSQL will not store: the trail shows it escaped.
    return text.replace("\x00", "\\x00")


def _limit(name: str) -> int:
    column = AuditEvent.__table__.columns[name]
    return getattr(column.type, "length", None) or 10_000


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None


def verify(engine: Engine, batch: int = 5000) -> Verification:
    """Walk the chain from the start; the first row whose hash, link or number is wrong."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    with Session(engine) as session:
        while True:
            rows = session.exec(select(AuditEvent).where(AuditEvent.seq >= expected_seq)
                                .order_by(col(AuditEvent.seq)).limit(batch)).all()
            if not rows:
                head = session.get(AuditHead, 1)
                if head is not None and (head.seq, head.hash) != (expected_seq - 1, expected_prev):
                    return Verification(False, checked, expected_seq,
                                        f"the chain ends at event {expected_seq - 1} but was last extended to "
                                        f"event {head.seq}: events were removed from its end")
                return Verification(True, checked)
            for row in rows:
                if row.seq != expected_seq:
                    return Verification(False, checked, expected_seq,
                                        f"event {expected_seq} is missing (the next present is {row.seq})")
                if row.prev_hash != expected_prev:
                    return Verification(False, checked, row.seq,
                                        f"event {row.seq} does not link to event {row.seq - 1}")
                if _digest(row) != row.hash:
                    return Verification(False, checked, row.seq, f"event {row.seq} was altered after it was written")
                expected_prev, expected_seq, checked = row.hash, row.seq + 1, checked + 1
