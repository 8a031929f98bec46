"""Selection periods: a sealed seed per program and month, committed when opened, revealed after it ends.

The seed is sealed with the payload keys (iop.codec.seal_text); only the worker's roll activity and the
reveal open it. Opening, fixing a beacon and revealing are appended to the audit trail.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain import verifiable
from domain.verifiable import SEED_BYTES, commitment
from iop.codec import CodecKey, open_text, seal_text
from store import audit
from store.db import session_scope
from store.models import Recipient, SelectionNotice, SelectionPeriod, utcnow


class SelectionError(ValueError):
    """A request about a period that its state refuses (the text says why and what to do)."""


class SelectionConflict(SelectionError):
    """Refused because of what already happened to the period (no commitment yet, already drawn from...)."""


def check_period(period: str) -> str:
    try:
        parsed = datetime.strptime(period, "%Y-%m")
    except ValueError:
        raise SelectionError(f"period {period!r} must be a month written YYYY-MM, e.g. 2026-11") from None
    return f"{parsed:%Y-%m}"


def period_end(period: str) -> date:
    return verifiable.period_end(check_period(period))


def find(session: Session, program: str, period: str) -> SelectionPeriod | None:
    return session.exec(
        select(SelectionPeriod).where(SelectionPeriod.program == program, SelectionPeriod.period == period)
    ).first()


def open_period(
    engine: Engine, keys: Sequence[CodecKey], program: str, period: str, actor: str = "system", role: str = "system"
) -> SelectionPeriod:
    """The period's row, creating it (a fresh seed and its published commitment) if it has none yet."""
    period = check_period(period)
    with Session(engine) as session:
        found = find(session, program, period)
        if found is not None:
            return found
    seed = secrets.token_bytes(SEED_BYTES)
    row = SelectionPeriod(
        program=program,
        period=period,
        seed_sealed=seal_text(keys, seed.hex()),
        commitment=commitment(seed, program, period),
    )
    try:
        with session_scope(engine) as session:
            session.add(row)
            session.flush()
            session.expunge(row)
    except IntegrityError:  # another worker opened it first: theirs is the committed one
        with Session(engine) as session:
            theirs = find(session, program, period)
            assert theirs is not None  # committed by the worker whose insert won
            return theirs
    audit.append(
        engine,
        audit.AuditEntry(
            actor,
            role,
            "selection.commit",
            "ok",
            "selection-period",
            f"{program}:{period}",
            detail=f"commitment {row.commitment}",
        ),
    )
    return row


def seed_for_roll(engine: Engine, keys: Sequence[CodecKey], program: str, period: str) -> tuple[bytes, str | None]:
    """The seed and beacon of a period (opening it if needed); the first roll fixes the beacon."""
    row = open_period(engine, keys, program, period)
    if row.first_roll_at is None:
        with session_scope(engine) as session:
            # One statement, so a beacon being entered at this very moment is either in or refused (set_beacon).
            session.execute(
                update(SelectionPeriod)
                .where(col(SelectionPeriod.id) == row.id, col(SelectionPeriod.first_roll_at).is_(None))
                .values(first_roll_at=utcnow())
            )
            beacon, sealed = session.execute(
                select(SelectionPeriod.beacon, SelectionPeriod.seed_sealed).where(SelectionPeriod.id == row.id)
            ).one()
    else:
        beacon, sealed = row.beacon, row.seed_sealed
    return bytes.fromhex(open_text(keys, sealed)), beacon


