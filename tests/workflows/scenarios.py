"""Workflow scenarios shared by the tests and by the history recorder of the replay test."""

from __future__ import annotations

from datetime import date

from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowHandle

from domain.plan import default_plan
from store.db import session_scope
from store.models import Participant
from tests.conftest import unique
from workflows.contracts.participant import Discharge, ParticipantInput, ParticipantState, PhaseChange
from workflows.participant import ParticipantWorkflow, workflow_id

START = date(2026, 11, 2)


def record_participant(engine: Engine, participant_id: str, phase: str = "phase-1", start: date = START) -> None:
    with session_scope(engine) as session:
        session.add(
            Participant(
                id=participant_id,
                given_name="Test",
                family_name="Person",
                date_of_birth=date(1980, 1, 1),
                site="north",
                program="iop",
                phase=phase,
                start_date=start,
                timezone="America/New_York",
                case_numbers=[],
                status="enrolling",
                phone="+15555550100",
            )
        )


def initial_state(participant_id: str, phase: str = "phase-1", start: date = START) -> ParticipantState:
    return ParticipantState(
        participant_id=participant_id,
        program="iop",
        site="north",
        phase=phase,
        start_date=start.isoformat(),
        timezone="America/New_York",
        plan=default_plan(phase),
    )


async def start_participant(
    client: Client, engine: Engine | None, task_queue: str, *, recorded: bool = True, start: date = START
) -> WorkflowHandle:
    participant_id = unique("p")
    if recorded and engine is not None:
        record_participant(engine, participant_id, start=start)
    return await client.start_workflow(
        ParticipantWorkflow.run,
        ParticipantInput(state=initial_state(participant_id, start=start)),
        id=workflow_id(participant_id),
        task_queue=task_queue,
    )


async def phase_changes_then_discharge(handle: WorkflowHandle, changes: int) -> None:
    phases = ["phase-2", "phase-1"]
    for i in range(changes):
        await handle.execute_update(
            ParticipantWorkflow.change_phase, PhaseChange(phases[i % 2], f"change {i}", "tester")
        )
    await handle.execute_update(ParticipantWorkflow.discharge, Discharge("completed", "graduated", "tester"))
