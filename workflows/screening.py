"""ScreeningWorkflow: one drug test, from selection to collection (or its absence) to the result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.records import RecordActivities
    from activities.screenings import ScreeningActivities
    from domain.analytes import AddedAnalyte
    from domain.clock import local_moment
    from domain.interpretation import (
        POSITIVE_OUTCOMES,
        AnalyteResult,
        Interpretation,
        MedicationContext,
        OverallOutcome,
        interpret,
    )
    from domain.loinc_tox import AnalyteMethod
    from domain.program import SPECIMEN_TYPES
    from domain.report_facts import ReportFacts
    from domain.result_basis import (
        CONFIRMING_BASES,
        Basis,
        answers_confirmation,
        breath_alcohol_result,
        lab_basis,
        to_confirm,
    )
    from domain.vocab import FinalOutcome, QuarantineAction, ResultStatus, ReviewDecision
    from workflows import search
    from workflows.contracts.alerts import Alert
    from workflows.contracts.disclosure import DisclosureEvent
    from workflows.contracts.errors import CONFLICT, INVALID
    from workflows.contracts.medication import ScreenOutcome
    from workflows.contracts.participant import participant_workflow_id
    from workflows.contracts.results import (
        FINAL_EXPLAINED,
        FINAL_INVALID,
        FINAL_NEGATIVE,
        FINAL_POSITIVE,
        FINAL_REFUSAL,
        REVIEW_DECISIONS,
        ConfirmationRequest,
        LabReport,
        ResultEntry,
        Review,
        SettledCodes,
    )
    from workflows.contracts.screening import (
        AWAITING_COLLECTION,
        AWAITING_RESULT,
        AWAITING_REVIEW,
        CANCELLED,
        COMPLETED,
        EXCUSED,
        FINAL,
        MISSED,
        NO_RESULT,
        NOT_NOTIFIED,
        PRELIMINARY,
        REFUSAL_KINDS,
        REFUSED,
        SCHEDULED,
        TAKES_COLLECTION,
        WINDOW_LOST,
        Admission,
        CallListItem,
        Collection,
        Excuse,
        MissQuestion,
        Notification,
        Refusal,
        ScreeningEvent,
        ScreeningInput,
        ScreeningState,
        already_message,
    )
    from workflows.disclosure import disclose
    from workflows.options import ActivityOptions

ACTIVITY: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)),
)
# After the overdue alert the screening keeps waiting for the lab this much longer, then closes
# with the result recorded as never received (a reportable gap, not a silent one).
RESULT_GIVE_UP = timedelta(days=30)
REVIEW_DUE = timedelta(hours=24)  # a non-negative result unreviewed this long is escalated
# A final result's workflow waits this long for corrections, then closes; a later correction reopens it
# (iop/reopen.py), so there is no time limit on correcting what a recipient was told.
CORRECTION_PERIOD = timedelta(days=30)
# Admin-added analytes are interpreted with their definitions (issue 19): a new command path for
# reports that carry them; histories recorded before replay without it.
ADDED_ANALYTES_PATCH = "added-analytes-interpreted"
# Notices (patch NOTICE_PATCH): one attempt per activity, then the workflow retries on a timer with
# backoff until the window closes; the first failure puts the participant on the staff call list.
NOTICE_PATCH = "notice-delivery-and-miss-honesty"
ONE_ATTEMPT: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=1)
)
NOTICE_RETRY_FIRST = timedelta(minutes=1)
NOTICE_RETRY_MAX = timedelta(minutes=30)
# Issue 16: each reported result states its basis (a clinician's review confirms nothing by itself), a breath
# alcohol test has a result that is reported, and excusing a reported miss withdraws the report.
REPORT_BASIS_PATCH = "report-basis-breath-retractions"
# Reminders (issue 15): a participant told to test and not yet collected is reminded the program's hours before
# the window closes, through the gateway like the notice. Only screenings whose program asks for it.
REMINDER_PATCH = "reminder-before-close"
# Issue 16 review: a clinician's request for confirmation reaches staff (a worklist item: ask the lab) and, where the
# program reports presumptive screens, the presumptive result goes out meanwhile, worded as presumptive.
CONFIRMATION_REQUEST_PATCH = "confirmation-request-worklist"
# Issue 16 review: a final result's review can be reversed; every recipient told of it is sent the amendment.
REVIEW_REVERSAL_PATCH = "review-reversal-amends"
# A result filed while the notice was still going out is reviewed in the lab stage (the run used to end there).
EARLY_RESULT_PATCH = "result-before-notice-returned"
# Issue 20: a lab result is answered once it is recorded and saved (the update's completion is in the history and
# the screening's record is written: the lab's ACK means "we have it and will not lose it"). Telling the participant's
# workflow and starting the disclosures goes on after the answer, in this workflow, the two side by side; before this
# the update waited for both (two more workflow tasks before the lab had its ACK).
RESULT_ANSWERED_ONCE_SAVED_PATCH = "result-answered-once-saved"


# A missed test's workflow closes after the make-up period; excusing it later reopens it (iop/reopen.py) for the
# excuse alone, which is sent right after: the reopened run waits this long for it, then closes again.
REOPEN_FOR_EXCUSE = timedelta(hours=1)


def workflow_id(screening_id: str) -> str:
    return f"screening-{screening_id}"


@workflow.defn(name="ScreeningWorkflow")
class ScreeningWorkflow:
    @workflow.init
    def __init__(self, input: ScreeningInput) -> None:
        self.input = input
        self._announcing: list[asyncio.Task[None]] = []  # final outcomes being announced after the answer
        if input.reopen is not None:
            # Reopened for a correction after the workflow had closed: the record as it was last saved.
            self.state = input.reopen
            self.state.reopened_at = workflow.now().isoformat()
            what = "a correction (or a review's reversal)" if self.state.status == FINAL else "an excuse"
            self._event("reopened", detail=f"{what} arrived after the record had closed")
            return
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
        workflow.upsert_search_attributes(
            [
                search.PARTICIPANT_ID.value_set(input.participant_id),
                search.SITE.value_set(input.site),
                search.DAY.value_set(local_moment(date.fromisoformat(input.day), time(), input.timezone)),
            ]
        )
        await self._save()
        if input.reopen is not None:
            if self._reopened_for_excuse():
                # A missed (or not notified, window lost) test whose make-up period is over, reopened for the excuse
                # that follows at once (iop/reopen.py); nothing else is taken. Closes again if none comes.
                await self._wait_until(
                    lambda: self.state.status not in TAKES_COLLECTION, workflow.now() + REOPEN_FOR_EXCUSE
                )
            else:
                # A final result, reopened for a correction: the correction period starts again.
                await self._lab_stage()
            await workflow.wait_condition(workflow.all_handlers_finished)
            await self._announced()
            return self.state
        # Staff may excuse a test, or discharge cancel it, before the participant is told.
        if self.state.status == SCHEDULED:
            await self._notify()
        if self.state.status == AWAITING_COLLECTION:
            await self._await_collection()
        # The lab's result may already be in (awaiting review, or preliminary) when the notice's activity returns: the
        # collection and the result were filed while it was out. Before the patch the run then ended, and the review
        # was refused ("already ended").
        if self.state.status == AWAITING_RESULT or (
            self.state.status in (PRELIMINARY, AWAITING_REVIEW) and workflow.patched(EARLY_RESULT_PATCH)
        ):
            await self._lab_stage()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._announced()
        return self.state

    # --- the procedure -------------------------------------------------------------------

    async def _notify(self) -> None:
        if workflow.patched(NOTICE_PATCH):
            await self._notify_honestly()
            return
        now = workflow.now()
        closes = now + timedelta(hours=self.input.window_hours)
        self.state.notified_at = now.isoformat()
        self.state.window_closes_at = closes.isoformat()
        self.state.status = AWAITING_COLLECTION
        await workflow.execute_activity_method(
            ScreeningActivities.notify_participant,
            self._notification(closes),
            **ACTIVITY,
        )
        self._event("participant notified", detail=f"report by {closes.isoformat()}")
        await self._save()

    def _notification(self, closes: datetime) -> Notification:
        return Notification(
            notification_id=f"{self.state.screening_id}:test-required",
            participant_id=self.state.participant_id,
            screening_id=self.state.screening_id,
            kind="for-cause-test" if self.state.reason == "for-cause" else "test-required",
            report_by=closes.isoformat(),
            site=self.state.site,
        )

    async def _notify_honestly(self) -> None:
        """Tell the participant through the adapter, retrying until the window closes; the window ends at the
        site's closing time, never after. Staff get a call-list entry when the gateway fails or there is no phone."""
        now = workflow.now()
        closes = now + timedelta(hours=self.input.window_hours)
        if self.input.site_closes_at:
            closes = max(now, min(closes, datetime.fromisoformat(self.input.site_closes_at)))
        self.state.notified_at = now.isoformat()
        self.state.window_closes_at = closes.isoformat()
        self.state.status = AWAITING_COLLECTION
        notification = self._notification(closes)
        delay, on_call_list = NOTICE_RETRY_FIRST, False
        while self.state.status == AWAITING_COLLECTION:
            try:
                result = await workflow.execute_activity_method(
                    ScreeningActivities.notify_participant, notification, **ONE_ATTEMPT
                )
            except ActivityError as error:
                no_phone = getattr(error.cause, "type", None) == "NoPhone"
                if not on_call_list:
                    on_call_list = True
                    reason = "no phone number on record" if no_phone else "the SMS gateway did not take the notice"
                    await workflow.execute_activity_method(
                        ScreeningActivities.add_to_call_list,
                        CallListItem(
                            notification.notification_id,
                            self.state.participant_id,
                            self.state.screening_id,
                            f"{reason}; tell them to test by {closes.isoformat()}",
                            closes.isoformat(),
                        ),
                        **ACTIVITY,
                    )
                    self._event("notice not delivered", detail=f"{reason}: on the staff call list")
                    await self._save()
                if no_phone or workflow.now() + delay >= closes:
                    return
                if await self._wait_until(lambda: self.state.status != AWAITING_COLLECTION, workflow.now() + delay):
                    return
                delay = min(delay * 2, NOTICE_RETRY_MAX)
                continue
            if result.told_at:
                self.state.told_at = workflow.now().isoformat()
            what = "participant notified" if result.told_at else f"notice handed to the gateway ({result.status})"
            self._event(what, detail=f"report by {closes.isoformat()}")
            await self._save()
            return

    async def _await_collection(self) -> None:
        assert self.state.window_closes_at is not None and self.state.notified_at is not None  # set by _notify
        closes = datetime.fromisoformat(self.state.window_closes_at)
        collected_or_settled = lambda: self.state.status != AWAITING_COLLECTION  # noqa: E731
        if self.input.reminder_hours > 0 and workflow.patched(REMINDER_PATCH):
            remind_at = closes - timedelta(hours=self.input.reminder_hours)
            if remind_at > workflow.now():
                if await self._wait_until(collected_or_settled, remind_at):
                    return
                await self._remind(closes)
        if await self._wait_until(collected_or_settled, closes):
            return
        if workflow.patched(NOTICE_PATCH):
            assessment = await workflow.execute_activity_method(
                ScreeningActivities.assess_miss,
                MissQuestion(
                    self.state.screening_id,
                    self.state.participant_id,
                    f"{self.state.screening_id}:test-required",
                    self.state.day,
                    self.state.notified_at,
                    self.state.window_closes_at,
                    self.state.told_at,
                ),
                **ACTIVITY,
            )
            if self.state.status != AWAITING_COLLECTION:
                return  # collected or excused while the question was answered
            self.state.miss_detail = assessment.detail
            if not assessment.reportable:
                await self._unreportable(assessment.status, closes)
                return
        self.state.status = MISSED
        self.state.missed_at = workflow.now().isoformat()
        late_until = closes + timedelta(hours=self.input.late_grace_hours)
        self.state.late_until = late_until.isoformat()
        self._event("missed", detail=f"no collection by {closes.isoformat()}: a reportable no-show")
        await self._save()
        await self._tell_participant("missed")
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "missed-tests",
                self.state.screening_id,
                ReportFacts(scheduled_on=self.state.day, window_closed_at=closes.isoformat()),
            )
        )
        # A specimen collected late can still be recorded (flagged late) during the make-up period.
        await self._wait_until(lambda: self.state.status != MISSED, late_until)

    async def _remind(self, closes: datetime) -> None:
        """The reminder through the adapter: one attempt per activity, retried with backoff while the window is
        open and nothing is collected; every attempt is recorded. The notice's call-list entry (if any) stands."""
        notification = Notification(
            f"{self.state.screening_id}:reminder",
            self.state.participant_id,
            self.state.screening_id,
            "reminder",
            closes.isoformat(),
            self.state.site,
        )
        delay = NOTICE_RETRY_FIRST
        while self.state.status == AWAITING_COLLECTION:
            try:
                result = await workflow.execute_activity_method(
                    ScreeningActivities.notify_participant, notification, **ONE_ATTEMPT
                )
            except ActivityError as error:
                no_phone = getattr(error.cause, "type", None) == "NoPhone"
                if no_phone or workflow.now() + delay >= closes:
                    why = "no phone number on record" if no_phone else "the SMS gateway did not take it in time"
                    self._event("reminder not delivered", detail=why)
                    await self._save()
                    return
                if await self._wait_until(lambda: self.state.status != AWAITING_COLLECTION, workflow.now() + delay):
                    return
                delay = min(delay * 2, NOTICE_RETRY_MAX)
                continue
            self._event(
                "reminder sent" if result.told_at else f"reminder handed to the gateway ({result.status})",
                detail=f"report by {closes.isoformat()}",
            )
            await self._save()
            return

    async def _unreportable(self, status: str, closes: datetime) -> None:
        """Not a missed test: nothing is disclosed; staff decide (excuse, or a make-up test) within the make-up
        period."""
        self.state.status = status
        self.state.missed_at = workflow.now().isoformat()
        late_until = closes + timedelta(hours=self.input.late_grace_hours)
        self.state.late_until = late_until.isoformat()
        self._event(status.replace("-", " "), detail=f"{self.state.miss_detail}: not reportable, staff decide")
        await self._save()
        await self._alert(
            "miss-needs-decision", f"{self.state.screening_id}: {status}; excuse it or order a make-up test"
        )
        await self._wait_until(lambda: self.state.status != status, late_until)

    async def _lab_stage(self) -> None:
        """Results, review and the correction period, until nothing more can happen."""
        while True:
            status, seen = self.state.status, len(self.state.results) + len(self.state.reviews)

            def moved(status: str = status, seen: int = seen) -> bool:  # this pass's status and count
                return self.state.status != status or len(self.state.results) + len(self.state.reviews) != seen

            if status in (AWAITING_RESULT, PRELIMINARY):
                assert self.state.result_due_at is not None  # set with AWAITING_RESULT
                due = datetime.fromisoformat(self.state.result_due_at)
                if not self.state.result_overdue:
                    if not await self._wait_until(moved, due):
                        await self._alert(
                            "result-overdue",
                            f"no final lab result for specimen {self.state.specimen_id} "
                            f"by {due.isoformat()} (48 h standard)",
                        )
                        self.state.result_overdue = True
                        await self._save()
                    continue
                if not await self._wait_until(moved, due + RESULT_GIVE_UP):
                    self.state.status = NO_RESULT
                    self._event("no result", detail=f"the lab never sent a final result for {self.state.specimen_id}")
                    await self._save()
                    return
            elif status == AWAITING_REVIEW:
                assert self.state.review_due_at is not None  # set with AWAITING_REVIEW
                due = datetime.fromisoformat(self.state.review_due_at)
                if not self.state.review_overdue and not await self._wait_until(moved, due):
                    self.state.review_overdue = True
                    await self._alert(
                        "review-overdue",
                        f"result for {self.state.specimen_id} not reviewed by "
                        f"{due.isoformat()}; escalate to the medical director",
                    )
                    await self._save()
                    continue
                await workflow.wait_condition(moved)
            elif status == FINAL:
                # A corrected result may still come; after this long the workflow closes. A correction after
                # that reopens it (iop/reopen.py), with the period counted again from then.
                assert self.state.finalized_at is not None  # set with FINAL (_finalize)
                since = datetime.fromisoformat(self.state.finalized_at)
                if self.state.reopened_at is not None:
                    since = max(since, datetime.fromisoformat(self.state.reopened_at))
                closes = since + CORRECTION_PERIOD
                if not await self._wait_until(moved, closes):
                    return
            else:
                return

    async def _alert(self, kind: str, detail: str) -> None:
        self._event(kind.replace("-", " "), detail=detail)
        await workflow.execute_activity_method(
            RecordActivities.raise_alert,
            Alert(
                kind=kind, participant_id=self.state.participant_id, subject_id=self.state.screening_id, detail=detail
            ),
            **ACTIVITY,
        )

    async def _wait_until(self, condition: Callable[[], bool], deadline: datetime) -> bool:
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
        self.state.late_collection = self.state.status in (MISSED, NOT_NOTIFIED, WINDOW_LOST)
        breath_result = collection.specimen_type == "breath" and collection.breath_alcohol is not None
        if breath_result and workflow.patched(REPORT_BASIS_PATCH):
            await self._breath_result(collection)
            return self.state
        if collection.specimen_type == "breath":
            self.state.status = COMPLETED
        else:
            self.state.status = AWAITING_RESULT
            due = workflow.now() + timedelta(hours=self.input.result_due_hours)
            self.state.result_due_at = due.isoformat()
        what = "late collection recorded" if self.state.late_collection else "collection recorded"
        self._event(
            what,
            collection.actor,
            f"specimen {self.state.specimen_id} ({collection.specimen_type}"
            f"{', observed' if collection.observed else ', NOT observed'})",
        )
        await self._save()
        return self.state

    async def _breath_result(self, collection: Collection) -> None:
        """A breath alcohol test is its own result: read against the program's cutoff, final, and reported."""
        assert collection.collected_at is not None and collection.breath_alcohol is not None  # record_collection
        between = None
        if collection.breath_confirmation_at:
            between = (
                datetime.fromisoformat(collection.breath_confirmation_at)
                - datetime.fromisoformat(collection.collected_at)
            ).total_seconds()
        result = breath_alcohol_result(
            collection.breath_alcohol, collection.breath_confirmation, between, self.input.breath_alcohol_cutoff
        )
        self.state.breath_result = replace(result, device_id=collection.breath_device_id)
        what = "late collection recorded" if self.state.late_collection else "collection recorded"
        self._event(
            what,
            collection.actor,
            f"breath alcohol test {self.state.specimen_id}{', observed' if collection.observed else ', NOT observed'}",
        )
        self._finalize(
            FINAL_POSITIVE if result.outcome == "positive" else FINAL_NEGATIVE,
            f"breath alcohol: {result.reason}",
            collection.actor,
        )
        await self._announce_final()
        await self._save()

    @record_collection.validator
    def _validate_collection(self, collection: Collection) -> None:
        if collection.specimen_type not in SPECIMEN_TYPES:
            raise ApplicationError(
                f"unknown specimen type {collection.specimen_type!r}; use one of {', '.join(SPECIMEN_TYPES)}",
                type=INVALID,
            )
        self._refuse_when_reopened_for_excuse("a collection")
        status = self.state.status
        closed = (MISSED, NOT_NOTIFIED, WINDOW_LOST)
        if status in closed and not collection.late:
            recorded = "missed" if status == MISSED else f"{status} (not reportable)"
            raise ApplicationError(
                f"the collection window closed at {self.state.window_closes_at} and the screening was recorded "
                f"as {recorded}; if the specimen was collected after that, send it again with late=true and a "
                "late_reason",
                type=CONFLICT,
            )
        if collection.breath_confirmation is not None and not collection.breath_confirmation_at:
            raise ApplicationError(
                "a breath confirmation test needs breath_confirmation_at, the moment it was taken", type=INVALID
            )
        if status in closed and not collection.late_reason:
            raise ApplicationError("a late collection needs a late_reason", type=INVALID)
        # Scheduled: a for-cause test collected on the spot, before the notice went out.
        if status not in TAKES_COLLECTION:
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.update
    async def excuse(self, excuse: Excuse) -> ScreeningState:
        was_missed = self.state.status == MISSED
        self.state.status = EXCUSED
        self.state.excuse = excuse
        self._event("excused", excuse.actor, excuse.reason)
        await self._save()
        if was_missed and workflow.patched(REPORT_BASIS_PATCH):
            # The miss was reported: whoever was told gets its retraction.
            await disclose(
                DisclosureEvent(
                    self.state.participant_id,
                    "missed-tests",
                    self.state.screening_id,
                    ReportFacts(retracted=True, retraction_reason="excused"),
                )
            )
        return self.state

    @excuse.validator
    def _validate_excuse(self, excuse: Excuse) -> None:
        if not excuse.reason.strip():
            raise ApplicationError("an excuse needs a reason", type=INVALID)
        if self.state.status not in TAKES_COLLECTION:
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.update
    async def record_admission(self, admission: Admission) -> ScreeningState:
        """The participant admitted use instead of giving a specimen: a final positive whose basis is the admission,
        reported (under consent) with who witnessed it. It is a positive, not a confirmation (confirmed: false)."""
        admission.admitted_at = admission.admitted_at or workflow.now().isoformat()
        self.state.admission = admission
        self._event(
            "admission recorded",
            admission.actor,
            f"admitted use of {', '.join(admission.substances)}, witnessed by {admission.witnessed_by}",
        )
        self._finalize(FINAL_POSITIVE, "the participant's documented admission of use", admission.actor)
        await self._announce_final()
        await self._save()
        return self.state

    @record_admission.validator
    def _validate_admission(self, admission: Admission) -> None:
        if not admission.substances or any(not s.strip() for s in admission.substances):
            raise ApplicationError("an admission names what was used (substances)", type=INVALID)
        if not admission.witnessed_by.strip():
            raise ApplicationError("an admission names who witnessed it (witnessed_by)", type=INVALID)
        self._refuse_when_reopened_for_excuse("an admission")
        if self.state.status not in TAKES_COLLECTION:
            raise ApplicationError(
                self._already() + "; an admission stands in for a specimen not yet collected", type=CONFLICT
            )

    @workflow.update
    async def refuse(self, refusal: Refusal) -> ScreeningState:
        self.state.status = REFUSED
        self.state.refusal = refusal
        self._event("refusal recorded", refusal.actor, f"{refusal.kind}: {refusal.detail}")
        await self._save()
        await self._tell_participant("refused")
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "refusals",
                self.state.screening_id,
                ReportFacts(occurred_on=workflow.now().date().isoformat(), refusal_kind=refusal.kind),
            )
        )
        return self.state

    @refuse.validator
    def _validate_refusal(self, refusal: Refusal) -> None:
        if refusal.kind not in REFUSAL_KINDS:
            raise ApplicationError(
                f"unknown refusal kind {refusal.kind!r}; use one of {', '.join(REFUSAL_KINDS)}", type=INVALID
            )
        self._refuse_when_reopened_for_excuse("a refusal")
        if self.state.status not in TAKES_COLLECTION:
            raise ApplicationError(self._already(), type=CONFLICT)

    @workflow.update
    async def record_result(self, report: LabReport) -> ScreeningState:
        if any(entry.result_id == report.result_id for entry in self.state.results):
            return self.state  # the same result again: nothing changes
        interpretation = self._interpret(report)
        previous = next((r for r in reversed(self.state.results) if r.superseded_by is None), None)
        entry = ResultEntry(
            report.result_id,
            report.result_status,
            report.received_at,
            interpretation,
            held_codes=list(report.held_codes),
            methods=_methods(report),
            lab_id=report.lab_id,
        )
        status_words: dict[str, str] = {
            ResultStatus.PRELIMINARY: "preliminary",
            ResultStatus.FINAL: "final",
            ResultStatus.CORRECTED: "corrected",
        }
        status_word = status_words.get(report.result_status, report.result_status)
        if previous is not None and report.result_status != "P":
            previous.superseded_by, entry.corrects = entry.result_id, previous.result_id
        self.state.results.append(entry)
        self._event(
            f"{status_word} result received",
            "lab:" + report.lab_id,
            f"{interpretation.summary} (message {report.message_ref})",
        )
        request = self.state.confirmation_request
        if (
            request is not None
            and request.answered_by is None
            and report.result_status != "P"
            and answers_confirmation(interpretation.findings, request.analytes)
        ):
            request.answered_by, request.answered_at = entry.result_id, workflow.now().isoformat()
            self._event(
                "confirmation received",
                "lab:" + report.lab_id,
                f"result {entry.result_id} answers the request of {request.requested_at}",
            )
        if report.result_status == "P":
            # A preliminary result never becomes final; a later final one may still come.
            if self.state.status == AWAITING_RESULT:
                self.state.status = PRELIMINARY
            await self._save()
            return self.state
        if self.state.status == FINAL:
            self.state.corrected_after_final = True
            self._event("final result corrected", detail="reports already sent must be corrected")
        self.state.current_result_id = entry.result_id
        self.state.final_outcome = self.state.finalized_at = None
        if workflow.patched(RESULT_ANSWERED_ONCE_SAVED_PATCH):
            await self._conclude(entry, interpretation, announce_after_answer=True)
        else:
            await self._conclude(entry, interpretation)
        await self._save()
        return self.state

    def _interpret(self, report: LabReport) -> Interpretation:
        added: tuple[AddedAnalyte, ...] = ()
        # Reports recorded before issue 19 carry no added analytes, and replay as they ran.
        if report.added_analytes and workflow.patched(ADDED_ANALYTES_PATCH):
            added = tuple(report.added_analytes)
        return interpret(
            [
                AnalyteResult(a.analyte, a.value, a.qualitative, a.units, a.lab_cutoff, a.method)
                for a in report.analytes
            ],
            None,
            MedicationContext(expected=frozenset(report.expected_medications)),
            added=added,
        )

    async def _conclude(
        self, entry: ResultEntry, interpretation: Interpretation, announce_after_answer: bool = False
    ) -> None:
        """A final or corrected current result: final when negative, else (or while codes are held)
        awaiting review. With announce_after_answer a final outcome is announced by a task of this
        workflow that runs on after the caller's answer (RESULT_ANSWERED_ONCE_SAVED_PATCH)."""
        if entry.held_codes:
            self.state.status = AWAITING_REVIEW
            self.state.review_overdue = False
            self.state.review_due_at = (workflow.now() + REVIEW_DUE).isoformat()
            self._event(
                "awaiting held codes",
                detail="not final until each is mapped or marked not monitored: " + "; ".join(entry.held_codes),
            )
        elif interpretation.may_finalize_without_review:
            self._finalize(FINAL_NEGATIVE, "negative: final without review")
            if announce_after_answer:
                self._announcing.append(asyncio.create_task(self._announce_final(side_by_side=True)))
            else:
                await self._announce_final()
        else:
            self.state.status = AWAITING_REVIEW
            self.state.review_overdue = False
            self.state.review_due_at = (workflow.now() + REVIEW_DUE).isoformat()
            self._event(
                "awaiting review", detail=", ".join(f.code for f in interpretation.flags) or interpretation.overall
            )

    @workflow.update
    async def settle_held_codes(self, settled: SettledCodes) -> ScreeningState:
        """Staff mapped a held code (its analyte is now in the report) or marked it not monitored."""
        entry = next(r for r in self.state.results if r.result_id == settled.report.result_id)
        if settled.code not in entry.held_codes:
            return self.state  # settled already: nothing changes
        interpretation = self._interpret(settled.report)
        entry.interpretation = interpretation
        entry.methods = _methods(settled.report)
        entry.held_codes = [c for c in settled.report.held_codes if c != settled.code]
        self._event(f"held code {settled.resolution}", settled.actor, f"{settled.code}: {settled.note}")
        if (
            not entry.held_codes
            and entry.result_id == self.state.current_result_id
            and self.state.status == AWAITING_REVIEW
            and entry.result_status != "P"
        ):
            await self._conclude(entry, interpretation)
        await self._save()
        return self.state

    @settle_held_codes.validator
    def _validate_settled(self, settled: SettledCodes) -> None:
        if settled.resolution not in (QuarantineAction.MAPPED, QuarantineAction.NOT_MONITORED):
            raise ApplicationError(f"unknown resolution {settled.resolution!r}", type=INVALID)
        if not any(r.result_id == settled.report.result_id for r in self.state.results):
            raise ApplicationError(
                f"screening {self.state.screening_id} has no result {settled.report.result_id}", type=CONFLICT
            )

    @record_result.validator
    def _validate_result(self, report: LabReport) -> None:
        if report.result_status not in (ResultStatus.PRELIMINARY, ResultStatus.FINAL, ResultStatus.CORRECTED):
            raise ApplicationError(f"result status {report.result_status!r} is not P, F or C", type=INVALID)
        if self.state.collection is None or self.state.status in (EXCUSED, REFUSED, CANCELLED, COMPLETED):
            raise ApplicationError(
                f"screening {self.state.screening_id} is {self.state.status} and takes no lab result", type=CONFLICT
            )

    @workflow.update
    async def review(self, review: Review) -> ScreeningState:
        review.at = workflow.now().isoformat()
        if review.reverses and workflow.patched(REVIEW_REVERSAL_PATCH):
            await self._reverse(review)
            return self.state
        self.state.reviews.append(review)
        if review.decision in (ReviewDecision.CONFIRM, ReviewDecision.EXCUSE):
            outcome, why = self._decided(review)
            self._finalize(outcome, why, review.actor)
            await self._announce_final()
        else:
            # The participant's retest or the lab's confirmation is awaited as a new result.
            self.state.status = AWAITING_RESULT
            self.state.result_overdue = False
            self.state.result_due_at = (workflow.now() + timedelta(hours=self.input.result_due_hours)).isoformat()
            self._event(review.decision.replace("-", " "), review.actor, review.explanation)
            if review.decision == ReviewDecision.REQUEST_CONFIRMATION and workflow.patched(CONFIRMATION_REQUEST_PATCH):
                await self._request_confirmation(review)
        await self._save()
        return self.state

    def _decided(self, review: Review) -> tuple[FinalOutcome, str]:
        """The final outcome a confirm or an excuse decides on the current result, and why."""
        if review.decision == ReviewDecision.EXCUSE:
            return FINAL_EXPLAINED, f"legitimate explanation documented: {review.explanation}"
        current = self._current_result()
        overall: str = current.interpretation.overall if current else "incomplete"
        finals: dict[str, FinalOutcome] = {
            OverallOutcome.NON_NEGATIVE: FINAL_POSITIVE,
            OverallOutcome.REFUSAL: FINAL_REFUSAL,
            OverallOutcome.NEGATIVE: FINAL_NEGATIVE,
        }
        return finals.get(overall, FINAL_INVALID), f"confirmed by clinician review: {review.explanation}"

    def _deciding_review(self) -> Review | None:
        """The review that decided the final outcome as it stands (finalised at the same instant), if one did."""
        if self.state.status != FINAL:
            return None
        return next(
            (
                r
                for r in reversed(self.state.reviews)
                if r.decision in (ReviewDecision.CONFIRM, ReviewDecision.EXCUSE) and r.at == self.state.finalized_at
            ),
            None,
        )

    async def _reverse(self, review: Review) -> None:
        """A clinician reverses the review that decided this final result: the new decision stands, and whoever
        was told of the result is sent the amendment (or, if it may no longer be reported, the retraction)."""
        reversed_review = self._deciding_review()
        assert reversed_review is not None  # the validator
        self.state.reviews.append(review)
        was = self.state.final_outcome
        outcome, why = self._decided(review)
        self._event(
            "review reversed",
            review.actor,
            f"{reversed_review.decision} by {reversed_review.actor} at {reversed_review.at} ({was}) reversed: "
            f"{review.explanation}",
        )
        self._finalize(outcome, f"on reversal, {why}", review.actor)
        await self._announce_final()
        await self._save()

    async def _request_confirmation(self, review: Review) -> None:
        """Staff are asked (worklist) to have the lab confirm the screen; the item closes itself when the
        confirmatory result arrives. A program that reports presumptive screens reports this one now, worded
        as presumptive (activities.disclosure decides per program); the confirmed result amends it later."""
        current = self._current_result()
        findings = current.interpretation.findings if current else ()
        request = ConfirmationRequest(
            requested_at=workflow.now().isoformat(),
            actor=review.actor,
            result_id=current.result_id if current else None,
            lab_id=(current.lab_id if current else "") or "the lab",
            specimen_id=self.state.specimen_id,
            analytes=to_confirm(findings),
        )
        self.state.confirmation_request = request
        await self._alert(
            "confirmation-requested",
            f"ask {request.lab_id} to confirm specimen {request.specimen_id} (result {request.result_id})"
            f": {', '.join(request.analytes) or 'the screen'}; requested by {review.actor}",
        )
        collection = self.state.collection
        positives = sorted({f.analyte for f in findings if f.outcome in POSITIVE_OUTCOMES})
        basis = lab_basis(findings)
        if collection is None or collection.collected_at is None or not positives or basis in CONFIRMING_BASES:
            return  # nothing presumptive to report (a confirmed result is reported when the clinician decides)
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "screening-results",
                self.state.screening_id,
                ReportFacts(
                    collected_on=collection.collected_at[:10],
                    specimen_type=collection.specimen_type,
                    observed=collection.observed,
                    outcome="positive",
                    dilute=current is not None and current.interpretation.validity.status == "dilute",
                    positive_for=tuple(positives),
                    basis=basis,
                    confirmed=False,
                ),
            )
        )

    @review.validator
    def _validate_review(self, review: Review) -> None:
        if review.decision not in REVIEW_DECISIONS:
            raise ApplicationError(
                f"unknown decision {review.decision!r}; use one of {', '.join(REVIEW_DECISIONS)}", type=INVALID
            )
        if not review.explanation.strip():
            raise ApplicationError("a review needs a documented explanation", type=INVALID)
        if review.reverses:
            self._validate_reversal(review)
            return
        if self.state.status != AWAITING_REVIEW:
            hint = (
                "; to reverse the review that decided it, send reverses=true with the new decision and why"
                if self._deciding_review() is not None
                else ""
            )
            raise ApplicationError(
                f"screening {self.state.screening_id} is {self.state.status}, not awaiting review" + hint, type=CONFLICT
            )
        current = self._current_result()
        if (
            current is not None
            and current.held_codes
            and review.decision in (ReviewDecision.CONFIRM, ReviewDecision.EXCUSE)
        ):
            raise ApplicationError(
                "the result cannot be final while codes are held: map each or mark it not "
                "monitored in the lab quarantine first (" + "; ".join(current.held_codes) + ")",
                type=CONFLICT,
            )

    def _validate_reversal(self, review: Review) -> None:
        if review.decision not in (ReviewDecision.CONFIRM, ReviewDecision.EXCUSE):
            raise ApplicationError(
                f"a reversal decides the final result anew: use decision {ReviewDecision.CONFIRM} "
                f"or {ReviewDecision.EXCUSE}, not {review.decision}",
                type=INVALID,
            )
        if self.state.status != FINAL:
            raise ApplicationError(
                f"screening {self.state.screening_id} is {self.state.status}: only the review of a "
                "final result can be reversed (send reverses=false to review it)",
                type=CONFLICT,
            )
        deciding = self._deciding_review()
        if deciding is None:
            raise ApplicationError(
                f"the final outcome of screening {self.state.screening_id} "
                f"({self.state.final_outcome}) was not decided by a review: there is no review to "
                "reverse (a lab's corrected result changes it)",
                type=CONFLICT,
            )
        if deciding.decision == review.decision:
            raise ApplicationError(
                f"the review of {deciding.at} already decided {deciding.decision}: a reversal decides differently",
                type=CONFLICT,
            )

    def _current_result(self) -> ResultEntry | None:
        return next((r for r in self.state.results if r.result_id == self.state.current_result_id), None)

    async def _tell_participant(self, result: str) -> None:
        """Final outcomes count for take-home eligibility in the participant's medication orders."""
        outcome = ScreenOutcome(self.state.screening_id, self.state.day, result)
        try:
            await workflow.get_external_workflow_handle(participant_workflow_id(self.state.participant_id)).signal(
                "screen_final", outcome
            )
        except Exception:  # noqa: BLE001 - a discharged participant's workflow has closed
            workflow.logger.info("participant %s no longer running", self.state.participant_id)

    async def _announced(self) -> None:
        """Every announcement started after an answer has been made (their commands issued and resolved)."""
        while self._announcing:
            await self._announcing.pop(0)

    async def _announce_final(self, side_by_side: bool = False) -> None:
        """A final outcome goes to the medication orders and, under consent, to the recipients: one after
        the other, or (side_by_side) both at once, as RESULT_ANSWERED_ONCE_SAVED_PATCH does it."""
        told = self._final_result_for_medication()
        if not side_by_side:
            await self._tell_participant(told)
        event = self._disclosure_event()
        if side_by_side:
            await asyncio.gather(self._tell_participant(told), disclose(event))
        else:
            await disclose(event)

    def _disclosure_event(self) -> DisclosureEvent:
        """What the recipients are told of the final outcome (under their consent)."""
        state = self.state
        collection = state.collection
        assert state.final_outcome is not None  # _finalize came first
        if state.admission is not None and collection is None:
            admission = state.admission
            assert admission.admitted_at is not None  # set when the admission was recorded
            category, facts = (
                "screening-results",
                ReportFacts(
                    collected_on=admission.admitted_at[:10],
                    outcome="positive",
                    positive_for=tuple(sorted(admission.substances)),
                    basis=Basis.ADMITTED_USE.value,
                    confirmed=False,
                    admission_witnessed_by=admission.witnessed_by,
                ),
            )
        else:
            # Otherwise a final outcome of a collected specimen.
            assert collection is not None and collection.collected_at is not None
            collected_on = collection.collected_at[:10]
            if state.breath_result is not None:
                breath = state.breath_result
                category = "screening-results"
                if breath.outcome == "positive":
                    facts = ReportFacts(
                        collected_on=collected_on,
                        specimen_type="breath",
                        observed=collection.observed,
                        outcome=breath.outcome,
                        breath_alcohol=breath.bac,
                        device_id=breath.device_id,
                        basis=breath.basis,
                        confirmed=breath.basis in CONFIRMING_BASES,
                        positive_for=("ethanol",),
                    )
                else:
                    facts = ReportFacts(
                        collected_on=collected_on,
                        specimen_type="breath",
                        observed=collection.observed,
                        outcome=breath.outcome,
                        breath_alcohol=breath.bac,
                        device_id=breath.device_id,
                    )
            elif state.final_outcome == FINAL_REFUSAL:
                category, facts = (
                    "refusals",
                    ReportFacts(occurred_on=collected_on, refusal_kind="adulterated-or-substituted"),
                )
            else:
                current = self._current_result()
                findings = current.interpretation.findings if current else ()
                reported: dict[str, str] = {
                    FINAL_NEGATIVE: "negative",
                    FINAL_EXPLAINED: "negative",
                    FINAL_POSITIVE: "positive",
                }
                outcome = reported.get(state.final_outcome, "invalid")
                dilute = current is not None and current.interpretation.validity.status == "dilute"
                if outcome != "positive":
                    facts = ReportFacts(
                        collected_on=collected_on,
                        specimen_type=collection.specimen_type,
                        observed=collection.observed,
                        outcome=outcome,
                        dilute=dilute,
                    )
                else:
                    positive_for = tuple(sorted({f.analyte for f in findings if f.outcome in POSITIVE_OUTCOMES}))
                    if workflow.patched(REPORT_BASIS_PATCH):
                        # A clinician's "confirm" finalises the result; only a confirmatory method confirms it.
                        basis = lab_basis(findings)
                        facts = ReportFacts(
                            collected_on=collected_on,
                            specimen_type=collection.specimen_type,
                            observed=collection.observed,
                            outcome=outcome,
                            dilute=dilute,
                            confirmed=basis in CONFIRMING_BASES,
                            positive_for=positive_for,
                            basis=basis,
                        )
                    else:
                        facts = ReportFacts(
                            collected_on=collected_on,
                            specimen_type=collection.specimen_type,
                            observed=collection.observed,
                            outcome=outcome,
                            dilute=dilute,
                            confirmed=True,
                            positive_for=positive_for,
                        )
                category = "screening-results"
        return DisclosureEvent(
            state.participant_id, category, state.screening_id, facts, corrects_event=state.corrected_after_final
        )

    def _final_result_for_medication(self) -> str:
        current = self._current_result()
        flags = {f.code for f in current.interpretation.flags} if current else set()
        assert self.state.final_outcome is not None  # _finalize came first
        if self.state.final_outcome in (FINAL_NEGATIVE, FINAL_EXPLAINED):
            return "expected-absent" if "expected-absent" in flags else "negative"
        words: dict[str, str] = {FINAL_POSITIVE: "positive", FINAL_REFUSAL: "refused"}
        return words.get(self.state.final_outcome, "invalid")

    def _finalize(self, outcome: str, why: str, actor: str = "system") -> None:
        now = workflow.now()
        self.state.status = FINAL
        self.state.final_outcome = outcome
        self.state.finalized_at = now.isoformat()
        # A final result is of a collected specimen, or of an admission (no specimen, so no turnaround).
        if self.state.collection is not None and self.state.collection.collected_at is not None:
            collected = datetime.fromisoformat(self.state.collection.collected_at)
            self.state.turnaround_hours = round((now - collected).total_seconds() / 3600, 2)
        self._event(f"final: {outcome}", actor, why)

    @workflow.signal
    async def cancel(self, reason: str) -> None:
        """From the participant's workflow at discharge: a test not yet collected is moot."""
        if self.state.status in TAKES_COLLECTION and not self._reopened_for_excuse():
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

    def _reopened_for_excuse(self) -> bool:
        """A run reopened after the make-up period of a test not collected (iop/reopen.py): it takes an excuse only."""
        return self.state.reopened_at is not None and self.state.status in TAKES_COLLECTION

    def _refuse_when_reopened_for_excuse(self, what: str) -> None:
        if self._reopened_for_excuse():
            raise ApplicationError(
                f"the make-up period of screening {self.state.screening_id} is over "
                f"({self.state.status}); {what} is no longer taken, only an excuse",
                type=CONFLICT,
            )

    def _event(self, what: str, actor: str = "system", detail: str = "") -> None:
        self.state.events.append(ScreeningEvent(workflow.now().isoformat(), what, actor or "system", detail))

    async def _save(self) -> None:
        self.state.revision += 1
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        # A local activity: a short idempotent write to the worker's own database.
        await workflow.execute_local_activity_method(ScreeningActivities.save_screening, self.state, **ACTIVITY)


def _methods(report: LabReport) -> list[AnalyteMethod]:
    return [
        AnalyteMethod(a.code, a.analyte, a.method, a.method_basis, a.method_note)
        for a in report.analytes
        if a.method_basis is not None
    ]
