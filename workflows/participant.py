"""ParticipantWorkflow: one per participant, alive for the whole program.

Each program day, at a random minute of the clinic's hours, it draws whether the participant is
tested that day and, if so, starts a ScreeningWorkflow. Nothing about a day is decided before
that minute, so no future selection can leak. Every draw is recorded with its rolls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.colours import ColourActivities
    from activities.disclosure import DisclosureActivities
    from activities.medication import MedicationActivities
    from activities.programs import ProgramActivities
    from activities.records import RecordActivities
    from activities.screenings import ScreeningActivities
    from activities.selection import SelectionActivities
    from domain import verifiable
    from domain.clock import local_clock, local_clock_named, local_date, local_moment
    from domain.colours import participant_verdict
    from domain.plan import PHASES, TestingPlan, default_plan, hours_for
    from domain.report_facts import PhaseChangeEntry, ReportFacts
    from domain.selection import WINDOW_DAYS, Draw, DrawInputs, draw_day, is_collection_day, notification_time
    from domain.takehome import get_rules
    from domain.vocab import DISCHARGE_STATUSES, DischargeKind
    from workflows import search
    from workflows.contracts.disclosure import DisclosureEvent
    from workflows.contracts.errors import CONFLICT, INVALID
    from workflows.contracts.medication import MedicationInput, MedicationStart, ScreenOutcome
    from workflows.contracts.participant import (
        ACTIVE,
        CheckIn,
        CheckInAnswer,
        CheckInDay,
        ColourDayRequest,
        Discharge,
        DrawRecord,
        ForCause,
        ParticipantInput,
        ParticipantState,
        ParticipantSync,
        Pause,
        PhaseChange,
        PhaseEntry,
        ProgramDayRequest,
        RollRequest,
        ScreeningRef,
        participant_workflow_id,
    )
    from workflows.contracts.screening import ScreeningInput
    from workflows.disclosure import disclose
    from workflows.medication import MedicationWorkflow
    from workflows.medication import workflow_id as medication_workflow_id
    from workflows.options import ActivityOptions
    from workflows.screening import ScreeningWorkflow
    from workflows.screening import workflow_id as screening_workflow_id

# Record writes are short, idempotent and local to the worker's database: local activities,
# which skip a round trip through the server's task queues.
RECORD_WRITE: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
# A workflow started by an enrollment whose database transaction then failed has no record: it
# gives up after a few minutes instead of running a program for nobody.
CONFIRM_ENROLLMENT: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), backoff_coefficient=2.0, maximum_attempts=6),
)
KEEP_SCREENING_REFS_DAYS = 30
# Continue as new at this history length even where the server never suggests it (the
# time-skipping test server does not); far below Temporal's 50k-event limit.
HISTORY_LIMIT = 10_000
MAX_PAUSE_DAYS = 120
# The program as data (patch PROGRAM_PATCH): each day's plan is read from the stored program when the
# day's wait begins and kept for the whole day; screenings' windows end at the site's closing time.
PROGRAM_PATCH = "program-as-data"
# Verifiable selection (patch VERIFIABLE_PATCH): the day's minute and outcome come from HMAC rolls of the
# period's committed seed (domain/verifiable.py), computed in an activity; the seed never enters the history.
# The minute's roll is taken before the wait (it is in this history: the workflow history endpoint is for
# admins and auditors only, and payloads are encrypted at the server); the outcome's roll only at the minute.
VERIFIABLE_PATCH = "verifiable-selection"
# The argument of a signal to the medication orders (_tell_medications).
_Arg = TypeVar("_Arg")
# A required check-in not made, on a day the program made that reportable, is disclosed under consent as a
# missed check-in (category missed-check-ins); before this patch it was recorded and alerted only.
MISSED_CHECK_IN_PATCH = "missed-check-in-disclosed"
# Colour mode (domain/colours.py): in a program that publishes daily colours the day's draw is made at opening
# and the participant is tested when their colour is called. Only plans of colour-mode programs take this path.
COLOUR_PATCH = "colour-mode"


def workflow_id(participant_id: str) -> str:
    return participant_workflow_id(participant_id)


def plan_for_phase(phase: str, clinic: TestingPlan) -> TestingPlan:
    """The new phase's testing rates, keeping the clinic's calendar and time zone."""
    return replace(
        default_plan(phase),
        collection_weekdays=clinic.collection_weekdays,
        opens_at=clinic.opens_at,
        closes_at=clinic.closes_at,
        closed_dates=clinic.closed_dates,
        timezone=clinic.timezone,
        breath_alcohol_cutoff=clinic.breath_alcohol_cutoff,
    )


def phase_entries(state: ParticipantState, since: date | None) -> tuple[PhaseChangeEntry, ...]:
    """Phase changes in a period, led by the phase held when it began."""
    entries = [PhaseChangeEntry(p.phase, p.since[:10]) for p in state.phase_history]
    if since is None:
        return tuple(entries)
    before = [e for e in entries if e.effective_on < since.isoformat()]
    return tuple(before[-1:] + [e for e in entries if e.effective_on >= since.isoformat()])


def monthly_summary_event(state: ParticipantState, first_of_month: date) -> DisclosureEvent:
    """The summary of the month before `first_of_month` (sent on the first draw of a month)."""
    last = first_of_month - timedelta(days=1)
    start = max(last.replace(day=1), date.fromisoformat(state.start_date))
    return DisclosureEvent(
        state.participant_id,
        "periodic-summary",
        f"summary-{last:%Y-%m}",
        ReportFacts(
            month=f"{last:%Y-%m}",
            period_start=start.isoformat(),
            period_end=last.isoformat(),
            phase_changes=phase_entries(state, start),
        ),
    )


@workflow.defn(name="ParticipantWorkflow")
class ParticipantWorkflow:
    @workflow.init
    def __init__(self, input: ParticipantInput) -> None:
        self.state = input.state
        if not self.state.phase_history:
            self.state.phase_history.append(
                PhaseEntry(self.state.phase, workflow.now().isoformat(), "enrolled", "enrollment")
            )
        self._replan = False  # set when an update may move the next draw

    @workflow.run
    async def run(self, input: ParticipantInput) -> ParticipantState:
        if not input.continued:
            if not await self._enrollment_recorded():
                self.state.status = "enrollment-abandoned"
                return self.state
        while self.state.status == ACTIVE and not self._history_is_long():
            day = await self._next_draw_day()
            moment = self._draw_moment(day)
            self._replan = False
            wait = (moment - workflow.now()).total_seconds()
            if wait > 0:
                try:
                    await workflow.wait_condition(
                        lambda: self._replan or self.state.status != ACTIVE or self._history_is_long(),
                        timeout=wait,
                    )
                    continue  # something changed before the draw: plan again
                except TimeoutError:
                    pass
            await self._draw(day)
        # Updates still running must finish in this run, or their callers see them fail.
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.state.status != ACTIVE:
            return self.state
        self.state.runs += 1
        workflow.continue_as_new(ParticipantInput(state=self.state, continued=True))

    @staticmethod
    def _history_is_long() -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT

    # --- the daily draw ------------------------------------------------------------------

    def _today(self) -> date:
        return local_date(workflow.now(), self.state.timezone)

    def _roll(self) -> float:
        return workflow.random().random()

    async def _next_draw_day(self) -> date:
        if workflow.patched(VERIFIABLE_PATCH):
            return await self._next_verifiable_draw_day()
        day = self._plan_next_draw_day()
        if self.state.day_plan_for != day.isoformat() and workflow.patched(PROGRAM_PATCH):
            await self._fetch_day_plan(day)
        return day

    async def _next_verifiable_draw_day(self) -> date:
        first = self.state.next_draw_day is None
        if first:
            self.state.next_draw_day = max(date.fromisoformat(self.state.start_date), self._today()).isoformat()
            self.state.pending_time_roll = None
        while True:
            assert self.state.next_draw_day is not None  # set above, and on every turn of the loop
            day = date.fromisoformat(self.state.next_draw_day)
            if self.state.day_plan_for != day.isoformat() and workflow.patched(PROGRAM_PATCH):
                await self._fetch_day_plan(day)
            if self.state.pending_time_roll is None:
                self.state.pending_time_roll = await self._verifiable_roll(day, verifiable.MINUTE)
                self.state.verifiable_roll_for = day.isoformat()
            # Enrolled after today's draw time: the first draw is tomorrow's.
            if first and day == self._today() and self._draw_moment(day) < workflow.now():
                first = False
                self.state.next_draw_day = (day + timedelta(days=1)).isoformat()
                self.state.pending_time_roll = None
                continue
            return day

    async def _verifiable_roll(self, day: date, purpose: str) -> float:
        return await workflow.execute_local_activity_method(
            SelectionActivities.selection_roll,
            RollRequest(self.state.program, self.state.participant_id, day.isoformat(), purpose),
            **RECORD_WRITE,
        )

    async def _fetch_day_plan(self, day: date) -> None:
        """Fix the day's plan from the program's current version (None: the program is not stored)."""
        effective = self.state.plan
        if (
            self.state.next_plan is not None
            and self.state.next_plan_from
            and day >= date.fromisoformat(self.state.next_plan_from)
        ):
            effective = self.state.next_plan
        found = await workflow.execute_local_activity_method(
            ProgramActivities.plan_for_day,
            ProgramDayRequest(self.state.program, self.state.site, effective.phase, day.isoformat()),
            **RECORD_WRITE,
        )
        self.state.day_plan = found.plan if found is not None else None
        self.state.day_plan_for = day.isoformat()
        if found is not None:
            self.state.phases = found.phases

    def _plan_next_draw_day(self) -> date:
        if self.state.next_draw_day is None:
            first = max(date.fromisoformat(self.state.start_date), self._today())
            self.state.pending_time_roll = self._roll()
            # Enrolled after today's draw time: the first draw is tomorrow's.
            if self._draw_moment(first) < workflow.now() and first == self._today():
                first += timedelta(days=1)
            self.state.next_draw_day = first.isoformat()
        if self.state.pending_time_roll is None:
            self.state.pending_time_roll = self._roll()
        return date.fromisoformat(self.state.next_draw_day)

    def _plan_for(self, day: date) -> TestingPlan:
        if self.state.day_plan is not None and self.state.day_plan_for == day.isoformat():
            return self.state.day_plan
        if (
            self.state.next_plan is not None
            and self.state.next_plan_from
            and day >= date.fromisoformat(self.state.next_plan_from)
        ):
            return self.state.next_plan
        return self.state.plan

    @staticmethod
    def _colour_mode(plan: TestingPlan) -> bool:
        return plan.selection_mode == "colour" and workflow.patched(COLOUR_PATCH)

    def _draw_moment(self, day: date) -> datetime:
        plan = self._plan_for(day)
        if self._paused(day) or not is_collection_day(plan, day):
            clock = time.fromisoformat(plan.opens_at)
        elif self._colour_mode(plan):  # the colours are called at opening: a whole day to come and test
            clock = time.fromisoformat(hours_for(plan, day.weekday())[0])
        else:
            clock = notification_time(plan, day, self.state.pending_time_roll or 0.0)
        return local_moment(day, clock, self.state.timezone)

    def _paused(self, day: date) -> bool:
        return any(date.fromisoformat(p.start) <= day <= date.fromisoformat(p.end) for p in self.state.pauses)

    def _history_start(self, day: date) -> date:
        """First day of the unbroken run under the current plan: the floor only counts from there."""
        start = date.fromisoformat(self.state.plan_since or self.state.start_date)
        for pause in self.state.pauses:
            after = date.fromisoformat(pause.end) + timedelta(days=1)
            if start < after <= day:
                start = after
        return start

    async def _draw(self, day: date) -> None:
        if (
            self.state.next_plan is not None
            and self.state.next_plan_from
            and day >= date.fromisoformat(self.state.next_plan_from)
        ):
            self.state.plan, self.state.plan_since = self.state.next_plan, self.state.next_plan_from
            self.state.next_plan = self.state.next_plan_from = None
        if self.state.day_plan is not None and self.state.day_plan_for == day.isoformat():
            self.state.plan = self.state.day_plan
        plan = self.state.plan
        time_roll = self.state.pending_time_roll or 0.0
        verifiable_day = workflow.patched(VERIFIABLE_PATCH)
        # Asked for only now, at the draw minute: until this moment the outcome exists nowhere.
        roll = await self._verifiable_roll(day, verifiable.SELECT) if verifiable_day else self._roll()
        verifiable_day = verifiable_day and self.state.verifiable_roll_for == day.isoformat()
        recent = [d for d in self.state.recent_selections if (day - date.fromisoformat(d)).days < WINDOW_DAYS]
        draw = draw_day(
            plan,
            day,
            roll,
            [date.fromisoformat(d) for d in self.state.recent_selections],
            self._paused(day),
            history_start=self._history_start(day),
        )
        if self._colour_mode(plan) and is_collection_day(plan, day):
            colour = await workflow.execute_local_activity_method(
                ColourActivities.colour_day,
                ColourDayRequest(
                    self.state.program,
                    plan.program_version,
                    self.state.site,
                    day.isoformat(),
                    self.state.participant_id,
                ),
                **RECORD_WRITE,
            )
            if colour is not None:  # else an edit left colour mode: the participant's own draw stands
                verdict = participant_verdict(colour.own, colour.colours, True, self._paused(day))
                draw = Draw(
                    day.isoformat(),
                    day.weekday(),
                    colour.own_probability,
                    roll,
                    verdict.selected,
                    verdict.reason,
                    verdict.detail[:400],
                )
                verifiable_day = False  # the colours' rolls are kept with the day's colours (colour_days)
        inputs = None
        if verifiable_day:
            inputs = DrawInputs(self.state.plan, tuple(recent), self._paused(day), self._history_start(day).isoformat())
        screening_id = None
        if draw.selected:
            screening_id = f"s-{self.state.participant_id.removeprefix('p-')}-{day:%Y%m%d}"
            await self._start_screening(
                screening_id, day, "random", plan.collection_window_hours, draw.detail, plan=plan
            )
            self.state.recent_selections = (self.state.recent_selections + [day.isoformat()])[-WINDOW_DAYS:]
        await workflow.execute_local_activity_method(
            ScreeningActivities.record_draw,
            DrawRecord(
                participant_id=self.state.participant_id,
                day=draw.day,
                phase=plan.phase,
                weekday=draw.weekday,
                probability=draw.probability,
                roll=draw.roll,
                time_roll=time_roll,
                selected=draw.selected,
                reason=draw.reason,
                detail=draw.detail,
                screening_id=screening_id,
                program_id=plan.program_id or None,
                program_version=plan.program_version if plan.program_id else None,
                verifiable=verifiable_day,
                inputs=inputs,
                draw_minute=local_clock(self._draw_moment(day), self.state.timezone) if verifiable_day else None,
            ),
            **RECORD_WRITE,
        )
        self.state.draws_recorded += 1
        await self._close_check_in_day(day - timedelta(days=1))
        if day.day == 1 and day > date.fromisoformat(self.state.start_date):
            await self._monthly_summary(day)
        self.state.next_draw_day = (day + timedelta(days=1)).isoformat()
        self.state.pending_time_roll = None
        self.state.verifiable_roll_for = None

    async def _monthly_summary(self, first_of_month: date) -> None:
        await disclose(monthly_summary_event(self.state, first_of_month))

    def _phase_entries(self, since: date | None) -> tuple[PhaseChangeEntry, ...]:
        return phase_entries(self.state, since)

    async def _start_screening(
        self,
        screening_id: str,
        day: date,
        reason: str,
        window_hours: float,
        detail: str,
        for_cause_reason: str | None = None,
        plan: TestingPlan | None = None,
    ) -> ScreeningRef:
        now = workflow.now()
        selected = ScreeningInput(
            screening_id=screening_id,
            participant_id=self.state.participant_id,
            site=self.state.site,
            day=day.isoformat(),
            reason=reason,
            selected_at=now.isoformat(),
            window_hours=window_hours,
            timezone=self.state.timezone,
            for_cause_reason=for_cause_reason,
            selection_detail=detail,
        )
        if plan is not None and workflow.patched(PROGRAM_PATCH) and is_collection_day(plan, day):
            closing = local_moment(day, time.fromisoformat(hours_for(plan, day.weekday())[1]), self.state.timezone)
            if closing > now:  # a for-cause test ordered after closing keeps its full window
                selected.site_closes_at = closing.isoformat()
                window_hours = min(window_hours, (closing - now).total_seconds() / 3600)
            selected.late_grace_hours = plan.make_up_hours
            selected.reminder_hours = plan.reminder_hours_before_close
        if plan is not None:
            # The program's breath alcohol cutoff (data only: the same commands either way).
            selected.breath_alcohol_cutoff = plan.breath_alcohol_cutoff
        await workflow.execute_local_activity_method(ScreeningActivities.open_screening, selected, **RECORD_WRITE)
        await workflow.start_child_workflow(
            ScreeningWorkflow.run,
            selected,
            id=screening_workflow_id(screening_id),
            # Screenings outlive this run: the participant's workflow continues as new.
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        ref = ScreeningRef(screening_id, day.isoformat(), reason, (now + timedelta(hours=window_hours)).isoformat())
        cutoff = (day - timedelta(days=KEEP_SCREENING_REFS_DAYS)).isoformat()
        self.state.screenings = [s for s in self.state.screenings if s.day >= cutoff] + [ref]
        return ref

    async def _close_check_in_day(self, day: date) -> None:
        if day < date.fromisoformat(self.state.start_date):
            return
        key = day.isoformat()
        check_in = self.state.check_ins.get(key)
        plan = self.state.plan
        required = plan.check_in_required and is_collection_day(plan, day) and not self._paused(day)
        await workflow.execute_local_activity_method(
            ScreeningActivities.record_check_in_day,
            CheckInDay(
                self.state.participant_id,
                key,
                check_in.at if check_in else None,
                check_in.method if check_in else None,
                required,
                required and plan.missed_check_in_reportable,
            ),
            **RECORD_WRITE,
        )
        if (
            required
            and plan.missed_check_in_reportable
            and check_in is None
            and workflow.patched(MISSED_CHECK_IN_PATCH)
        ):
            closes = hours_for(plan, day.weekday())[1]
            await disclose(
                DisclosureEvent(
                    self.state.participant_id,
                    "missed-check-ins",
                    f"missed-check-in-{key}",
                    ReportFacts(
                        scheduled_on=key,
                        due_by=local_moment(day, time.fromisoformat(closes), self.state.timezone).isoformat(),
                    ),
                )
            )
        week_ago = (day - timedelta(days=WINDOW_DAYS)).isoformat()
        self.state.check_ins = {d: v for d, v in self.state.check_ins.items() if d > week_ago}

    # --- check-ins, for-cause tests, pauses ----------------------------------------------

    @workflow.update
    def check_in(self, check_in: CheckIn) -> CheckInAnswer:
        today = self._today()
        check_in.at = workflow.now().isoformat()
        self.state.check_ins.setdefault(today.isoformat(), check_in)
        todays = [s for s in self.state.screenings if s.day == today.isoformat()]
        if todays:
            latest = todays[-1]
            by = local_clock_named(datetime.fromisoformat(latest.report_by), self.state.timezone)  # '13:06 EST'
            return CheckInAnswer(
                self.state.participant_id,
                today.isoformat(),
                True,
                latest.screening_id,
                latest.report_by,
                f"You must test today. Report to the clinic by {by}.",
            )
        if self._paused(today):
            message = "Testing is paused for you today. Keep checking in daily."
        else:
            plan = self._plan_for(today)
            last_call = local_clock_named(
                local_moment(today, time.fromisoformat(self._last_call(plan)), self.state.timezone), self.state.timezone
            )
            message = (
                f"No test has been called for you as of now. Tests are called until "
                f"{last_call}; check in again if you have not yet today."
            )
            if plan.selection_mode == "colour":
                message = (
                    f"Today's colours are called when the clinic opens ({hours_for(plan, today.weekday())[0]});"
                    " check in again then."
                )
            if self.state.next_draw_day and date.fromisoformat(self.state.next_draw_day) > today:
                message = "No test today. Check in again tomorrow."
        return CheckInAnswer(self.state.participant_id, today.isoformat(), False, None, None, message)

    @check_in.validator
    def _validate_check_in(self, check_in: CheckIn) -> None:
        self._require_active("check in")

    @staticmethod
    def _last_call(plan: TestingPlan) -> str:
        opens = time.fromisoformat(plan.opens_at)
        closes = time.fromisoformat(plan.closes_at)
        latest = max(
            opens.hour * 60 + opens.minute, closes.hour * 60 + closes.minute - round(plan.collection_window_hours * 60)
        )
        return f"{latest // 60:02d}:{latest % 60:02d}"

    @workflow.update
    async def order_for_cause(self, request: ForCause) -> ScreeningRef:
        self.state.for_cause_count += 1
        today = self._today()
        screening_id = f"s-{self.state.participant_id.removeprefix('p-')}-{today:%Y%m%d}-c{self.state.for_cause_count}"
        plan = self._plan_for(today)
        return await self._start_screening(
            screening_id,
            today,
            "for-cause",
            plan.collection_window_hours,
            f"for cause, ordered by {request.actor}",
            request.reason,
            plan=plan,
        )

    @order_for_cause.validator
    def _validate_for_cause(self, request: ForCause) -> None:
        self._require_active("order a for-cause test")
        if not request.reason.strip():
            raise ApplicationError("a for-cause test needs a reason", type=INVALID)

    @workflow.update
    def pause(self, pause: Pause) -> ParticipantState:
        self.state.pauses.append(pause)
        self._replan = True
        return self.state

    @pause.validator
    def _validate_pause(self, pause: Pause) -> None:
        self._require_active("pause testing")
        try:
            start, end = date.fromisoformat(pause.start), date.fromisoformat(pause.end)
        except ValueError as exc:
            raise ApplicationError(f"pause dates must be YYYY-MM-DD: {exc}", type=INVALID) from None
        if end < start:
            raise ApplicationError("a pause cannot end before it starts", type=INVALID)
        if end < self._today():
            raise ApplicationError("a pause must not lie wholly in the past", type=INVALID)
        if (end - start).days + 1 > MAX_PAUSE_DAYS:
            raise ApplicationError(
                f"a pause may last at most {MAX_PAUSE_DAYS} days; add another after review", type=INVALID
            )
        if not pause.reason.strip():
            raise ApplicationError("a pause needs a reason (e.g. hospital stay, approved travel)", type=INVALID)
        for other in self.state.pauses:
            if start <= date.fromisoformat(other.end) and date.fromisoformat(other.start) <= end:
                raise ApplicationError(f"overlaps the pause {other.start}..{other.end} ({other.reason})", type=CONFLICT)

    # --- medication ----------------------------------------------------------------------

    @workflow.update
    async def start_medication(self, start: MedicationStart) -> str:
        order = start.order
        self.state.medications.append(order.order_id)
        medication = MedicationInput(
            order=start.order,
            participant_id=self.state.participant_id,
            site=self.state.site,
            timezone=self.state.timezone,
            rules=start.rules,
            treatment_start=start.treatment_start or order.start_date,
            closed_days=list(start.closed_days),
        )
        # The record exists before the order's workflow runs, so staff see it at once.
        await workflow.execute_local_activity_method(MedicationActivities.open_order, medication, **RECORD_WRITE)
        await workflow.start_child_workflow(
            MedicationWorkflow.run,
            medication,
            id=medication_workflow_id(order.order_id),
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        return order.order_id

    @start_medication.validator
    def _validate_medication(self, start: MedicationStart) -> None:
        self._require_active("start a medication order")
        try:
            get_rules(start.rules)
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID) from None
        order = start.order
        if order.participant_id != self.state.participant_id:
            raise ApplicationError("the order names another participant", type=INVALID)
        if order.order_id in self.state.medications:
            raise ApplicationError(f"order {order.order_id} is already running", type=CONFLICT)

    @workflow.signal
    async def screen_final(self, outcome: ScreenOutcome) -> None:
        """A screening reached its final outcome: every medication order weighs it."""
        await self._tell_medications(MedicationWorkflow.screen_result, outcome)

    async def _tell_medications(
        self, signal: Callable[[MedicationWorkflow, _Arg], Awaitable[None]], argument: _Arg
    ) -> None:
        for order_id in self.state.medications:
            try:
                await workflow.get_external_workflow_handle(medication_workflow_id(order_id)).signal(signal, argument)
            except Exception:  # noqa: BLE001 - a stopped order has closed: nothing to tell it
                workflow.logger.info("medication order %s already closed", order_id)

    # --- phase ---------------------------------------------------------------------------

    @workflow.update
    async def change_phase(self, change: PhaseChange) -> ParticipantState:
        self.state.phase = change.phase
        # The new rate applies from the next program day; today's draw keeps today's plan.
        if change.phase in PHASES:
            self.state.next_plan = plan_for_phase(change.phase, self.state.plan)
        else:  # a phase of a stored program: its rates come with the next day's plan (_fetch_day_plan)
            self.state.next_plan = replace(self.state.plan, phase=change.phase)
        self.state.next_plan_from = (self._today() + timedelta(days=1)).isoformat()
        self.state.phase_history.append(
            PhaseEntry(change.phase, workflow.now().isoformat(), change.reason, change.actor)
        )
        previous = self.state.phase_history[-2].phase if len(self.state.phase_history) > 1 else None
        workflow.upsert_search_attributes([search.PHASE.value_set(change.phase)])
        self._replan = True
        await self._sync_record()
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "phase-changes",
                f"phase-change-{len(self.state.phase_history) - 1}",
                ReportFacts(from_phase=previous, to_phase=change.phase, effective_on=self.state.next_plan_from),
            )
        )
        return self.state

    @change_phase.validator
    def _validate_phase(self, change: PhaseChange) -> None:
        self._require_active("change the phase")
        phases = self.state.phases or list(PHASES)
        if change.phase not in phases:
            raise ApplicationError(f"unknown phase {change.phase!r}; phases are {', '.join(phases)}", type=INVALID)
        if change.phase == self.state.phase:
            raise ApplicationError(f"the participant is already in {change.phase}", type=CONFLICT)

    # --- discharge -----------------------------------------------------------------------

    @workflow.update
    async def discharge(self, request: Discharge) -> ParticipantState:
        self.state.status = DISCHARGE_STATUSES[DischargeKind(request.kind)]  # checked by the validator
        self.state.discharge_kind = request.kind
        self.state.discharge_reason = request.reason
        self.state.discharged_at = workflow.now().isoformat()
        self.state.discharged_by = request.actor
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        await self._cancel_open_screenings(f"participant discharged ({request.kind})")
        await self._tell_medications(MedicationWorkflow.participant_discharged, request.kind)
        await self._sync_record()
        completed = request.kind == "completed"
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "program-status",
                "program-status",
                ReportFacts(
                    status="completed" if completed else "discharged",
                    effective_on=self.state.discharged_at,
                    discharge_kind=request.kind,
                    phase_changes=self._phase_entries(None),
                ),
            )
        )
        # Consents that end on discharge (or completion) end now, after the report above was planned.
        await workflow.execute_local_activity_method(
            DisclosureActivities.record_consent_event,
            args=[self.state.participant_id, "completion" if completed else "discharge", self.state.discharged_at],
            **RECORD_WRITE,
        )
        return self.state

    @discharge.validator
    def _validate_discharge(self, request: Discharge) -> None:
        self._require_active("discharge")
        if request.kind not in DISCHARGE_STATUSES:
            kinds = ", ".join(DISCHARGE_STATUSES)
            raise ApplicationError(f"unknown discharge kind {request.kind!r}; kinds are {kinds}", type=INVALID)

    async def _cancel_open_screenings(self, reason: str) -> None:
        # A screening still awaiting collection is moot; one already collected keeps its result.
        # Those already closed refuse the signal, which is fine.
        for ref in self.state.screenings:
            try:
                await workflow.get_external_workflow_handle(screening_workflow_id(ref.screening_id)).signal(
                    ScreeningWorkflow.cancel, reason
                )
            except Exception:  # noqa: BLE001 - a closed screening cannot be signalled
                workflow.logger.info("screening %s already closed", ref.screening_id)

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

    async def _enrollment_recorded(self) -> bool:
        try:
            await workflow.execute_activity_method(
                RecordActivities.confirm_enrollment, self.state.participant_id, **CONFIRM_ENROLLMENT
            )
        except ActivityError:
            return False
        return True

    async def _sync_record(self) -> None:
        await workflow.execute_local_activity_method(
            RecordActivities.sync_participant,
            ParticipantSync(
                participant_id=self.state.participant_id,
                phase=self.state.phase,
                status=self.state.status,
                discharged_at=self.state.discharged_at,
            ),
            **RECORD_WRITE,
        )
