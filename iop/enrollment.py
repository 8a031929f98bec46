"""Starting a participant's program workflow from their enrollment record.

Shared by the enrollment route and the reconciler: both start the workflow under its deterministic
id (`participant-{id}`), and a start that finds it already running joins it, so starting twice
(a retried request, a reconciler pass after a crash) is harmless.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from domain.plan import PHASES, default_plan
from domain.program import Program, plan_for
from store.models import Participant
from workflows import search
from workflows.contracts.participant import ParticipantInput, ParticipantState
from workflows.participant import ParticipantWorkflow, workflow_id


class IncompleteRecord(ValueError):
    """The enrollment record cannot start a program (e.g. an unknown phase or time zone)."""


def program_input(participant: Participant, program: tuple[Program, int] | None = None) -> ParticipantInput:
    """The workflow's input; `program` is the stored program (definition, current version) if there is one."""
    phases = [p.name for p in program[0].phases] if program else list(PHASES)
    if participant.phase not in phases:
        raise IncompleteRecord(f"unknown phase {participant.phase!r}")
    if program and participant.site not in program[0].sites:
        raise IncompleteRecord(f"site {participant.site!r} is not a site of program {participant.program!r}")
    try:
        ZoneInfo(participant.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise IncompleteRecord("the record's time zone is not an IANA zone name") from None
    if participant.start_date is None or not participant.site or not participant.program:
        raise IncompleteRecord("the record lacks a start date, site or program")
    state = ParticipantState(
        participant_id=participant.id,
        program=participant.program,
        site=participant.site,
        phase=participant.phase,
        start_date=participant.start_date.isoformat(),
        timezone=participant.timezone,
        plan=(
            plan_for(program[0], program[1], participant.site, participant.phase)
            if program
            else replace(default_plan(participant.phase), timezone=participant.timezone)
        ),
        phases=phases if program else [],
    )
    return ParticipantInput(state=state)


async def start_program(
    client: Client, task_queue: str, participant: Participant, program: tuple[Program, int] | None = None
) -> None:
    """Start (or join) the participant's program workflow."""
    started_on = datetime.combine(participant.start_date, datetime.min.time(), tzinfo=UTC)
    await client.start_workflow(
        ParticipantWorkflow.run,
        program_input(participant, program),
        id=workflow_id(participant.id),
        task_queue=task_queue,
        # A retried start (same id) joins the running program instead of failing.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(search.PARTICIPANT_ID, participant.id),
                SearchAttributePair(search.STATUS, "active"),
                SearchAttributePair(search.PHASE, participant.phase),
                SearchAttributePair(search.SITE, participant.site),
                SearchAttributePair(search.DAY, started_on),
            ]
        ),
    )
