"""Two site openings at once (issue 15 colour mode): two participants' workflows ask for the same day's colours
at the same moment, through the real activity, on SQLite and PostgreSQL. Both must get one colour set, stored
once, drawn from the period's one committed seed (issue 21), even though both found no stored day and drew."""

import asyncio
import threading
from datetime import date

from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

import store.colours
from activities.colours import ColourActivities
from domain import verifiable
from domain.program import program_from_dict
from iop.codec import open_text
from store.db import session_scope
from store.models import ColourDay, Participant, SelectionPeriod
from store.programs import save_version
from store.selection import export
from tests.conftest import TEST_KEYS
from workflows.contracts.participant import ColourDayRequest

EVERY_DAY = {d: ["07:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
DAY = date(2026, 11, 18)


def setup(engine) -> None:
    # p = 3.5 / 7 open days = 0.5 for each colour: a draw that ignored the seed would differ between the two.
    definition = {
        "program_id": "race-court",
        "name": "Colour court",
        "mode": "colour",
        "sites": {"north": {"timezone": "UTC", "hours": EVERY_DAY, "closed": {}}},
        "phases": [{"name": "phase-1", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 3}],
        "colours": [{"name": name, "tests_per_week": 3.5} for name in ("red", "blue", "green", "amber")],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", "colour mode")
        for pid, colour in (("p-race-1", "red"), ("p-race-2", "blue")):
            session.add(
                Participant(
                    id=pid,
                    given_name="Test",
                    family_name="Person",
                    date_of_birth=date(1980, 1, 1),
                    site="north",
                    program="race-court",
                    phase="phase-1",
                    start_date=DAY,
                    timezone="UTC",
                    case_numbers=[],
                    colour=colour,
                )
            )


async def test_two_openings_at_once_draw_one_colour_set(migrated_engine, monkeypatch):
    engine = migrated_engine
    setup(engine)
    # Hold each caller once it has found no stored day and is about to roll, until the other is there too: both
    # draws (and both openings of the period's seed) then really run at once.
    barrier, entered = threading.Barrier(2), []
    real_seed = store.colours.seed_for_roll

    def seed_for_roll(*args, **kwargs):
        entered.append(threading.get_ident())
        barrier.wait(timeout=20)
        return real_seed(*args, **kwargs)

    monkeypatch.setattr(store.colours, "seed_for_roll", seed_for_roll)
    activities = ColourActivities(engine, TEST_KEYS)

    def opening(pid: str):
        request = ColourDayRequest("race-court", 1, "north", DAY.isoformat(), pid)
        return ActivityEnvironment().run(activities.colour_day, request)

    first, second = await asyncio.gather(asyncio.to_thread(opening, "p-race-1"), asyncio.to_thread(opening, "p-race-2"))
    assert len(set(entered)) == 2, "both openings must have found no stored day (the race under test)"
    assert (first.own, second.own) == ("red", "blue")
    assert first.colours == second.colours
    with Session(engine) as session:
        rows = session.exec(select(ColourDay).where(ColourDay.program_id == "race-court")).all()
        periods = session.exec(select(SelectionPeriod).where(SelectionPeriod.program == "race-court")).all()
    assert len(rows) == 1 and rows[0].colours == first.colours
    assert len(periods) == 1  # one committed seed for the period, opened by whichever caller won
    # The stored colours follow from that one committed seed: both verifiers' recomputation agrees.
    seed = bytes.fromhex(open_text(TEST_KEYS, periods[0].seed_sealed))
    with Session(engine) as session:
        days = export(session, "race-court", "2026-11")["colour_days"]
    assert verifiable.verify_colour_days(seed, "race-court", "2026-11", periods[0].beacon, days) == []
    # A later opening reads the stored day without drawing again.
    entered.clear()
    assert opening("p-race-1").colours == first.colours and entered == []
