"""Colour mode (domain/colours.py): the day's colours at a site, drawn once and stored (colour_days), by whichever
participant's workflow asks first at opening; every later ask (other participants, the channel, staff) reads the
same stored draw.

Each colour's roll is the verifiable roll of the period's committed seed (domain/verifiable.py) with the colour
in place of a participant id, so the draw is the same whoever makes it and can be recomputed once the seed is
revealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain import verifiable
from domain.colours import colour_roll_subject, draw_colours, drawn
from domain.program import Program, plan_for
from domain.selection import WINDOW_DAYS
from iop.codec import CodecKey
from store.db import session_scope
from store.models import ColourDay
from store.selection import seed_for_roll


def stored_colours(session: Session, program_id: str, site: str, day: date) -> ColourDay | None:
    return session.exec(select(ColourDay).where(ColourDay.program_id == program_id, ColourDay.site == site,
                                                ColourDay.day == day)).first()


def draw_day_colours(engine: Engine, keys: Sequence[CodecKey], program: Program, version: int, site: str,
                     day: date) -> ColourDay:
    """The day's stored draw, drawing it now if nobody has: deterministic given the seed and the stored days
    before it, so two workers drawing at once store the same thing (the second insert is refused and re-read)."""
    with Session(engine) as session:
        found = stored_colours(session, program.program_id, site, day)
        if found is not None:
            return found
        earlier = session.exec(select(ColourDay).where(
            ColourDay.program_id == program.program_id, ColourDay.site == site,
            ColourDay.day >= day - timedelta(days=WINDOW_DAYS - 1), ColourDay.day < day)).all()
        first = session.exec(select(col(ColourDay.day)).where(ColourDay.program_id == program.program_id,
                                                         ColourDay.site == site)
                             .order_by(col(ColourDay.day))).first()
    recent: dict[str, list[date]] = {}
    for row in earlier:
        for name in row.colours:
            recent.setdefault(name, []).append(row.day)
    site_plan = plan_for(program, version, site, program.phases[0].name)
    seed, beacon = seed_for_roll(engine, keys, program.program_id, verifiable.period_of(day))
    rolls = {g.name: verifiable.roll(seed, program.program_id, colour_roll_subject(site, g.name), day.isoformat(),
                                     verifiable.SELECT, beacon) for g in program.colours}
    draws = draw_colours(site_plan, program.colours, day, rolls, recent, history_start=first or day)
    row = ColourDay(program_id=program.program_id, site=site, day=day, program_version=version,
                    colours=drawn(draws, program.colours),
                    draws=[{"colour": g.name, "probability": d.probability, "roll": d.roll, "selected": d.selected,
                            "reason": d.reason, "detail": d.detail}
                           for g, d in zip(program.colours, draws, strict=True)])
    try:
        with session_scope(engine) as session:
            session.add(row)
    except IntegrityError:  # drawn by another worker a moment ago: the same draw, read it back
        pass
    with Session(engine) as session:
        stored = stored_colours(session, program.program_id, site, day)
    assert stored is not None  # stored above, or by the worker whose insert won
    return stored
