"""Colour mode for the participant's workflow: the day's colours (store/colours.py) and the participant's own colour;
only the outcome enters the workflow's history, never a seed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity

from iop.codec import CodecKey
from store.colours import draw_day_colours
from store.models import Participant
from store.programs import current_program, program_version
from workflows.contracts.participant import ColourDayAnswer, ColourDayRequest


class ColourActivities:
    def __init__(self, engine: Engine, keys: Sequence[CodecKey]) -> None:
        self.engine = engine
        self.keys = list(keys)

    @activity.defn
    def colour_day(self, request: ColourDayRequest) -> ColourDayAnswer | None:
        """The day's called colours and the participant's colour; None when the program is not in colour mode
        (an edit took it out): the participant's own draw applies."""
        with Session(self.engine) as session:
            found = (
                program_version(session, request.program, request.version)
                if request.version
                else current_program(session, request.program)
            )
            participant = session.get(Participant, request.participant_id)
            own = participant.colour if participant is not None else None
        if found is None or found[0].mode != "colour" or request.site not in found[0].sites:
            return None
        row = draw_day_colours(
            self.engine, self.keys, found[0], found[1], request.site, date.fromisoformat(request.day)
        )
        detail = "; ".join(f"{d['colour']}: {d['reason']} ({d['detail']})" for d in row.draws)
        probability = next((d["probability"] for d in row.draws if d["colour"] == own), 0.0)
        return ColourDayAnswer(list(row.colours), own, row.program_version, detail[:1500], probability)

    def all(self) -> list:
        return [self.colour_day]
