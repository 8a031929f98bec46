"""ScreeningWorkflow: one drug test, from selection to collection (or its absence) to the result."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.screenings import ScreeningActivities
    from domain.clock import local_moment
    from workflows import search
    from workflows.contracts import (
        AWAITING_COLLECTION,
        AWAITING_RESULT,
        CANCELLED,
        COMPLETED,
        CONFLICT,
        EXCUSED,
        INVALID,
        MISSED,
        REFUSAL_KINDS,
        REFUSED,
        SCHEDULED,
        SPECIMEN_TYPES,
        Alert,
        Collection,
        Excuse,
        Notification,
        Refusal,
        ScreeningEvent,
        ScreeningInput,
        ScreeningState,
        already_message,
    )

ACTIVITY = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)),
)
# After the overdue alert the screening keeps waiting for the lab this much longer, then closes
# with the result recorded as never received (a reportable gap, not a silent one).
RESULT_GIVE_UP = timedelta(days=30)


def workflow_id(screening_id: str) -> str:
    return f"screening-{screening_id}"


@workflow.defn(name="ScreeningWorkflow")
class ScreeningWorkflow:
    @workflow.init
    def __init__(self, input: ScreeningInput) -> None:
        self.input = input
        self.state = ScreeningState(
            screening_id=input.screening_id,
            participant_id=input.participant_id,
            site=input.site,
            day=input.day,
            reason=input.reason,
            selected_at=input.selected_at,
            window_hours=input.window_hours,
            for_cause_reason=input.for_cause_reason,
        )
        self._event("selected", detail=input.selection_detail or input.for_cause_reason or "")

    @workflow.run
    async def run(self, input: ScreeningInput) -> ScreeningState:
        # The screening keeps its own search attributes, status included, as it moves along.
        workflow.upsert_search_attributes([
            search.PARTICIPANT_ID.value_set(input.participant_id),
            search.SITE.value_set(input.site),
            search.DAY.value_set(local_moment(date.fromisoformat(input.day), time(), input.timezone)),
        ])
        await self._save()
        # Staff may excuse a test, or discharge cancel it, before the participant is told.
        if self.state.status == SCHEDULED:
            await self._notify()
        if self.state.status == AWAITING_COLLECTION:
            await self._await_collection()
        if self.state.status == AWAITING_RESULT:
            await self._await_result()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state

    # --- the procedure -------------------------------------------------------------------

    async def _notify(self) -> None:
        now = workflow.now()
        closes = now + timedelta(hours=self.input.window_hours)
        self.state.notified_at = now.isoformat()
        self.state.window_closes_at = closes.isoformat()
        self.state.status = AWAITING_COLLECTION
        await workflow.execute_activity_method(
            ScreeningActivities.notify_participant,
            Notification(
                notification_id=f"{self.state.screening_id}:test-required",
                participant_id=self.state.participant_id,
                screening_id=self.state.screening_id,
                kind="for-cause-test" if self.state.reason == "for-cause" else "test-required",
                report_by=closes.isoformat(),
                site=self.state.site,
            ),
            **ACTIVITY,
        )
        self._event("participant notified", detail=f"report by {closes.isoformat()}")
        await self._save()

    async def _await_collection(self) -> None:
        closes = datetime.fromisoformat(self.state.window_closes_at)
        collected_or_settled = lambda: self.state.status != AWAITING_COLLECTION  # noqa: E731
        if await self._wait_until(collected_or_settled, closes):
            return
        self.state.status = MISSED
        self.state.missed_at = workflow.now().isoformat()
        late_until = closes + timedelta(hours=self.input.late_grace_hours)
        self.state.late_until = late_until.isoformat()
        self._event("missed", detail=f"no collection by {closes.isoformat()}: a reportable no-show")
        await self._save()
        # A specimen collected late can still be recorded (flagged late) during the make-up period.
        await self._wait_until(lambda: self.state.status != MISSED, late_until)

    async def _await_result(self) -> None:
        due = datetime.fromisoformat(self.state.result_due_at)
        has_result = lambda: self.state.status != AWAITING_RESULT  # noqa: E731
        if await self._wait_until(has_result, due):
            return
        self.state.result_overdue = True
        self._event("result overdue", detail=f"no lab result by {due.isoformat()}")
        await workflow.execute_activity_method(
            ScreeningActivities.raise_alert,
            Alert(
                kind="result-overdue",
                participant_id=self.state.participant_id,
                subject_id=self.state.screening_id,
                detail=f"no lab result for specimen {self.state.specimen_id} by {due.isoformat()}",
            ),
            **ACTIVITY,
        )
        await self._save()
        await self._wait_until(has_result, due + RESULT_GIVE_UP)

    async def _wait_until(self, condition, deadline: datetime) -> bool:
        """Wait for the condition or the deadline; True if the condition came first."""
        remaining = (deadline - workflow.now()).total_seconds()
        if condition():
            return True
        if remaining <= 0:
            return False
        try:
            await workflow.wait_condition(condition, timeout=remaining)
            return True
        except TimeoutError:
            return condition()

    # --- facts from staff ----------------------------------------------------------------

    @workflow.update
    async def record_collection(self, collection: Collection) -> ScreeningState:
        attempt = 1
        self.state.specimen_id = f"{self.state.screening_id}.{attempt}"
        collection.collected_at = collection.collected_at or workflow.now().isoformat()
        self.state.collection = collection
        self.state.late_collection = self.state.status == MISSED
        if collection.specimen_type == "breath":
            self.state.status = COMPLETED
        else:
            self.state.status = AWAITING_RESULT
            due = workflow.now() + timedelta(hours=self.input.result_due_hours)
            self.state.result_due_at = due.isoformat()
        what = "late collection recorded" if self.state.late_collection else "collection recorded"
        self._event(what, collection.actor, f"specimen {self.state.specimen_id} ({collection.specimen_type}"
                    f"{', observed' if collection.observed else ', NOT observed'})")
        await self._save()
        return self.state

    @record_collection.validator
    def _validate_collection(self, collection: Collection) -> None:
        if collection.specimen_type not in SPECIMEN_TYPES:
            raise ApplicationError(
                f"unknown specimen type {collection.specimen_type!r}; use one of {', '.join(SPECIMEN_TYPES)}",
                type=INVALID,
            )
        status = self.state.status
        if status == MISSED and not collection.late:
            raise ApplicationError(
                f"the collection window closed at {self.state.window_closes_at} and the screening was recorded "
                "as missed; if the specimen was collected after that, send it again with late=true and a late_reason",
                type=CONFLICT,
            )
        if status == MISSED and not collection.late_reason:
            raise ApplicationError("a late collection needs a late_reason", type=INVALID)
        # Scheduled: a for-cause test collected on the spot, before the notice went out.
        if status not in (SCHEDULED, AWAITING_COLLECTION, MISSED):
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.update
    async def excuse(self, excuse: Excuse) -> ScreeningState:
        self.state.status = EXCUSED
        self.state.excuse = excuse
        self._event("excused", excuse.actor, excuse.reason)
        await self._save()
        return self.state

    @excuse.validator
    def _validate_excuse(self, excuse: Excuse) -> None:
        if not excuse.reason.strip():
            raise ApplicationError("an excuse needs a reason", type=INVALID)
        if self.state.status not in (SCHEDULED, AWAITING_COLLECTION, MISSED):
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.update
    async def refuse(self, refusal: Refusal) -> ScreeningState:
        self.state.status = REFUSED
        self.state.refusal = refusal
        self._event("refusal recorded", refusal.actor, f"{refusal.kind}: {refusal.detail}")
        await self._save()
        return self.state

    @refuse.validator
    def _validate_refusal(self, refusal: Refusal) -> None:
        if refusal.kind not in REFUSAL_KINDS:
            raise ApplicationError(
                f"unknown refusal kind {refusal.kind!r}; use one of {', '.join(REFUSAL_KINDS)}", type=INVALID
            )
        if self.state.status not in (SCHEDULED, AWAITING_COLLECTION, MISSED):
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.signal
    async def cancel(self, reason: str) -> None:
        """From the participant's workflow at discharge: a test not yet collected is moot."""
        if self.state.status in (SCHEDULED, AWAITING_COLLECTION, MISSED):
            self.state.status = CANCELLED
            self.state.cancel_reason = reason
            self._event("cancelled", detail=reason)
            await self._save()

    @workflow.query
    def status(self) -> ScreeningState:
        return self.state

    # --- helpers -------------------------------------------------------------------------

    def _already(self) -> str:
        return already_message(self.state)

    def _event(self, what: str, actor: str = "system", detail: str = "") -> None:
        self.state.events.append(ScreeningEvent(workflow.now().isoformat(), what, actor or "system", detail))

    async def _save(self) -> None:
        self.state.revision += 1
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        await workflow.execute_activity_method(ScreeningActivities.save_screening, self.state, **ACTIVITY)
