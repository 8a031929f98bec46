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
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain import verifiable
from domain.colours import ColourGroup, colour_plan, colour_roll_subject, draw_colours, drawn
from domain.plan import TestingPlan
from domain.program import Program, plan_for
from domain.selection import WINDOW_DAYS, DrawInputs
from iop.codec import CodecKey
from store.db import session_scope
from store.models import ColourDay
from store.programs import program_version
from store.selection import seed_for_roll
from store.shapes import plain


def stored_colours(session: Session, program_id: str, site: str, day: date) -> ColourDay | None:
    return session.exec(
        select(ColourDay).where(ColourDay.program_id == program_id, ColourDay.site == site, ColourDay.day == day)
    ).first()


def _earlier(session: Session, program_id: str, site: str, day: date) -> tuple[dict[str, list[date]], date]:
    """Each colour's called days in the 6 days before `day`, and the first day colours were drawn at the site (the
    floor counts from there): the draw's inputs besides the seed, as the stored days say."""
    earlier = session.exec(
        select(ColourDay).where(
            ColourDay.program_id == program_id,
            ColourDay.site == site,
            ColourDay.day >= day - timedelta(days=WINDOW_DAYS - 1),
            ColourDay.day < day,
        )
    ).all()
    first = session.exec(
        select(col(ColourDay.day))
        .where(ColourDay.program_id == program_id, ColourDay.site == site)
        .order_by(col(ColourDay.day))
    ).first()
    recent: dict[str, list[date]] = {}
    for row in sorted(earlier, key=lambda r: r.day):
        for name in row.colours:
            recent.setdefault(name, []).append(row.day)
    return recent, first or day


def draw_inputs(
    site_plan: TestingPlan, group: ColourGroup, recent: Sequence[date], history_start: date
) -> dict[str, Any]:
    """One colour's draw inputs, in the shape of a participant's verifiable draw (domain.verifiable.recompute)."""
    return plain(
        DrawInputs(
            colour_plan(site_plan, group), tuple(d.isoformat() for d in recent), False, history_start.isoformat()
        )
    )


def draw_day_colours(
    engine: Engine, keys: Sequence[CodecKey], program: Program, version: int, site: str, day: date
) -> ColourDay:
    """The day's stored draw, drawing it now if nobody has: deterministic given the seed and the stored days
    before it, so two workers drawing at once store the same thing (the second insert is refused and re-read).
    Each colour's inputs are kept with its draw, for the period's export (store.selection.export)."""
    with Session(engine) as session:
        found = stored_colours(session, program.program_id, site, day)
        if found is not None:
            return found
        recent, first = _earlier(session, program.program_id, site, day)
    site_plan = plan_for(program, version, site, program.phases[0].name)
    seed, beacon = seed_for_roll(engine, keys, program.program_id, verifiable.period_of(day))
    rolls = {
        g.name: verifiable.roll(
            seed, program.program_id, colour_roll_subject(site, g.name), day.isoformat(), verifiable.SELECT, beacon
        )
        for g in program.colours
    }
    draws = draw_colours(site_plan, program.colours, day, rolls, recent, history_start=first)
    row = ColourDay(
        program_id=program.program_id,
        site=site,
        day=day,
        program_version=version,
        colours=drawn(draws, program.colours),
        draws=[
            {
                "colour": g.name,
                "probability": d.probability,
                "roll": d.roll,
                "selected": d.selected,
                "reason": d.reason,
                "detail": d.detail,
                "inputs": draw_inputs(site_plan, g, recent.get(g.name, ()), first),
            }
            for g, d in zip(program.colours, draws, strict=True)
        ],
    )
    try:
        with session_scope(engine) as session:
            session.add(row)
    except IntegrityError:  # drawn by another worker a moment ago: the same draw, read it back
        pass
    with Session(engine) as session:
        stored = stored_colours(session, program.program_id, site, day)
    assert stored is not None  # stored above, or by the worker whose insert won
    return stored


def export_days(session: Session, program_id: str, first: date, last: date) -> list[dict[str, Any]]:
    """A period's colour days with each colour's roll, outcome and inputs, for domain.verifiable.verify_export.
    A day drawn before inputs were kept with it gets them from the stored program version and colour days."""
    rows = session.exec(
        select(ColourDay)
        .where(ColourDay.program_id == program_id, ColourDay.day >= first, ColourDay.day <= last)
        .order_by(col(ColourDay.site), col(ColourDay.day))
    ).all()
    out = []
    for row in rows:
        draws = [dict(d) for d in row.draws]
        if any("inputs" not in d for d in draws):
            found = program_version(session, program_id, row.program_version)
            if found is not None:
                program = found[0]
                recent, start = _earlier(session, program_id, row.site, row.day)
                site_plan = plan_for(program, row.program_version, row.site, program.phases[0].name)
                groups = {g.name: g for g in program.colours}
                for d in draws:
                    if "inputs" not in d and d["colour"] in groups:
                        d["inputs"] = draw_inputs(site_plan, groups[d["colour"]], recent.get(d["colour"], ()), start)
        out.append(
            {
                "site": row.site,
                "day": row.day.isoformat(),
                "program_version": row.program_version,
                "colours": list(row.colours),
                "draws": [
                    {
                        "colour": d["colour"],
                        "subject": colour_roll_subject(row.site, d["colour"]),
                        "roll": d["roll"],
                        "selected": d["selected"],
                        "reason": d["reason"],
                        "probability": d["probability"],
                        "inputs": d.get("inputs"),
                    }
                    for d in draws
                ],
            }
        )
    return out
