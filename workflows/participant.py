"""ParticipantWorkflow: one per participant, alive for the whole program."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from domain.plan import PHASES, default_plan, plan_to_dict
    from workflows import search
    from workflows.contracts import (
        ACTIVE,
        CONFLICT,
        DISCHARGE_STATUSES,
        INVALID,
        Discharge,
        ParticipantInput,
        ParticipantState,
        ParticipantSync,
        PhaseChange,
        PhaseEntry,
    )

RECORD_WRITE = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
# A workflow started by an enrollment whose database transaction then failed has no record: it
# gives up after a few minutes instead of running a program for nobody.
CONFIRM_ENROLLMENT = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_attempts=6,
    ),
)


def workflow_id(participant_id: str) -> str:
    return f"participant-{participant_id}"


@workflow.defn(name="ParticipantWorkflow")
class ParticipantWorkflow:
    @workflow.init
    def __init__(self, input: ParticipantInput) -> None:
        self.state = input.state
        if not self.state.phase_history:
            self.state.phase_history.append(
                PhaseEntry(self.state.phase, workflow.now().isoformat(), "enrolled", "enrollment")
            )

    @workflow.run
    async def run(self, input: ParticipantInput) -> ParticipantState:
        if not input.continued:
            if not await self._enrollment_recorded():
                self.state.status = "enrollment-abandoned"
                return self.state
        while True:
            await workflow.wait_condition(
                lambda: self.state.status != ACTIVE or workflow.info().is_continue_as_new_suggested()
            )
            # Updates still running must finish in this run, or their callers see them fail.
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self.state.status != ACTIVE:
                return self.state
            self.state.runs += 1
            workflow.continue_as_new(ParticipantInput(state=self.state, continued=True))

    async def _enrollment_recorded(self) -> bool:
        try:
            await workflow.execute_activity_method(
                RecordActivities.confirm_enrollment, self.state.participant_id, **CONFIRM_ENROLLMENT
            )
        except ActivityError:
            return False
        return True

    # --- phase ---------------------------------------------------------------------------

    @workflow.update
    async def change_phase(self, change: PhaseChange) -> ParticipantState:
        self.state.phase = change.phase
        self.state.plan = plan_to_dict(default_plan(change.phase))
        self.state.phase_history.append(
            PhaseEntry(change.phase, workflow.now().isoformat(), change.reason, change.actor)
        )
        workflow.upsert_search_attributes([search.PHASE.value_set(change.phase)])
        await self._sync_record()
        return self.state

    @change_phase.validator
    def _validate_phase(self, change: PhaseChange) -> None:
        self._require_active("change the phase")
        if change.phase not in PHASES:
            raise ApplicationError(f"unknown phase {change.phase!r}; phases are {', '.join(PHASES)}", type=INVALID)
        if change.phase == self.state.phase:
            raise ApplicationError(f"the participant is already in {change.phase}", type=CONFLICT)

    # --- discharge -----------------------------------------------------------------------

    @workflow.update
    async def discharge(self, request: Discharge) -> ParticipantState:
        self.state.status = DISCHARGE_STATUSES[request.kind]
        self.state.discharge_kind = request.kind
        self.state.discharge_reason = request.reason
        self.state.discharged_at = workflow.now().isoformat()
        self.state.discharged_by = request.actor
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        await self._sync_record()
        return self.state

    @discharge.validator
    def _validate_discharge(self, request: Discharge) -> None:
        self._require_active("discharge")
        if request.kind not in DISCHARGE_STATUSES:
            kinds = ", ".join(DISCHARGE_STATUSES)
            raise ApplicationError(f"unknown discharge kind {request.kind!r}; kinds are {kinds}", type=INVALID)

    # --- reading -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> ParticipantState:
        return self.state

    def _require_active(self, what: str) -> None:
        if self.state.status != ACTIVE:
            raise ApplicationError(
                f"cannot {what}: the participant is already {self.state.status}"
                + (f" since {self.state.discharged_at}" if self.state.discharged_at else ""),
                type=CONFLICT,
            )

    async def _sync_record(self) -> None:
        await workflow.execute_activity_method(
            RecordActivities.sync_participant,
            ParticipantSync(
                participant_id=self.state.participant_id,
                phase=self.state.phase,
                status=self.state.status,
                discharged_at=self.state.discharged_at,
            ),
            **RECORD_WRITE,
        )
