"""Selection periods: a sealed seed per program and month, committed when opened, revealed after it ends.

The seed is sealed with the payload keys (iop.codec.seal_text); only the worker's roll activity and the
reveal open it. Opening, fixing a beacon and revealing are appended to the audit trail.
"""

from __future__ import annotations

import calendar
import secrets
from collections.abc import Sequence
from datetime import date, datetime, timezone

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.verifiable import SEED_BYTES, commitment
from iop.codec import CodecKey, open_text, seal_text
from store import audit
from store.db import session_scope
from store.models import SelectionPeriod, utcnow


class SelectionError(ValueError):
    """A request about a period that its state refuses (the text says why and what to do)."""


def check_period(period: str) -> str:
    try:
        parsed = datetime.strptime(period, "%Y-%m")
    except ValueError:
        raise SelectionError(f"period {period!r} must be a month written YYYY-MM, e.g. 2026-11") from None
    return f"{parsed:%Y-%m}"


def period_end(period: str) -> date:
    year, month = map(int, check_period(period).split("-"))
    return date(year, month, calendar.monthrange(year, month)[1])


def find(session: Session, program: str, period: str) -> SelectionPeriod | None:
    return session.exec(select(SelectionPeriod).where(SelectionPeriod.program == program,
                                                      SelectionPeriod.period == period)).first()


def open_period(engine: Engine, keys: Sequence[CodecKey], program: str, period: str,
                actor: str = "system", role: str = "system") -> SelectionPeriod:
    """The period's row, creating it (a fresh seed and its published commitment) if it has none yet."""
    period = check_period(period)
    with Session(engine) as session:
        found = find(session, program, period)
        if found is not None:
            return found
    seed = secrets.token_bytes(SEED_BYTES)
    row = SelectionPeriod(program=program, period=period, seed_sealed=seal_text(keys, seed.hex()),
                          commitment=commitment(seed, program, period))
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.flush()
            session.expunge(row)
    except IntegrityError:  # another worker opened it first: theirs is the committed one
        with Session(engine) as session:
            return find(session, program, period)
    audit.append(engine, audit.AuditEntry(actor, role, "selection.commit", "ok", "selection-period",
                                          f"{program}:{period}", detail=f"commitment {row.commitment}"))
    return row


def seed_for_roll(engine: Engine, keys: Sequence[CodecKey], program: str, period: str) -> tuple[bytes, str | None]:
    """The seed and beacon of a period (opening it if needed); the first roll fixes the beacon."""
    row = open_period(engine, keys, program, period)
    if row.first_roll_at is None:
        with session_scope(engine) as session:
            stored = find(session, program, period)
            if stored.first_roll_at is None:
                stored.first_roll_at = utcnow()
                session.add(stored)
            row = stored
            beacon, sealed = stored.beacon, stored.seed_sealed
    else:
        beacon, sealed = row.beacon, row.seed_sealed
    return bytes.fromhex(open_text(keys, sealed)), beacon


def set_beacon(engine: Engine, program: str, period: str, beacon: str, actor: str, role: str = "admin") -> None:
    """Fix the period's public beacon value; refused once a roll of the period has been taken."""
    period = check_period(period)
    with session_scope(engine) as session:
        row = find(session, program, period)
        if row is None:
            raise SelectionError(f"{program} {period} has no committed seed yet: open the period first "
                                 f"(iop selection open --program {program} --period {period})")
        if row.first_roll_at is not None:
            raise SelectionError(f"{program} {period} has already been drawn from since {row.first_roll_at:%Y-%m-%d}; "
                                 "its beacon can no longer change")
        row.beacon = beacon
        session.add(row)
    audit.append(engine, audit.AuditEntry(actor, role, "selection.beacon", "ok", "selection-period",
                                          f"{program}:{period}", detail=f"beacon {beacon}"))


def reveal(engine: Engine, keys: Sequence[CodecKey], program: str, period: str, actor: str = "system",
           role: str = "system", today: date | None = None) -> SelectionPeriod:
    """Publish a period's seed; refused until the period has ended everywhere (a day's margin for time zones)."""
    period = check_period(period)
    today = today or datetime.now(timezone.utc).date()
    if (today - period_end(period)).days < 2:
        raise SelectionError(f"{period} ends on {period_end(period)}; its seed can be revealed from "
                             f"{date.fromordinal(period_end(period).toordinal() + 2)}")
    with session_scope(engine) as session:
        row = find(session, program, period)
        if row is None:
            raise SelectionError(f"{program} {period} has no committed seed: no draw used one")
        if row.seed_revealed is None:
            row.seed_revealed = open_text(keys, row.seed_sealed)
            row.revealed_at = utcnow()
            session.add(row)
            fresh = True
        else:
            fresh = False
        session.flush()
        session.expunge(row)
    if fresh:
        audit.append(engine, audit.AuditEntry(actor, role, "selection.reveal", "ok", "selection-period",
                                              f"{program}:{period}", detail=f"seed {row.seed_revealed}"))
    return row


def periods(session: Session, program: str | None = None) -> list[SelectionPeriod]:
    query = select(SelectionPeriod)
    if program:
        query = query.where(SelectionPeriod.program == program)
    return list(session.exec(query.order_by(col(SelectionPeriod.period), col(SelectionPeriod.program))).all())


def export(session: Session, program: str, period: str) -> dict:
    """Every draw of a program's period with its inputs, for domain.verifiable.verify_export and
    docs/verify_selection.py; staff-ordered (for-cause) tests listed apart, never part of the draw."""
    from store.models import Participant, Screening, SelectionDraw

    period = check_period(period)
    row = find(session, program, period)
    if row is None:
        raise SelectionError(f"{program} {period} has no committed seed: no verifiable draw used one")
    first, last = date.fromisoformat(f"{period}-01"), period_end(period)
    members = select(Participant.id).where(Participant.program == program)
    draws = session.exec(select(SelectionDraw).where(col(SelectionDraw.participant_id).in_(members),
                                                     SelectionDraw.day >= first, SelectionDraw.day <= last)
                         .order_by(col(SelectionDraw.participant_id), col(SelectionDraw.day))).all()
    for_cause = session.exec(select(Screening).where(col(Screening.participant_id).in_(members),
                                                     Screening.reason == "for-cause", Screening.day >= first,
                                                     Screening.day <= last)
                             .order_by(col(Screening.day), col(Screening.id))).all()
    return {
        "format": "iop-selection-export/1", "program": program, "period": period, "commitment": row.commitment,
        "beacon": row.beacon, "seed": row.seed_revealed, "published_at": row.published_at.isoformat(),
        "draws": [{"participant_id": d.participant_id, "day": d.day.isoformat(), "roll": d.roll,
                   "time_roll": d.time_roll, "draw_minute": d.draw_minute, "selected": d.selected, "reason": d.reason,
                   "probability": d.probability, "screening_id": d.screening_id, "inputs": d.inputs}
                  for d in draws if d.verifiable],
        "not_verifiable": [{"participant_id": d.participant_id, "day": d.day.isoformat(), "reason": d.reason,
                            "selected": d.selected} for d in draws if not d.verifiable],
        "for_cause": [{"screening_id": s.id, "participant_id": s.participant_id, "day": s.day.isoformat(),
                       "selected_at": s.selected_at.isoformat()} for s in for_cause],
    }