def set_beacon(
    engine: Engine, program: str, period: str, beacon: str, actor: str, role: str = "admin"
) -> SelectionPeriod:
    """Fix the period's public beacon (domain.verifiable: the drand quicknet round first produced five minutes
    after the commitment was published). Refused once a roll of the period has been taken, or once a beacon
    is fixed (entering the same one again changes nothing)."""
    period = check_period(period)
    try:
        text = verifiable.parse_beacon(beacon).text
    except ValueError as exc:
        raise SelectionError(str(exc)) from None
    with Session(engine) as session:
        row = find(session, program, period)
    if row is None:
        raise SelectionConflict(
            f"{program} {period} has no committed seed yet: open the period first (POST "
            f"/selection/periods or iop selection open --program {program} --period {period}), "
            "then enter the round its commitment names"
        )
    if row.beacon == text:
        return row
    if row.beacon is not None:
        raise SelectionConflict(
            f"{program} {period} has its beacon since {row.beacon_entered_at:%Y-%m-%d %H:%M} UTC "
            f"({row.beacon}); it cannot change, or the clinic could choose among beacons"
        )
    if row.first_roll_at is not None:
        raise SelectionConflict(_drawn_from(row))
    problem = verifiable.beacon_problem(text, row.published_at)
    if problem:
        raise SelectionError(problem)
    with session_scope(engine) as session:
        result = cast(
            "CursorResult[Any]",
            session.execute(
                update(SelectionPeriod)
                .where(
                    col(SelectionPeriod.id) == row.id,
                    col(SelectionPeriod.first_roll_at).is_(None),
                    col(SelectionPeriod.beacon).is_(None),
                )
                .values(beacon=text, beacon_entered_at=utcnow())
            ),
        )
        changed = result.rowcount  # an UPDATE's result is a cursor result
    if not changed:  # a roll (or another admin) got there between the read and the write
        with Session(engine) as session:
            theirs = find(session, program, period)
        assert theirs is not None  # found above; periods are never deleted
        row = theirs
        if row.beacon == text:
            return row
        raise SelectionConflict(
            _drawn_from(row)
            if row.first_roll_at
            else f"{program} {period} has its beacon ({row.beacon}); it cannot change"
        )
    audit.append(
        engine,
        audit.AuditEntry(
            actor, role, "selection.beacon", "ok", "selection-period", f"{program}:{period}", detail=f"beacon {text}"
        ),
    )
    with Session(engine) as session:
        stored = find(session, program, period)
    assert stored is not None  # found above; periods are never deleted
    return stored


def _drawn_from(row: SelectionPeriod) -> str:
    return (
        f"{row.program} {row.period} has been drawn from since {row.first_roll_at:%Y-%m-%d %H:%M} UTC without a "
        "beacon; a beacon entered now would change draws already made, so it is refused. Enter a beacon before a "
        "period's first draw (the day before it starts): open the next period ahead with POST /selection/periods"
    )


def reveal(
    engine: Engine,
    keys: Sequence[CodecKey],
    program: str,
    period: str,
    actor: str = "system",
    role: str = "system",
    today: date | None = None,
) -> SelectionPeriod:
    """Publish a period's seed; refused until the period has ended everywhere (a day's margin for time zones)."""
    period = check_period(period)
    today = today or datetime.now(UTC).date()
    if today < verifiable.reveal_on(period):
        raise SelectionConflict(
            f"{period} ends on {period_end(period)}; its seed can be revealed from {verifiable.reveal_on(period)}"
        )
    with session_scope(engine) as session:
        row = find(session, program, period)
        if row is None:
            raise SelectionConflict(f"{program} {period} has no committed seed: no draw used one")
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
        audit.append(
            engine,
            audit.AuditEntry(
                actor,
                role,
                "selection.reveal",
                "ok",
                "selection-period",
                f"{program}:{period}",
                detail=f"seed {row.seed_revealed}",
            ),
        )
    return row


def periods(session: Session, program: str | None = None) -> list[SelectionPeriod]:
    query = select(SelectionPeriod)
    if program:
        query = query.where(SelectionPeriod.program == program)
    return list(session.exec(query.order_by(col(SelectionPeriod.period), col(SelectionPeriod.program))).all())


