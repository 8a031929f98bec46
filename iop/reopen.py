"""Reopening a screening whose workflow has closed, so a correction or an excuse still reaches whoever was told.

A final screening's workflow waits a while for corrections (workflows.screening.CORRECTION_PERIOD) and then
closes. A lab's corrected result can come later than that; what a court or employer was told must still be
amended (issue 16: no time limit). Likewise a missed test's workflow closes after the make-up period, and staff
may excuse the miss later (the participant brings the discharge papers): every recipient told of the miss gets
its retraction. The screening's record keeps its last saved state, so a new run of the same workflow id is started
from it; the correction or the excuse is then delivered to that run as usual, which amends or withdraws every
earlier report (activities.disclosure.plan_disclosures). A test reopened for its excuse takes nothing else.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, RPCError, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCStatusCode

from store.models import Participant, Screening
from store.shapes import typed
from workflows.contracts.screening import FINAL, MISSED, NOT_NOTIFIED, WINDOW_LOST, ScreeningInput, ScreeningState
from workflows.screening import ScreeningWorkflow, workflow_id

# What a closed screening can still take: a final result a correction; a test never collected an excuse.
REOPENS = (FINAL, MISSED, NOT_NOTIFIED, WINDOW_LOST)


def closed_state(
    engine: Engine, screening_id: str, statuses: tuple[str, ...] = (FINAL,)
) -> tuple[ScreeningState, str] | None:
    """The last saved state of a screening in one of `statuses` (of REOPENS) and its participant's time zone, or
    None when it is in none of them (a final result takes a correction after its workflow closed, a test never
    collected an excuse)."""
    with Session(engine) as session:
        row = session.get(Screening, screening_id)
        if row is None or not row.state or row.state.get("status") not in statuses:
            return None
        participant = session.get(Participant, row.participant_id)
        zone = participant.timezone if participant is not None else "UTC"
        return typed(ScreeningState, row.state), zone


async def reopen_screening(
    client: Client,
    engine: Engine,
    screening_id: str,
    task_queue: str | None = None,
    statuses: tuple[str, ...] = (FINAL,),
) -> bool:
    """Start the screening's workflow again from its saved state when it has closed in one of `statuses` (a final
    result for a correction, by default; MISSED, NOT_NOTIFIED or WINDOW_LOST for an excuse); True when it runs now.

    The task queue is the closed run's (still known to Temporal within the namespace's retention) or
    `task_queue`. A run already going (another correction reopened it first) is joined."""
    found = closed_state(engine, screening_id, statuses)
    if found is None:
        return False
    state, zone = found
    handle = client.get_workflow_handle(workflow_id(screening_id))
    queue = task_queue
    try:
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.RUNNING:
            return True
        queue = description.task_queue or queue
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
    if not queue:
        return False
    await client.start_workflow(
        ScreeningWorkflow.run,
        ScreeningInput(
            screening_id=state.screening_id,
            participant_id=state.participant_id,
            site=state.site,
            day=state.day,
            reason=state.reason,
            selected_at=state.selected_at,
            window_hours=state.window_hours,
            timezone=zone,
            for_cause_reason=state.for_cause_reason,
            reopen=state,
        ),
        id=workflow_id(screening_id),
        task_queue=queue,
        # Two corrections at once: the second joins the run the first started.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    return True
