"""MedicationWorkflow: one per medication order, from its start until it is stopped.

Each program day ends with a check of what was expected against what was recorded: a missed
observed dose is recorded as missed, runs of misses alert the clinician and then hold dosing until
a clinician reassesses, an injection past its due date plus grace raises an alert. Take-home
eligibility is weighed again after every dose, every final screen and every day.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import date, time, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.medication import MedicationActivities
    from activities.records import RecordActivities
    from domain import medication as med
    from domain.clock import local_date, local_moment
    from workflows import search
    from domain.takehome import ScreenFact, TakeHomeFacts, eligibility, eligibility_to_dict, get_rules, treatment_day
    from workflows.contracts import (
        CONFLICT,
        INVALID,
        Alert,
        DispenseEntry,
        DispenseRecord,
        DoseChange,
        MedicationEvent,
        MedicationInput,
        MedicationState,
        MedicationSync,
        OrderStop,
        PillCountRecord,
        Reassessment,
        ScreenOutcome,
        StorageAttestation,
        DisclosureEvent,
    )
    from workflows.disclosure import disclose

RECORD_WRITE = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
HISTORY_LIMIT = 10_000
KEEP_DAYS = 45
KEEP_SCREEN_DAYS = 60
KEEP_EVENTS = 100
# What each recorded day counts as: covered (a dose or an authorised alternative) or not.
COVERED = {"dosed", "take-home", "injection", "held"}
OUTCOME_OF_DISPENSE = {med.OBSERVED_DOSE: "dosed", med.REFUSED: "refused", med.DOSE_HELD: "held",
                       med.INJECTION: "injection"}
REASSESSMENT_DECISIONS = ("resume", "keep-holding", "hold")


def workflow_id(order_id: str) -> str:
    return f"medication-{order_id}"


@workflow.defn(name="MedicationWorkflow")
class MedicationWorkflow:
    @workflow.init
    def __init__(self, input: MedicationInput) -> None:
        self.input = input
        self.state = input.state or MedicationState(
            order_id=input.order["order_id"], participant_id=input.participant_id, order=input.order,
            rules=input.rules, treatment_start=input.treatment_start, timezone=input.timezone,
        )

    @workflow.run
    async def run(self, input: MedicationInput) -> MedicationState:
        workflow.upsert_search_attributes([search.PARTICIPANT_ID.value_set(self.state.participant_id),
                                           search.SITE.value_set(input.site),
                                           search.STATUS.value_set(self.state.status)])
        if input.state is None:
            override = self._order().dose_override_reason
            self._event("order started", self._order().prescriber,
                        self._describe_order() + (f" (dose override: {override})" if override else ""))
            await self._reweigh()
        while self.state.status != med.STOPPED and not self._history_is_long():
            await self._check_days_ended()
            if self.state.status == med.STOPPED:
                break
            tomorrow = self._today() + timedelta(days=1)
            wait = (local_moment(tomorrow, time(0, 5), self.state.timezone) - workflow.now()).total_seconds()
            try:
                await workflow.wait_condition(
                    lambda: self.state.status == med.STOPPED or self._history_is_long(), timeout=max(wait, 1))
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
        if expected.kind == med.OBSERVED_DOSE and key not in self.state.outcomes:
            covered = self.state.take_home_covered_until and key <= self.state.take_home_covered_until
            if self.state.status == med.HELD:
                self.state.outcomes[key] = "held"
            elif covered:
                self.state.outcomes[key] = "take-home"
            else:
                self.state.outcomes[key] = "missed"
                await self._record_event(day, "missed-dose", "system", f"no {order.drug} dose recorded on {key}")
        await self._weigh_missed_doses(order, day)
        self._trim(day)

    async def _weekly_adherence(self, order: med.MedicationOrder, last: date) -> None:
        first = last - timedelta(days=6)
        week = [(day, covered) for day, covered in self._observed_days(order, last) if day >= first]
        taken = sum(covered for _, covered in week)
        await disclose(DisclosureEvent(self.state.participant_id, "medication-adherence",
                                       f"{self.state.order_id}-week-{last.isoformat()}", {
                                           "period_start": first.isoformat(), "period_end": last.isoformat(),
                                           "doses_expected": len(week), "doses_taken": taken,
                                           "adherence_ratio": round(taken / len(week), 2) if week else None}))

    async def _check_injection(self, order: med.MedicationOrder, today: date) -> None:
        """Alert on the first day past the due date and its grace period, once per due date."""
        last = date.fromisoformat(self.state.last_injection) if self.state.last_injection else None
        due = med.next_injection_due(order, last)
        if today >= med.injection_overdue_from(order, last) and self.state.injection_alerted_for != due.isoformat():
            self.state.injection_alerted_for = due.isoformat()
            await self._alert("injection-overdue", f"{self.state.order_id}:{due.isoformat()}",
                              f"{order.drug} injection was due {due.isoformat()} "
                              f"(grace {order.schedule.grace_days} days) and has not been recorded")

    async def _weigh_missed_doses(self, order: med.MedicationOrder, day: date) -> None:
        run = med.missed_dose_run(self._observed_days(order, day, after=self.state.count_misses_after))
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
                await self._alert("reassessment-required", f"{self.state.order_id}:{run_started}",
                                  f"dosing held: {decision.reason}")

    def _observed_days(self, order: med.MedicationOrder, through: date, after: str | None = None
                       ) -> list[tuple[date, bool]]:
        """Observed-dose days up to `through` (and after `after`), each with whether it was covered."""
        days = []
        for key in sorted(self.state.outcomes):
            day = date.fromisoformat(key)
            if day > through or (after and key <= after):
                continue
            if med.expected_on(order, day).kind == med.OBSERVED_DOSE:
                days.append((day, self.state.outcomes[key] in COVERED))
        return days

    # --- facts from the clinic -----------------------------------------------------------

    @workflow.update
    async def dispense(self, record: DispenseRecord) -> MedicationState:
        given = self._as_dispense(record)
        today = self._today()
        self.state.dispense_count += 1
        if given.kind == med.TAKE_HOME:
            covered_until = today + timedelta(days=given.take_home_count)
            current = self.state.take_home_covered_until
            self.state.take_home_covered_until = max(current or "", covered_until.isoformat())
        else:
            self.state.outcomes[today.isoformat()] = OUTCOME_OF_DISPENSE[given.kind]
        if given.kind == med.INJECTION:
            self.state.last_injection = today.isoformat()
        entry = DispenseEntry(
            dispense_id=f"{self.state.order_id}:{self.state.dispense_count}", order_id=self.state.order_id,
            participant_id=self.state.participant_id, day=today.isoformat(), kind=given.kind, actor=record.actor,
            dose=given.dose, unit=given.unit, take_home_count=given.take_home_count, bottle_ids=list(given.bottle_ids),
            lot=given.lot, site=given.site, note=record.note,
        )
        await workflow.execute_local_activity_method(MedicationActivities.record_dispense, entry, **RECORD_WRITE)
        self._event(given.kind.replace("-", " ") + " recorded", record.actor, self._describe_dispense(given))
        await self._reweigh()
        return self.state

    @dispense.validator
    def _validate_dispense(self, record: DispenseRecord) -> None:
        given = self._as_dispense(record)
        already = self.state.outcomes.get(self._today().isoformat()) in ("dosed", "injection")
        allowed = int(self.state.eligibility.get("max_take_home_days", 0))
        try:
            med.validate_dispense(self._order(), self.state.status, self._today(), given, already, allowed)
        except med.DispenseRefused as refused:
            raise ApplicationError(refused.reason, type=CONFLICT if refused.code == med.CONFLICT else INVALID) from None

    def _as_dispense(self, record: DispenseRecord) -> med.Dispense:
        try:
            return med.Dispense(kind=record.kind, day=self._today().isoformat(), dose=record.dose, unit=record.unit,
                                take_home_count=record.take_home_count, bottle_ids=tuple(record.bottle_ids),
                                lot=record.lot, site=record.site, actor=record.actor or "unknown")
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
            raise ApplicationError(f"unknown decision {reassessment.decision!r}; use one of "
                                   f"{', '.join(REASSESSMENT_DECISIONS)}", type=INVALID)
        if not reassessment.note.strip():
            raise ApplicationError("a reassessment needs a clinical note", type=INVALID)
        if reassessment.decision == "resume" and self.state.status != med.HELD:
            raise ApplicationError("the order is not on hold; there is nothing to resume", type=CONFLICT)

    @workflow.update
    async def change_dose(self, change: DoseChange) -> MedicationState:
        before = self._describe_order()
        self.state.order = med.order_to_dict(self._changed_order(change))
        override = f" (dose override: {change.override_reason.strip()})" if change.override_reason else ""
        await self._record_event(self._today(), "dose-change", change.actor,
                                 f"{before} -> {self._describe_order()}: {change.reason}{override}")
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
            return med.order_from_dict({**self.state.order, "dose": change.dose, "unit": change.unit,
                                        "dose_override_reason": change.override_reason})
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
        self.state.order = {**self.state.order, "stop_date": max(today, self._order().start).isoformat()}
        await self._record_event(today, "stopped", actor, reason)
        await self._reweigh()

    @workflow.update
    async def record_pill_count(self, count: PillCountRecord) -> MedicationState:
        today = self._today()
        finding = med.count_discrepancy(self._as_pill_count(count))
        detail = (f"bottle {count.bottle_id}: {count.counted_units:g} of {count.expected_units:g} units, "
                  f"{'on time' if count.returned_on_time else 'late'}, seal {'intact' if count.seal_intact else 'broken'}")
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
            return med.PillCount(day=self._today().isoformat(), bottle_id=count.bottle_id,
                                 expected_units=count.expected_units, counted_units=count.counted_units,
                                 returned_on_time=count.returned_on_time, seal_intact=count.seal_intact)
        except ValueError as exc:
            raise ApplicationError(str(exc), type=INVALID) from None

    @workflow.update
    async def attest_storage(self, attestation: StorageAttestation) -> MedicationState:
        self.state.safe_storage_attested = attestation.attested
        await self._record_event(self._today(), "storage-attestation", attestation.actor,
                                 ("safe storage attested: " if attestation.attested else "safe storage NOT attested: ")
                                 + attestation.note)
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
        if any(s["screening_id"] == outcome.screening_id for s in self.state.recent_screens):
            self.state.recent_screens = [s for s in self.state.recent_screens if s["screening_id"] != outcome.screening_id]
        self.state.recent_screens.append(asdict(outcome))
        self.state.recent_screens.sort(key=lambda s: s["day"])
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
        observed = self._observed_days(order, today - timedelta(days=1))
        windows = med.adherence_windows(observed, today)
        self.state.adherence_7d, self.state.adherence_30d = (med.adherence_to_dict(w) for w in windows)
        facts = TakeHomeFacts(
            drug=order.drug,
            days_in_treatment=treatment_day(date.fromisoformat(self.state.treatment_start), max(today, order.start)),
            attendance_ratio_30d=windows[1].ratio,
            recent_screens=tuple(ScreenFact(s["day"], s["result"]) for s in self.state.recent_screens
                                 if s["day"] <= today.isoformat()),
            diversion_flag_since=self.state.diversion_flag_since,
            safe_storage_attested=self.state.safe_storage_attested,
            clinician_hold=self.state.status == med.HELD,
            missed_dose_run=self.state.missed_run,
            today=today.isoformat(),
        )
        self.state.eligibility = eligibility_to_dict(eligibility(facts, get_rules(self.state.rules)))
        last = date.fromisoformat(self.state.last_injection) if self.state.last_injection else None
        upcoming = max(today, order.start)
        self.state.next_due = med.expected_to_dict(
            med.expected_on(order, upcoming, last) if not order.is_injection
            else med.Expected(med.next_injection_due(order, last).isoformat(), med.INJECTION_DUE, "next injection"))
        workflow.upsert_search_attributes([search.STATUS.value_set(self.state.status)])
        await workflow.execute_local_activity_method(
            MedicationActivities.sync_order,
            MedicationSync(self.state.order_id, self.state.status, self.state.order, self.state.eligibility),
            **RECORD_WRITE)

    # --- helpers --------------------------------------------------------------------------

    def _order(self) -> med.MedicationOrder:
        return med.order_from_dict(self.state.order)

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
            -KEEP_EVENTS:]

    async def _record_event(self, day: date, kind: str, actor: str, detail: str) -> None:
        self._event(kind.replace("-", " "), actor, detail)
        self.state.event_count += 1
        await workflow.execute_local_activity_method(
            MedicationActivities.record_event,
            {"id": f"{self.state.order_id}:{self.state.event_count}",
             "order_id": self.state.order_id, "participant_id": self.state.participant_id, "day": day.isoformat(),
             "kind": kind, "actor": actor or "system", "detail": detail[:2000]},
            **RECORD_WRITE)

    async def _alert(self, kind: str, subject: str, detail: str) -> None:
        await workflow.execute_activity_method(
            RecordActivities.raise_alert, Alert(kind, self.state.participant_id, subject, detail),
            start_to_close_timeout=timedelta(seconds=30))

    def _trim(self, day: date) -> None:
        oldest = (day - timedelta(days=KEEP_DAYS)).isoformat()
        self.state.outcomes = {d: o for d, o in self.state.outcomes.items() if d >= oldest}
        oldest_screen = (day - timedelta(days=KEEP_SCREEN_DAYS)).isoformat()
        self.state.recent_screens = [s for s in self.state.recent_screens if s["day"] >= oldest_screen]