def export(session: Session, program: str, period: str) -> dict:
    """Every draw of a program's period with its inputs, for domain.verifiable.verify_export and
    docs/verify_selection.py: the participants' draws and, in colour mode, the colour days; staff-ordered
    (for-cause) tests listed apart, never part of the draw."""
    from store.colours import export_days
    from store.models import Participant, Screening, SelectionDraw

    period = check_period(period)
    row = find(session, program, period)
    if row is None:
        raise SelectionError(f"{program} {period} has no committed seed: no verifiable draw used one")
    first, last = date.fromisoformat(f"{period}-01"), period_end(period)
    members = select(Participant.id).where(Participant.program == program)
    draws = session.exec(
        select(SelectionDraw)
        .where(col(SelectionDraw.participant_id).in_(members), SelectionDraw.day >= first, SelectionDraw.day <= last)
        .order_by(col(SelectionDraw.participant_id), col(SelectionDraw.day))
    ).all()
    for_cause = session.exec(
        select(Screening)
        .where(
            col(Screening.participant_id).in_(members),
            Screening.reason == "for-cause",
            Screening.day >= first,
            Screening.day <= last,
        )
        .order_by(col(Screening.day), col(Screening.id))
    ).all()
    return {
        "format": "iop-selection-export/1",
        "program": program,
        "period": period,
        "commitment": row.commitment,
        "beacon": row.beacon,
        "seed": row.seed_revealed,
        "published_at": _utc(row.published_at).isoformat(),
        "beacon_entered_at": _utc(row.beacon_entered_at).isoformat() if row.beacon_entered_at else None,
        "draws": [
            {
                "participant_id": d.participant_id,
                "day": d.day.isoformat(),
                "roll": d.roll,
                "time_roll": d.time_roll,
                "draw_minute": d.draw_minute,
                "selected": d.selected,
                "reason": d.reason,
                "probability": d.probability,
                "screening_id": d.screening_id,
                "inputs": d.inputs,
            }
            for d in draws
            if d.verifiable
        ],
        # Colour mode (domain/colours.py): each site's colours called per open day, each colour drawn like a
        # participant with "colour:<site>:<colour>" in place of a participant id.
        "colour_days": export_days(session, program, first, last),
        "not_verifiable": [
            {"participant_id": d.participant_id, "day": d.day.isoformat(), "reason": d.reason, "selected": d.selected}
            for d in draws
            if not d.verifiable
        ],
        "for_cause": [
            {
                "screening_id": s.id,
                "participant_id": s.participant_id,
                "day": s.day.isoformat(),
                "selected_at": s.selected_at.isoformat(),
            }
            for s in for_cause
        ],
    }


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- notices to subscribing recipients -------------------------------------------------------------


def subscribers(session: Session) -> list[Recipient]:
    """Active recipients that subscribe to the selection notices (domain.verifiable.SELECTION_COMMITMENTS)."""
    rows = session.exec(select(Recipient).where(Recipient.status == "active").order_by(col(Recipient.id))).all()
    return [r for r in rows if verifiable.SELECTION_COMMITMENTS in (r.notices or [])]


def plan_notices(engine: Engine, program: str, period: str, kind: str) -> list[str]:
    """One notice record per subscribing recipient for this period and kind; idempotent (the ids of every notice
    of the kind, new or planned before, so a repeated plan starts no second delivery)."""
    period = check_period(period)
    with session_scope(engine) as session:
        ids = []
        for recipient in subscribers(session):
            the_id = verifiable.notice_id(program, period, kind, recipient.id)
            if session.get(SelectionNotice, the_id) is None:
                session.add(
                    SelectionNotice(id=the_id, program=program, period=period, kind=kind, recipient_id=recipient.id)
                )
            ids.append(the_id)
        return ids


def notices(session: Session, program: str | None = None, period: str | None = None) -> list[SelectionNotice]:
    query = select(SelectionNotice)
    if program:
        query = query.where(SelectionNotice.program == program)
    if period:
        query = query.where(SelectionNotice.period == period)
    return list(session.exec(query.order_by(col(SelectionNotice.created_at), col(SelectionNotice.id))).all())
