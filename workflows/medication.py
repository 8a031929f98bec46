"""MedicationWorkflow: one per medication order, from its start until it is stopped.

Each program day ends with a check of what was expected against what was recorded: a missed
observed dose is recorded as missed, runs of misses alert the clinician and then hold dosing until
a clinician reassesses, an injection past its due date plus grace raises an alert. Take-home
eligibility is weighed again after every dose, every final screen and every day.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.medication import MedicationActivities
    from activities.records import RecordActivities
    from domain import ledger
    from domain import medication as med
    from domain.clock import local_date, local_moment
    from domain.medication import Callback, CallbackStatus
    from domain.report_facts import ReportFacts
    from domain.takehome import ScreenFact, TakeHomeFacts, eligibility, get_rules, treatment_day
    from domain.vocab import ReassessmentDecision
    from workflows import search
    from workflows.contracts.alerts import Alert
    from workflows.contracts.disclosure import DisclosureEvent
    from workflows.contracts.errors import CONFLICT, INVALID
    from workflows.contracts.medication import (
        BottleReturn,
        CallbackPolicy,
        DispenseEntry,
        DispenseRecord,
        DoseChange,
        GuestPeriod,
        GuestRequest,
        MedicationEvent,
        MedicationEventEntry,
        MedicationInput,
        MedicationState,
        MedicationSync,
        OrderStop,
        PillCountRecord,
        Reassessment,
        ScreenOutcome,
        StorageAttestation,
    )
    from workflows.disclosure import disclose
    from workflows.options import ActivityOptions

RECORD_WRITE: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
HISTORY_LIMIT = 10_000
KEEP_DAYS = 45
KEEP_SCREEN_DAYS = 60
KEEP_EVENTS = 100
OUTCOME_OF_DISPENSE: dict[str, ledger.LedgerStatus] = {
    med.OBSERVED_DOSE: ledger.DOSED,
    med.REFUSED: ledger.REFUSED,
    med.DOSE_HELD: ledger.HELD,
    med.INJECTION: ledger.INJECTED,
}
REASSESSMENT_DECISIONS = tuple(ReassessmentDecision)
# Ledger outcomes a recorded day may carry (state.outcomes); "take-home" on an observed day is the
# record of the first build, kept readable.
NOT_TAKEN_RUN = {ledger.MISSED, ledger.REFUSED}
# Random callbacks (issue 18): the participant is called within clinic hours and brings every bottle.
CALLBACK_HOURS = (9, 17)
PATCH_CALLBACKS = "random-callbacks-v1"
PATCH_GUEST = "guest-dosing-v1"
# Held days no longer end a run of misses, and only a missed or refused day raises or escalates.
PATCH_MISSED_RUN = "missed-run-ledger-v1"
LEGACY_COVERED = {ledger.DOSED, ledger.TAKE_HOME, ledger.INJECTED, ledger.HELD}


def workflow_id(order_id: str) -> str:
    return f"medication-{order_id}"


@workflow.defn(name="MedicationWorkflow")
class MedicationWorkflow:
    @workflow.init
    def __init__(self, input: MedicationInput) -> None:
        self.input = input
        self.state = input.state or MedicationState(
            order_id=input.order.order_id,
            participant_id=input.participant_id,
            order=input.order,
            rules=input.rules,
            treatment_start=input.treatment_start,
            timezone=input.timezone,
            closed_days=list(input.closed_days),
            guest=input.guest,
        )

    @workflow.run
    async def run(self, input: MedicationInput) -> MedicationState:
        workflow.upsert_search_attributes(
            [
                search.PARTICIPANT_ID.value_set(self.state.participant_id),
                search.SITE.value_set(input.site),
                search.STATUS.value_set(self.state.status),
            ]
        )
        if input.state is None:
            override = self._order().dose_override_reason
            self._event(
                "order started",
                self._order().prescriber,
                self._describe_order() + (f" (dose override: {override})" if override else ""),
            )
            await self._reweigh()
        while self.state.status != med.STOPPED and not self._history_is_long():
            await self._check_days_ended()
            if self.state.status == med.STOPPED:
                break
            tomorrow = self._today() + timedelta(days=1)
            wake = local_moment(tomorrow, time(0, 5), self.state.timezone)
            if self.state.callbacks:
                await self._run_callbacks()
                wake = min([wake, *self._callback_moments()])
            wait = (wake - workflow.now()).total_seconds()
            try:
                await workflow.wait_condition(
                    lambda: self.state.status == med.STOPPED or self._history_is_long(), timeout=max(wait, 1)
                )
            except TimeoutError:
                pass
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.state.status == med.STOPPED:
            return self.state
        workflow.continue_as_new(replace(self.input, state=self.state))

    # --- the end of each day -------------------------------------------------------------

    async def _check_days_ended(self) -> None:
        order = self._order()
        first = order.start - timedelta(days=1)
        through = date.fromisoformat(self.state.evaluated_through) if self.state.evaluated_through else first
        yesterday = self._today() - timedelta(days=1)
        changed = False
        while through < yesterday:
            through += timedelta(days=1)
            await self._check_day(order, through)
            self.state.evaluated_through = through.isoformat()
            changed = True
            if (through - order.start).days % 7 == 6:
                await self._weekly_adherence(order, through)
        if order.is_injection and med.is_in_effect(order, self._today()):
            await self._check_injection(order, self._today())
        if order.stop is not None and self._today() > order.stop and self.state.status != med.STOPPED:
            self.state.status = med.STOPPED
            self._event("order ended", detail=f"its last day was {order.stop_date}")
            changed = True
        if changed:
            await self._reweigh()

    async def _check_day(self, order: med.MedicationOrder, day: date) -> None:
        if not med.is_in_effect(order, day):
            return
        key = day.isoformat()
        last = date.fromisoformat(self.state.last_injection) if self.state.last_injection else None
        expected = med.expected_on(order, day, last)
        if self.state.guest is not None:
            return  # a guest copy: its home order keeps the ledger and weighs missed doses
        if expected.kind == med.OBSERVED_DOSE and key not in self.state.outcomes:
            covered = (
                self.state.take_home_covered_until and key <= self.state.take_home_covered_until
            ) or key in ledger.covered_dates(self._supplies())
            if self.state.status == med.HELD:
                self.state.outcomes[key] = "held"
            elif covered:
                self.state.outcomes[key] = "take-home"
            elif key in self.state.closed_days:
                pass  # the clinic was closed: no dose was due (domain.ledger counts the day as closed)
            else:
                self.state.outcomes[key] = "missed"
                await self._record_event(day, "missed-dose", "system", f"no {order.drug} dose recorded on {key}")
        await self._weigh_missed_doses(order, day)
        self._trim(day)

    async def _weekly_adherence(self, order: med.MedicationOrder, last: date) -> None:
        if self.state.guest is not None:
            return
        first = last - timedelta(days=6)
        week = ledger.adherence_between(order, self._ledger(), first, last, self._closed())
        await disclose(
            DisclosureEvent(
                self.state.participant_id,
                "medication-adherence",
                f"{self.state.order_id}-week-{last.isoformat()}",
                ReportFacts(
                    period_start=first.isoformat(),
                    period_end=last.isoformat(),
                    doses_expected=week.expected,
                    doses_taken=week.taken,
                    adherence_ratio=None if week.ratio is None else round(week.ratio, 2),
                ),
            )
        )

    async def _check_injection(self, order: med.MedicationOrder, today: date) -> None:
        """Alert on the first day past the due date and its grace period, once per due date."""
        last = date.fromisoformat(self.state.last_injection) if self.state.last_injection else None
        due = med.next_injection_due(order, last)
        if today >= med.injection_overdue_from(order, last) and self.state.injection_alerted_for != due.isoformat():
            self.state.injection_alerted_for = due.isoformat()
            await self._alert(
                "injection-overdue",
                f"{self.state.order_id}:{due.isoformat()}",
                f"{order.drug} injection was due {due.isoformat()} "
                f"(grace {order.schedule.grace_days} days) and has not been recorded",
            )

    async def _weigh_missed_doses(self, order: med.MedicationOrder, day: date) -> None:
        after = date.fromisoformat(self.state.count_misses_after) if self.state.count_misses_after else None
        # Held and closed days neither end nor extend the run (domain.ledger.missed_run), so a hold
        # for three missed doses keeps reading "3 consecutive missed doses".
        if workflow.patched(PATCH_MISSED_RUN):
            run = ledger.missed_run(order, self._ledger(), day, after, self._closed(), count_refused=True)
            self.state.missed_run = run
            self._plain()
            if run == 0 or self.state.outcomes.get(day.isoformat()) not in NOT_TAKEN_RUN:
                return  # only a day missed (or refused) raises or escalates: a held day adds nothing
        else:  # workflows started before issue 18 keep the commands they were recorded with
            run = med.missed_dose_run(self._legacy_observed_days(order, day, self.state.count_misses_after))
            self.state.missed_run = run
            if run == 0:
                return
        decision = med.missed_dose_decision(run)
        run_started = (day - timedelta(days=run - 1)).isoformat()
        if decision.action == med.ALERT:
            await self._alert("missed-doses", f"{self.state.order_id}:{run_started}", decision.reason)
        elif decision.action in (med.HOLD_FOR_REASSESSMENT, med.NO_DOSING_UNTIL_REEVALUATED):
            await self._alert("missed-doses", f"{self.state.order_id}:{run_started}", decision.reason)
            if self.state.status == med.ACTIVE:
                self.state.status = med.HELD
                self.state.hold_reason = decision.reason
                self.state.reassessment_required = True
                await self._record_event(day, "held-for-reassessment", "system", decision.reason)
                await self._alert(
                    "reassessment-required", f"{self.state.order_id}:{run_started}", f"dosing held: {decision.reason}"
                )
                self._plain()

    def _legacy_observed_days(
        self, order: med.MedicationOrder, through: date, after: str | None
    ) -> list[tuple[date, bool]]:
        """The first build's run input (held days counted as covered), for workflows already running."""
        days = []
        for key in sorted(self.state.outcomes):
            day = date.fromisoformat(key)
            if day > through or (after and key <= after):
                continue
            if med.expected_on(order, day).kind == med.OBSERVED_DOSE:
                days.append((day, self.state.outcomes[key] in LEGACY_COVERED))
        return days

    # --- facts from the clinic -----------------------------------------------------------

    @workflow.update
    async def dispense(self, record: DispenseRecord) -> MedicationState:
        given = self._as_dispense(record)
        today = self._today()
        self.state.dispense_count += 1
        covered: list[str] = []
        if given.kind == med.TAKE_HOME:
            covered = list(ledger.supply_dates(today + timedelta(days=1), given.take_home_count))
            self.state.supplies.append(ledger.Supply(today.isoformat(), tuple(covered), given.bottle_ids))
            for bottle in given.bottle_ids:
                self.state.bottles_out[bottle] = today.isoformat()
        elif given.kind == med.OBSERVED_DOSE and record.split_parts > 1:
            key = today.isoformat()
            self.state.split_parts[key] = self.state.split_parts.get(key, 0) + 1
            if self.state.split_parts[key] >= record.split_parts:
                self.state.outcomes[key] = "dosed"  # every part of the split dose given
        else:
            self.state.outcomes[today.isoformat()] = OUTCOME_OF_DISPENSE[given.kind]
        if given.kind == med.INJECTION:
            self.state.last_injection = today.isoformat()
            self.state.injections.append(today.isoformat())
        if given.kind == med.OBSERVED_DOSE:
            await self._tell_guest_or_home(today)
        entry = DispenseEntry(
            f"{self.state.order_id}:{self.state.dispense_count}",
            self.state.order_id,
            self.state.participant_id,
            given,
            record.note,
            covered or None,
        )
        await workflow.execute_local_activity_method(MedicationActivities.record_dispense, entry, **RECORD_WRITE)
        self._event(given.kind.replace("-", " ") + " recorded", record.actor, self._describe_dispense(given))
        await self._reweigh()
        return self.state

    @dispense.validator
    def _validate_dispense(self, record: DispenseRecord) -> None:
        given = self._as_dispense(record)
        today, order = self._today(), self._order()
        # A dose given at another site under guest dosing is today's dose too.
        already = self.state.outcomes.get(today.isoformat()) in (ledger.DOSED, ledger.INJECTED, ledger.GUEST_DOSED)
        allowed = self.state.eligibility.max_take_home_days if self.state.eligibility else 0
        if record.split_parts != 1:
            given = self._whole_of_split(order, given, record.split_parts)
            already = already or self.state.split_parts.get(today.isoformat(), 0) >= record.split_parts
        if given.kind == med.TAKE_HOME:
            dates = ledger.supply_dates(today + timedelta(days=1), given.take_home_count)
            ok, why = ledger.schedule_allows_take_home(order, [date.fromisoformat(d) for d in dates], self._closed())
            if not ok:
                raise ApplicationError(f"no take-home supply: {why}", type=CONFLICT)
            overlap = ledger.overlapping_dates(self._supplies(), dates)
            if overlap:
                raise ApplicationError(
                    f"a take-home supply already covers {', '.join(overlap)}; a second supply for covered dates "
                    "is not given (record a bottle return or wait until those days have passed)",
                    type=CONFLICT,
                )
            # Doses for clinic-closed days come on top of the take-home limit (42 CFR 8.12(i)(1)).
            allowed += sum(1 for d in dates if d in self.state.closed_days)
        try:
            med.validate_dispense(order, self.state.status, today, given, already, allowed)
        except med.DispenseRefused as refused:
            raise ApplicationError(refused.reason, type=CONFLICT if refused.code == med.CONFLICT else INVALID) from None

    @staticmethod
    def _whole_of_split(order: med.MedicationOrder, part: med.Dispense, parts: int) -> med.Dispense:
        """A split dose part is checked as the whole dose it belongs to (domain.ledger.split_part_reason)."""
        reason = ledger.split_part_reason(order.dose, order.unit, part.kind, part.dose, part.unit, parts)
        if reason:
            raise ApplicationError(reason, type=INVALID)
        return replace(part, dose=order.dose)

    def _as_dispense(self, record: DispenseRecord) -> med.Dispense:
        try:
            return med.Dispense(
                kind=record.kind,
                day=self._today().isoformat(),
                dose=record.dose,
                unit=record.unit,
                take_home_count=record.take_home_count,
                bottle_ids=tuple(record.bottle_ids),
                lot=record.lot,
                site=record.site,
                actor=record.actor or "unknown",
            )
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID) from None

    @workflow.update
    async def reassess(self, reassessment: Reassessment) -> MedicationState:
        today = self._today()
        if reassessment.decision == "resume":
            self.state.status = med.ACTIVE
            self.state.hold_reason = None
            self.state.reassessment_required = False
            # Misses before the reassessment were weighed by the clinician: the count starts afresh.
            self.state.count_misses_after = (today - timedelta(days=1)).isoformat()
            self.state.missed_run = 0
            self.state.hold_released_by = reassessment.actor
        elif reassessment.decision == "hold":
            self.state.status = med.HELD
            self.state.hold_reason = f"held by clinician: {reassessment.note}"
        await self._record_event(today, f"reassessment-{reassessment.decision}", reassessment.actor, reassessment.note)
        await self._reweigh()
        return self.state

    @reassess.validator
    def _validate_reassessment(self, reassessment: Reassessment) -> None:
        self._require_not_stopped("reassess")
        if reassessment.decision not in REASSESSMENT_DECISIONS:
            raise ApplicationError(
                f"unknown decision {reassessment.decision!r}; use one of {', '.join(REASSESSMENT_DECISIONS)}",
                type=INVALID,
            )
        if not reassessment.note.strip():
            raise ApplicationError("a reassessment needs a clinical note", type=INVALID)
        if reassessment.decision == "resume" and self.state.status != med.HELD:
            raise ApplicationError("the order is not on hold; there is nothing to resume", type=CONFLICT)

    @workflow.update
    async def change_dose(self, change: DoseChange) -> MedicationState:
        before = self._describe_order()
        self.state.order = self._changed_order(change)
        override = f" (dose override: {change.override_reason.strip()})" if change.override_reason else ""
        await self._record_event(
            self._today(),
            "dose-change",
            change.actor,
            f"{before} -> {self._describe_order()}: {change.reason}{override}",
        )
        await self._reweigh()
        return self.state

    @change_dose.validator
    def _validate_dose_change(self, change: DoseChange) -> None:
        self._require_not_stopped("change the dose")
        if not change.reason.strip():
            raise ApplicationError("a dose change needs a reason", type=INVALID)
        self._changed_order(change)

    def _changed_order(self, change: DoseChange) -> med.MedicationOrder:
        try:
            return replace(
                self.state.order, dose=change.dose, unit=change.unit, dose_override_reason=change.override_reason
            )
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID) from None

    @workflow.update
    async def stop(self, request: OrderStop) -> MedicationState:
        await self._stop(request.reason, request.actor)
        return self.state

    @stop.validator
    def _validate_stop(self, request: OrderStop) -> None:
        self._require_not_stopped("stop the order")
        if not request.reason.strip():
            raise ApplicationError("stopping an order needs a reason", type=INVALID)

    async def _stop(self, reason: str, actor: str) -> None:
        today = self._today()
        self.state.status = med.STOPPED
        self.state.order = replace(self.state.order, stop_date=max(today, self._order().start).isoformat())
        await self._record_event(today, "stopped", actor, reason)
        await self._reweigh()

    @workflow.update
    async def record_pill_count(self, count: PillCountRecord) -> MedicationState:
        today = self._today()
        finding = med.count_discrepancy(self._as_pill_count(count))
        detail = (
            f"bottle {count.bottle_id}: {count.counted_units:g} of {count.expected_units:g} units, "
            f"{'on time' if count.returned_on_time else 'late'}, "
            f"seal {'intact' if count.seal_intact else 'broken'}"
        )
        await self._record_event(today, "pill-count", count.actor, detail)
        if finding:
            self.state.diversion_flag_since = today.isoformat()
            await self._record_event(today, "diversion-flag", count.actor, finding)
            await self._alert("diversion-suspected", f"{self.state.order_id}:{count.bottle_id}", finding)
        await self._reweigh()
        return self.state

    @record_pill_count.validator
    def _validate_pill_count(self, count: PillCountRecord) -> None:
        self._require_not_stopped("record a pill count")
        self._as_pill_count(count)

    def _as_pill_count(self, count: PillCountRecord) -> med.PillCount:
        try:
            return med.PillCount(
                day=self._today().isoformat(),
                bottle_id=count.bottle_id,
                expected_units=count.expected_units,
                counted_units=count.counted_units,
                returned_on_time=count.returned_on_time,
                seal_intact=count.seal_intact,
            )
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID) from None

    @workflow.update
    async def attest_storage(self, attestation: StorageAttestation) -> MedicationState:
        self.state.safe_storage_attested = attestation.attested
        await self._record_event(
            self._today(),
            "storage-attestation",
            attestation.actor,
            ("safe storage attested: " if attestation.attested else "safe storage NOT attested: ") + attestation.note,
        )
        await self._reweigh()
        return self.state

    @attest_storage.validator
    def _validate_attestation(self, attestation: StorageAttestation) -> None:
        self._require_not_stopped("attest storage")
        if not attestation.note.strip():
            raise ApplicationError("an attestation needs a note (what was checked)", type=INVALID)

    @workflow.signal
    async def screen_result(self, outcome: ScreenOutcome) -> None:
        """A final screen from the participant's workflow: take-home eligibility depends on it."""
        if any(s.screening_id == outcome.screening_id for s in self.state.recent_screens):
            self.state.recent_screens = [s for s in self.state.recent_screens if s.screening_id != outcome.screening_id]
        self.state.recent_screens.append(outcome)
        self.state.recent_screens.sort(key=lambda s: s.day)
        if self.state.status != med.STOPPED:
            await self._reweigh()

    @workflow.signal
    async def participant_discharged(self, reason: str) -> None:
        if self.state.status != med.STOPPED:
            await self._stop(f"participant discharged: {reason}", "system")

    @workflow.query
    def status(self) -> MedicationState:
        return self.state

    # --- weighing -------------------------------------------------------------------------

    async def _reweigh(self) -> None:
        """Adherence, take-home eligibility and the next expected dose, then the order record."""
        order, today = self._order(), self._today()
        windows = ledger.adherence_windows(order, self._ledger(), today, self._closed())
        self.state.adherence_7d, self.state.adherence_30d = windows
        facts = TakeHomeFacts(
            drug=order.drug,
            days_in_treatment=treatment_day(date.fromisoformat(self.state.treatment_start), max(today, order.start)),
            attendance_ratio_30d=windows[1].ratio,
            recent_screens=tuple(
                ScreenFact(s.day, s.result) for s in self.state.recent_screens if s.day <= today.isoformat()
            ),
            diversion_flag_since=self.state.diversion_flag_since,
            safe_storage_attested=self.state.safe_storage_attested,
            clinician_hold=self.state.status == med.HELD,
            missed_dose_run=self.state.missed_run,
            today=today.isoformat(),
        )
        self.state.eligibility = eligibility(facts, get_rules(self.state.rules))
        last = date.fromisoformat(self.state.last_injection) if self.state.last_injection else None
        upcoming = max(today, order.start)
        self.state.next_due = (
            med.expected_on(order, upcoming, last)
            if not order.is_injection
            else med.Expected(med.next_injection_due(order, last).isoformat(), med.INJECTION_DUE, "next injection")
        )
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        await workflow.execute_local_activity_method(
            MedicationActivities.sync_order,
            MedicationSync(
                self.state.order_id,
                self.state.status,
                self.state.order,
                self.state.eligibility,
                self._ledger(),
                list(self.state.closed_days),
            ),
            **RECORD_WRITE,
        )
        self._plain()

    # --- bottles, callbacks, guest dosing, closed days (issue 18) -------------------------

    @workflow.update
    async def return_bottles(self, returned: BottleReturn) -> MedicationState:
        today = self._today()
        for bottle in returned.bottle_ids:
            self.state.bottles_out.pop(bottle, None)
        await self._record_event(
            today,
            "bottle-return",
            returned.actor,
            f"bottles returned: {', '.join(returned.bottle_ids)}" + (f"; {returned.note}" if returned.note else ""),
        )
        for index, callback in enumerate(self.state.callbacks):
            if callback.status == CallbackStatus.CALLED and set(callback.bottles) <= set(returned.bottle_ids) | (
                set(callback.bottles) - set(self.state.bottles_out)
            ):
                self.state.callbacks[index] = replace(callback, status=CallbackStatus.KEPT)
                await self._record_event(
                    today, "callback-kept", returned.actor, f"callback of {callback.call_at}: every bottle brought back"
                )
        await self._reweigh()
        return self.state

    @return_bottles.validator
    def _validate_return(self, returned: BottleReturn) -> None:
        self._require_not_stopped("record a bottle return")
        if not returned.bottle_ids:
            raise ApplicationError("name the bottle ids returned", type=INVALID)
        unknown = sorted(set(returned.bottle_ids) - set(self.state.bottles_out))
        if unknown:
            out = ", ".join(sorted(self.state.bottles_out)) or "none"
            raise ApplicationError(
                f"bottle(s) {', '.join(unknown)} were not dispensed on this order or are already back; "
                f"bottles out: {out}",
                type=CONFLICT,
            )

    @workflow.update
    async def schedule_callback(self, policy: CallbackPolicy) -> MedicationState:
        """Draw a random callback: a day within the next `window_days` and a time within clinic
        hours, from workflow.random() (replay-safe). When it comes the participant is called and has
        `respond_hours` to bring every bottle out; a callback not kept raises the diversion review."""
        today = self._today()
        if workflow.patched(PATCH_CALLBACKS):
            rng = workflow.random()
            day = today + timedelta(days=rng.randint(1, policy.window_days))
            minutes = rng.randint(CALLBACK_HOURS[0] * 60, CALLBACK_HOURS[1] * 60 - 1)
            call_at = local_moment(day, time(minutes // 60, minutes % 60), self.state.timezone)
            self.state.callbacks.append(Callback(call_at.isoformat(), policy.respond_hours, actor=policy.actor))
            await self._record_event(
                today,
                "callback-scheduled",
                policy.actor,
                f"a random callback is drawn within {policy.window_days} day(s); "
                f"{policy.respond_hours} hour(s) to bring the bottles",
            )
        return self.state

    @schedule_callback.validator
    def _validate_callback(self, policy: CallbackPolicy) -> None:
        self._require_not_stopped("schedule a callback")
        if not 1 <= policy.window_days <= 60 or not 1 <= policy.respond_hours <= 72:
            raise ApplicationError("window_days must be 1-60 and respond_hours 1-72", type=INVALID)

    def _callback_moments(self) -> list[datetime]:
        moments = []
        for callback in self.state.callbacks:
            if callback.status == CallbackStatus.SCHEDULED:
                moments.append(datetime.fromisoformat(callback.call_at))
            elif callback.status == CallbackStatus.CALLED and callback.deadline is not None:
                moments.append(datetime.fromisoformat(callback.deadline))
        return moments

    async def _run_callbacks(self) -> None:
        now = workflow.now()
        for index, callback in enumerate(self.state.callbacks):
            if callback.status == CallbackStatus.SCHEDULED and now >= datetime.fromisoformat(callback.call_at):
                bottles = tuple(sorted(self.state.bottles_out))
                # Nothing out to bring back: kept at once.
                callback = replace(
                    callback,
                    status=CallbackStatus.CALLED if bottles else CallbackStatus.KEPT,
                    bottles=bottles,
                    deadline=(now + timedelta(hours=callback.respond_hours)).isoformat(),
                )
                self.state.callbacks[index] = callback
                if not bottles:
                    continue
                await self._alert(
                    "callback-due",
                    f"{self.state.order_id}:{callback.call_at[:16]}",
                    f"call the participant back: bring bottle(s) {', '.join(callback.bottles)} "
                    f"within {callback.respond_hours} hour(s)",
                )
            elif (
                callback.status == CallbackStatus.CALLED
                and callback.deadline is not None
                and now >= datetime.fromisoformat(callback.deadline)
            ):
                still_out = sorted(set(callback.bottles) & set(self.state.bottles_out))
                if not still_out:
                    self.state.callbacks[index] = replace(callback, status=CallbackStatus.KEPT)
                    continue
                self.state.callbacks[index] = replace(callback, status=CallbackStatus.MISSED)
                self.state.diversion_flag_since = self._today().isoformat()
                reason = (
                    f"callback of {callback.call_at[:16]} not kept: bottle(s) {', '.join(still_out)} "
                    f"not brought back within {callback.respond_hours} hour(s)"
                )
                await self._record_event(self._today(), "diversion-flag", "system", reason)
                await self._alert(
                    "diversion-review", f"{self.state.order_id}:{callback.call_at[:16]}", f"diversion review: {reason}"
                )
                await self._reweigh()

    @workflow.update
    async def start_guest(self, request: GuestRequest) -> str:
        """Guest dosing at another site: a copy of the order limited to the guest period, which
        stops by itself on its last day, or as soon as the participant doses here again."""
        workflow.patched(PATCH_GUEST)
        self.state.guest_orders.append(f"{self.state.order_id}-g{len(self.state.guest_orders) + 1}")
        guest_id = self.state.guest_orders[-1]
        copy = replace(self.state.order, order_id=guest_id, start_date=request.first_day, stop_date=request.last_day)
        guest = MedicationInput(
            order=copy,
            participant_id=self.state.participant_id,
            site=request.site,
            timezone=self.state.timezone,
            rules=self.state.rules,
            treatment_start=self.state.treatment_start,
            closed_days=[],
            guest=GuestPeriod(self.state.order_id, request.site, request.first_day, request.last_day),
        )
        await workflow.execute_local_activity_method(MedicationActivities.open_order, guest, **RECORD_WRITE)
        await workflow.start_child_workflow(
            MedicationWorkflow.run, guest, id=workflow_id(guest_id), parent_close_policy=ParentClosePolicy.ABANDON
        )
        await self._record_event(
            self._today(),
            "guest-dosing",
            request.actor,
            f"guest dosing at {request.site} from {request.first_day} to {request.last_day} (order {guest_id})",
        )
        return guest_id

    @start_guest.validator
    def _validate_guest(self, request: GuestRequest) -> None:
        self._require_not_stopped("start guest dosing")
        if self.state.guest is not None:
            raise ApplicationError(
                "this is already a guest order; start guest dosing from the home order", type=CONFLICT
            )
        if self.state.status == med.HELD:
            raise ApplicationError("the order is on hold: a clinician releases it before guest dosing", type=CONFLICT)
        try:
            first, last = date.fromisoformat(request.first_day), date.fromisoformat(request.last_day)
        except ValueError:
            raise ApplicationError("first_day and last_day are ISO dates (YYYY-MM-DD)", type=INVALID) from None
        if first < self._today() or last < first or (last - first).days > 30:
            raise ApplicationError("a guest period starts today or later and lasts 1 to 31 days", type=INVALID)
        if not request.site.strip():
            raise ApplicationError("name the guest site", type=INVALID)

    @workflow.signal
    async def guest_dosed(self, day: str) -> None:
        """The guest order gave today's observed dose at another site: the home ledger counts it."""
        if self.state.outcomes.get(day) not in (ledger.DOSED, ledger.INJECTED):
            self.state.outcomes[day] = ledger.GUEST_DOSED
            await self._reweigh()

    @workflow.signal
    async def home_dosed(self, day: str) -> None:
        """The participant dosed at the home site: the guest copy stops by itself."""
        if self.state.guest is not None and self.state.status != med.STOPPED:
            await self._stop(f"participant dosed at the home site on {day}", "system")

    async def _tell_guest_or_home(self, today: date) -> None:
        if self.state.guest is not None:
            await workflow.get_external_workflow_handle(workflow_id(self.state.guest.home_order_id)).signal(
                MedicationWorkflow.guest_dosed, today.isoformat()
            )
            return
        for guest_id in self.state.guest_orders:
            try:
                await workflow.get_external_workflow_handle(workflow_id(guest_id)).signal(
                    MedicationWorkflow.home_dosed, today.isoformat()
                )
            except Exception:  # noqa: BLE001 - an ended guest copy has closed: nothing to tell it
                workflow.logger.info("guest order %s already closed", guest_id)
        if self.state.guest_orders:
            self.state.guest_orders = []

    @workflow.update
    async def set_closed_days(self, days: list[str]) -> MedicationState:
        """The program calendar's clinic-closed days (ISO dates): no dose is due on them."""
        self.state.closed_days = sorted(set(days))
        await self._reweigh()
        return self.state

    @set_closed_days.validator
    def _validate_closed_days(self, days: list[str]) -> None:
        for day in days:
            try:
                date.fromisoformat(day)
            except (TypeError, ValueError):
                raise ApplicationError(f"closed day {day!r} is not an ISO date", type=INVALID) from None

    # --- the ledger ------------------------------------------------------------------------

    def _supplies(self) -> tuple[ledger.Supply, ...]:
        return tuple(self.state.supplies)

    def _closed(self) -> frozenset[date]:
        return frozenset(date.fromisoformat(d) for d in self.state.closed_days)

    def _ledger(self) -> ledger.DoseLedger:
        outcomes = {d: o for d, o in self.state.outcomes.items() if o in ledger.RECORDED_OUTCOMES}
        injections = self.state.injections or ([self.state.last_injection] if self.state.last_injection else [])
        return ledger.DoseLedger(outcomes, self._supplies(), tuple(injections))

    def _plain(self) -> None:
        self.state.plain_reason = ledger.plain_reason(self.state.hold_reason, self.state.missed_run, self.state.status)

    # --- helpers --------------------------------------------------------------------------

    def _order(self) -> med.MedicationOrder:
        return self.state.order

    def _today(self) -> date:
        return local_date(workflow.now(), self.state.timezone)

    @staticmethod
    def _history_is_long() -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_LIMIT

    def _require_not_stopped(self, what: str) -> None:
        if self.state.status == med.STOPPED:
            raise ApplicationError(f"cannot {what}: order {self.state.order_id} is stopped", type=CONFLICT)

    def _describe_order(self) -> str:
        order = self._order()
        return f"{order.drug} {order.dose:g} {order.unit} {order.route}, {order.schedule.kind}"

    @staticmethod
    def _describe_dispense(given: med.Dispense) -> str:
        parts = [f"{given.dose:g} {given.unit}" if given.dose is not None else ""]
        if given.take_home_count:
            parts.append(f"{given.take_home_count} day(s) home, bottles {', '.join(given.bottle_ids) or 'n/a'}")
        if given.lot:
            parts.append(f"lot {given.lot}, site {given.site}")
        return "; ".join(p for p in parts if p)

    def _event(self, what: str, actor: str = "system", detail: str = "") -> None:
        self.state.events = (self.state.events + [MedicationEvent(workflow.now().isoformat(), what, actor, detail)])[
            -KEEP_EVENTS:
        ]

    async def _record_event(self, day: date, kind: str, actor: str, detail: str) -> None:
        self._event(kind.replace("-", " "), actor, detail)
        self.state.event_count += 1
        await workflow.execute_local_activity_method(
            MedicationActivities.record_event,
            MedicationEventEntry(
                f"{self.state.order_id}:{self.state.event_count}",
                self.state.order_id,
                self.state.participant_id,
                day.isoformat(),
                kind,
                actor or "system",
                detail[:2000],
            ),
            **RECORD_WRITE,
        )

    async def _alert(self, kind: str, subject: str, detail: str) -> None:
        await workflow.execute_activity_method(
            RecordActivities.raise_alert,
            Alert(kind, self.state.participant_id, subject, detail),
            start_to_close_timeout=timedelta(seconds=30),
        )

    def _trim(self, day: date) -> None:
        oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
        self.state.outcomes = {d: o for d, o in self.state.outcomes.items() if d >= oldest}
        self.state.supplies = [s for s in self.state.supplies if max(s.dates) >= oldest]
        self.state.split_parts = {d: n for d, n in self.state.split_parts.items() if d >= oldest}
        self.state.injections = self.state.injections[-4:]
        self.state.callbacks = [
            c
            for c in self.state.callbacks
            if c.status in (CallbackStatus.SCHEDULED, CallbackStatus.CALLED) or c.call_at[:10] >= oldest
        ]
        oldest_screen = (day - timedelta(days=KEEP_SCREEN_DAYS)).isoformat()
        self.state.recent_screens = [s for s in self.state.recent_screens if s.day >= oldest_screen]
