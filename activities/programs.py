"""Reading the program definition for a workflow: a day's plan, under the version current then."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity

from domain.program import plan_for
from store.programs import current_program
from workflows.contracts.participant import DayPlan, ProgramDayRequest


class ProgramActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def plan_for_day(self, request: ProgramDayRequest) -> DayPlan | None:
        """None when the program is not stored: the participant keeps the plan it carries."""
        with Session(self.engine) as session:
            found = current_program(session, request.program)
        if found is None:
            return None
        program, version = found
        if request.site not in program.sites or request.phase not in [p.name for p in program.phases]:
            return None  # an edit removed the site or phase: keep the last plan; staff see the program page
        plan = plan_for(program, version, request.site, request.phase)
        return DayPlan(plan, program.program_id, version, [p.name for p in program.phases])

    def all(self) -> list:
        return [self.plan_for_day]
