"""What the API shows of the workflows' live state: public response models, built from the workflows'
query and update results, that carry what staff need and nothing of the engine (no save revisions, no
run counters, no selection rolls, no plan caches). A new field in a workflow's state stays internal until
it is added here with a description.

Nothing here may reveal when a random draw or a random callback will happen before it has happened: the
roll that places the next draw's minute, and a scheduled callback's time, are never copied
(tests/api/test_selection_unpredictable.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Public(BaseModel):
    """Built from a workflow's dataclasses or dicts; unknown internal fields are left out."""

    model_config = ConfigDict(from_attributes=True, extra="ignore")

    @classmethod
    def of(cls, value: Any):
        return None if value is None else cls.model_validate(value, from_attributes=True)


def _none_if_empty(value: Any) -> Any:
    """The workflows keep `{}` for 'not evaluated yet'."""
    return None if value == {} else value


# --- participant program -------------------------------------------------------------------------


class TestingPlanPublic(Public):
    """How the participant's phase is tested: how often, on which days, within which hours."""

    __test__ = False  # not a pytest test class, despite its name

    phase: str = Field(description="The phase the plan is for")
    tests_per_week: float = Field(description="Average random tests per week")
    min_per_rolling_week: int = Field(description="At least this many tests in any 7 days")
    max_per_rolling_week: int = Field(description="At most this many tests in any 7 days")
    collection_window_hours: float = Field(description="Hours from the notice to collect the specimen")
    collection_weekdays: list[int] = Field(description="Weekdays a test can be called on (0 = Monday)")
    opens_at: str = Field(description="When the site opens (HH:MM, the plan's time zone)")
    closes_at: str = Field(description="When the site closes (HH:MM)")
    closed_dates: list[str] = Field(default_factory=list, description="Days the site is closed (YYYY-MM-DD)")
    timezone: str = Field(description="The IANA time zone the hours are in")
    source: str = Field(description="Where the plan's numbers come from (the standard or the program)")
    weekday_hours: list[tuple[int, str, str]] = Field(
        default_factory=list, description="Hours that differ by weekday: [weekday, opens, closes]"
    )
    program_id: str = Field(
        default="", description="The stored program the plan comes from; empty: the built-in defaults"
    )
    program_version: int = Field(default=0, description="That program's version")
    specimen_type: str = Field(default="urine", description="The specimen collected: urine, oral-fluid or breath")
    check_in_required: bool = Field(default=False, description="The participant must check in every program day")
    missed_check_in_reportable: bool = Field(
        default=False, description="A missed check-in is reported like a missed test"
    )
    make_up_hours: float = Field(default=24.0, description="Hours allowed for a make-up test")


class PhaseEntryPublic(Public):
    """One phase the participant was in."""

    phase: str = Field(description="The phase")
    since: str = Field(description="When the participant entered it (ISO 8601)")
    reason: str = Field(description="Why")
    actor: str = Field(description="Who moved them (a token id, or 'system')")


class PausePublic(Public):
    """Days on which no random test is drawn."""

    start: date = Field(description="First paused day")
    end: date = Field(description="Last paused day")
    reason: str = Field(description="Why")
    actor: str = Field(description="Who paused testing (a token id)")


class ScreeningRefPublic(Public):
    """A test ordered for the participant."""

    screening_id: str = Field(description="The screening's id")
    day: date = Field(description="The program day it is for")
    reason: str = Field(description="random (the daily draw) or for-cause")
    report_by: str = Field(description="When the participant must have reported to the clinic (ISO 8601)")


class CheckInPublic(Public):
    """A day's first check-in."""

    method: str = Field(description="kiosk, ivr, sms, app or staff")
    actor: str = Field(description="Who recorded it (a token id, or the channel)")
    at: str | None = Field(default=None, description="When (ISO 8601)")


class ParticipantProgramPublic(Public):
    """A participant's program as it stands: phase, testing plan, pauses, tests ordered, discharge."""

    participant_id: str = Field(description="The participant")
    program: str = Field(description="The program they are enrolled in")
    site: str = Field(description="Their clinic site")
    phase: str = Field(description="Their phase now")
    phases: list[str] = Field(
        default_factory=list, description="The program's phases in order (empty: the built-in ones)"
    )
    start_date: date = Field(description="The program's first day")
    timezone: str = Field(description="The time zone their program days are counted in")
    status: str = Field(
        description="active, or how the program ended: completed, withdrawn, transferred or discharged-administrative"
    )
    plan: TestingPlanPublic = Field(description="The testing plan in force")
    plan_since: date | None = Field(default=None, description="The program day the plan took effect; null: start_date")
    next_plan: TestingPlanPublic | None = Field(
        default=None, description="After a phase change: the plan that applies from next_plan_from"
    )
    next_plan_from: date | None = Field(default=None, description="The day next_plan takes effect")
    next_draw_day: date | None = Field(
        default=None,
        description="The program day of the next daily draw (never its time); null before the first is planned",
    )
    phase_history: list[PhaseEntryPublic] = Field(default_factory=list, description="Every phase, first to now")
    pauses: list[PausePublic] = Field(default_factory=list, description="Pauses of random testing")
    screenings: list[ScreeningRefPublic] = Field(default_factory=list, description="Tests ordered in the last 30 days")
    check_ins: dict[str, CheckInPublic] = Field(
        default_factory=dict, description="Program day (YYYY-MM-DD) -> that day's first check-in, last 7 days"
    )
    for_cause_count: int = Field(default=0, description="For-cause tests ordered")
    medications: list[str] = Field(default_factory=list, description="Ids of the participant's medication orders")
    discharge_kind: str | None = Field(
        default=None, description="completed, withdrawn, transferred or administrative; null while active"
    )
    discharge_reason: str | None = Field(default=None, description="Why the program ended")
    discharged_at: str | None = Field(default=None, description="When it ended (ISO 8601)")
    discharged_by: str | None = Field(default=None, description="Who discharged them (a token id)")


class CheckInAnswerPublic(Public):
    """The answer to a check-in: must the participant test today, and by when."""

    participant_id: str = Field(description="The participant")
    day: date = Field(description="The program day checked in for")
    must_test: bool = Field(description="A test was called: the participant must report to the clinic")
    screening_id: str | None = Field(description="The test called, if any")
    report_by: str | None = Field(description="When the participant must have reported (ISO 8601)")
    message: str = Field(description="What to tell the participant")


# --- screening ---------------------------------------------------------------------------------


class PocReadingPublic(Public):
    """A point-of-care cup or strip reading: presumptive only, never a final result."""

    analyte: str = Field(description="What the strip tests for")
    result: str = Field(description="positive, negative or invalid")


class CollectionPublic(Public):
    """The specimen collection as recorded."""

    specimen_type: str = Field(description="urine, oral-fluid or breath")
    observed: bool = Field(description="The collection was directly observed")
    collector: str = Field(description="Staff id or initials of the collector")
    collected_at: str | None = Field(default=None, description="When (ISO 8601)")
    temperature_in_range: bool | None = Field(default=None, description="Urine 90-100 °F within 4 minutes")
    temperature_f: float | None = Field(default=None, description="Urine temperature read, °F")
    poc_readings: list[PocReadingPublic] = Field(default_factory=list, description="Point-of-care readings")
    breath_alcohol: float | None = Field(default=None, description="g/210 L, the breath screening test")
    breath_confirmation: float | None = Field(default=None, description="g/210 L, the evidential confirmation test")
    breath_confirmation_at: str | None = Field(default=None, description="When the confirmation was taken")
    breath_device_id: str | None = Field(default=None, description="The evidential breath device")
    custody_notes: str | None = Field(default=None, description="Chain-of-custody remarks")
    late: bool = Field(default=False, description="Collected after the window closed")
    late_reason: str | None = Field(default=None, description="Why it was collected late")
    actor: str = Field(default="", description="Who recorded it (a token id)")


class ExcusePublic(Public):
    """Why a test was excused."""

    reason: str = Field(description="The documented reason")
    actor: str = Field(description="Who excused it (a token id)")


class AdmissionPublic(Public):
    """The participant's witnessed admission of use, recorded in place of a specimen (reported as admitted use)."""

    substances: list[str] = Field(description='What the participant admitted using, e.g. ["cocaine"]')
    witnessed_by: str = Field(description="The staff member who witnessed the admission (reported with it)")
    statement: str = Field(description="What the participant said, as documented (kept in the record, never reported)")
    actor: str = Field(default="", description="Who recorded it (a token id)")
    admitted_at: str | None = Field(default=None, description="When the admission was made (ISO 8601)")


class RefusalPublic(Public):
    """A refusal to test, or a specimen that cannot be used."""

    kind: str = Field(description="What happened (e.g. refused-observation)")
    detail: str = Field(description="What staff saw")
    actor: str = Field(description="Who recorded it (a token id)")


class ActivityPublic(Public):
    """One thing that happened to a screening or an order, in words."""

    at: str = Field(description="When (ISO 8601)")
    what: str = Field(description="What happened")
    actor: str = Field(default="system", description="Who did it (a token id, a lab, or 'system')")
    detail: str = Field(default="", description="More about it")


class FindingPublic(Public):
    """One analyte's result as interpreted."""

    analyte: str = Field(description="The analyte (domain key, e.g. 'fentanyl')")
    outcome: str = Field(description="negative, positive, expected-present, expected-absent, ...")
    method: str = Field(default="screen", description="screen (immunoassay) or confirm (GC-MS / LC-MS/MS)")
    value: float | None = Field(default=None, description="The measured value (ng/mL)")
    cutoff_used: float | None = Field(description="The cutoff it was read against (ng/mL)")
    cutoff_source: str | None = Field(description="Where the cutoff comes from: the lab, or a cutoff table")
    reason: str = Field(description="Why this outcome, in words")


class ValidityPublic(Public):
    """Whether the specimen is valid (creatinine, specific gravity, pH, oxidants)."""

    status: str = Field(description="valid, dilute, substituted, adulterated or invalid")
    reasons: list[str] = Field(default_factory=list, description="Why, in words")
    recollect_observed: bool = Field(default=False, description="An observed recollection is needed")
    counts_as_refusal: bool = Field(default=False, description="Counts as a refusal to test once verified")
    low_creatinine_dilute: bool = Field(default=False, description="Dilute with creatinine 2-5 mg/dL")
    incomplete: bool = Field(default=False, description="Some check could not be read")


class FlagPublic(Public):
    """Something the reviewer must look at."""

    code: str = Field(description="The flag's code")
    detail: str = Field(description="What it means here")


class InterpretationPublic(Public):
    """A lab result read against the cutoffs and the participant's medications."""

    overall: str = Field(description="The result as a whole: negative, positive, explained, invalid, ...")
    summary: str = Field(description="The result in one sentence")
    findings: list[FindingPublic] = Field(default_factory=list, description="Each analyte's outcome")
    validity: ValidityPublic | None = Field(default=None, description="Specimen validity")
    flags: list[FlagPublic] = Field(default_factory=list, description="What the reviewer must look at")
    needs_review: bool = Field(default=False, description="A clinician or MRO must review it before it is final")
    cutoff_tables: list[str] = Field(default_factory=list, description="The cutoff tables used")


class MethodPublic(Public):
    """How one analyte's method (screen or confirm) was decided."""

    code: str | None = Field(default=None, description="The lab's code")
    analyte: str = Field(description="The analyte")
    method: str = Field(description="screen or confirm")
    basis: str | None = Field(
        default=None, description="loinc-code, clinic-override, clinic-mapping, lab-label or default"
    )
    note: str | None = Field(default=None, description="Why, for the review")


class ResultPublic(Public):
    """One lab result filed against the screening."""

    result_id: str = Field(description="The result's id")
    result_status: str = Field(description="P preliminary, F final, C corrected")
    received_at: str = Field(description="When it was received (ISO 8601)")
    interpretation: InterpretationPublic = Field(description="The result as interpreted")
    superseded_by: str | None = Field(default=None, description="The later result that replaced it")
    corrects: str | None = Field(default=None, description="The result it corrects")
    held_codes: list[str] = Field(
        default_factory=list,
        description="Codes held for staff: the result cannot be final until each is mapped or not monitored",
    )
    methods: list[MethodPublic] = Field(default_factory=list, description="How each analyte's method was decided")


class ReviewPublic(Public):
    """A clinician's (MRO's) review of a result."""

    decision: str = Field(description="confirm, excuse, request-confirmation or request-retest")
    explanation: str = Field(description="What was checked")
    actor: str = Field(description="Who reviewed it (a token id)")
    at: str | None = Field(default=None, description="When (ISO 8601)")
    reverses: bool = Field(
        default=False,
        description="It reverses the review that had decided the final result; "
        "every recipient told of the result was sent the amendment",
    )


class ConfirmationRequestPublic(Public):
    """A clinician's request that the lab confirm a screen; the staff worklist carries it until the lab answers."""

    requested_at: str = Field(description="When it was requested (ISO 8601)")
    actor: str = Field(description="The clinician who requested it (a token id)")
    result_id: str | None = Field(default=None, description="The presumptive result reviewed")
    lab_id: str = Field(description="The lab asked to confirm")
    specimen_id: str | None = Field(default=None, description="The specimen to confirm")
    analytes: list[str] = Field(default_factory=list, description="The analytes to confirm by GC-MS or LC-MS/MS")
    answered_by: str | None = Field(default=None, description="The confirmatory result, once it arrived")
    answered_at: str | None = Field(default=None, description="When it arrived")


class BreathResultPublic(Public):
    """A breath alcohol test read against the program's cutoff (49 CFR 40.251 for the confirmation)."""

    outcome: str = Field(description="negative or positive")
    basis: str | None = Field(
        default=None, description="breath-alcohol-confirmed, presumptive-screen, or null for a negative"
    )
    bac: float = Field(description="The reading that counts, g/210 L")
    reason: str = Field(description="Why, in words")
    device_id: str | None = Field(default=None, description="The evidential breath device")


class ScreeningStatePublic(Public):
    """A screening as it stands: window, collection, results, reviews and outcome."""

    screening_id: str = Field(description="The screening's id")
    participant_id: str = Field(description="The participant")
    site: str = Field(description="The collection site")
    day: date = Field(description="The program day it is for")
    reason: str = Field(description="random or for-cause")
    for_cause_reason: str | None = Field(default=None, description="Why staff ordered it (for-cause)")
    selected_at: str = Field(description="When it was selected (ISO 8601)")
    window_hours: float = Field(description="Hours from the notice to collect")
    status: str = Field(
        description="scheduled, awaiting-collection, awaiting-result, preliminary, "
        "awaiting-review, final, completed, missed, not-notified, window-lost, excused, "
        "refused, no-result or cancelled"
    )
    notified_at: str | None = Field(default=None, description="When the notice went out")
    told_at: str | None = Field(default=None, description="When the notice is known to have reached the participant")
    window_closes_at: str | None = Field(default=None, description="When the collection window closes")
    late_until: str | None = Field(default=None, description="A late collection is taken until then")
    miss_detail: str | None = Field(
        default=None, description="Why a window that closed without a collection is or is not reportable"
    )
    missed_at: str | None = Field(default=None, description="When it was recorded as missed")
    specimen_id: str | None = Field(default=None, description="The specimen id issued at collection")
    collection: CollectionPublic | None = Field(default=None, description="The collection as recorded")
    late_collection: bool = Field(default=False, description="Collected after the window")
    excuse: ExcusePublic | None = Field(default=None, description="Why it was excused")
    refusal: RefusalPublic | None = Field(default=None, description="The refusal recorded")
    admission: AdmissionPublic | None = Field(
        default=None, description="The witnessed admission of use recorded in place of a specimen"
    )
    cancel_reason: str | None = Field(default=None, description="Why it was cancelled")
    result_due_at: str | None = Field(default=None, description="When the lab's final result is due")
    result_overdue: bool = Field(default=False, description="The result is overdue")
    results: list[ResultPublic] = Field(default_factory=list, description="Lab results, first to last")
    current_result_id: str | None = Field(default=None, description="The result that counts now")
    reviews: list[ReviewPublic] = Field(default_factory=list, description="Clinician reviews, first to last")
    review_due_at: str | None = Field(default=None, description="When the review is due")
    review_overdue: bool = Field(default=False, description="The review is overdue")
    final_outcome: str | None = Field(
        default=None, description="negative, positive, explained, invalid or refusal, once final"
    )
    finalized_at: str | None = Field(default=None, description="When it became final")
    turnaround_hours: float | None = Field(default=None, description="Hours from collection to the final result")
    corrected_after_final: bool = Field(
        default=False, description="A result was corrected after it was final: reports already sent are corrected"
    )
    reopened_at: str | None = Field(
        default=None,
        description="When a correction reopened the screening after its "
        "workflow had closed (its correction period runs anew)",
    )
    breath_result: BreathResultPublic | None = Field(default=None, description="A breath test's result")
    confirmation_request: ConfirmationRequestPublic | None = Field(
        default=None,
        description="The last request that the lab confirm the screen (review decision "
        "request-confirmation), and whether its confirmatory result arrived",
    )
    timeline: list[ActivityPublic] = Field(default_factory=list, description="What happened, in order")

    @classmethod
    def of(cls, value: Any):
        if value is None:
            return None
        found = cls.model_validate(value, from_attributes=True)
        events = value.get("events") if isinstance(value, dict) else getattr(value, "events", None)
        found.timeline = [ActivityPublic.model_validate(e, from_attributes=True) for e in events or []]
        return found


# --- medication order ------------------------------------------------------------------------------


class SchedulePublic(Public):
    """When doses are due."""

    kind: str = Field(description="daily-observed, observed-plus-take-home or injection")
    observed_weekdays: list[int] = Field(default_factory=list, description="Weekdays dosed at the clinic (0 = Monday)")
    every_days: int | None = Field(default=None, description="Injection interval in days")
    grace_days: int | None = Field(default=None, description="An injection is overdue after due + grace")


class OrderTermsPublic(Public):
    """The order as the prescriber gave it."""

    drug: str = Field(description="The medication")
    dose: float = Field(description="Per dose")
    unit: str = Field(description="Unit of dose")
    route: str = Field(description="How it is given")
    schedule: SchedulePublic = Field(description="When doses are due")
    start_date: date = Field(description="First day")
    stop_date: date | None = Field(default=None, description="Last day; null for open-ended")
    prescriber: str = Field(description="Who prescribed it")
    dose_override_reason: str | None = Field(default=None, description="Why a dose above the usual maximum")


class EligibilityPublic(Public):
    """Take-home eligibility now, with the reasons."""

    max_take_home_days: int = Field(description="Take-home days allowed now, beyond clinic-closed days")
    cap: int = Field(description="The time-in-treatment cap before the other criteria")
    reasons: list[str] = Field(default_factory=list, description="One line per criterion")
    not_met: list[str] = Field(default_factory=list, description="Criteria that lowered the cap")
    basis: str = Field(description="The rules it was judged by")


class AdherencePublic(Public):
    """Doses taken of doses expected over a window ending yesterday."""

    window_days: int = Field(description="The window's length in days")
    first_day: date = Field(description="Its first day")
    last_day: date = Field(description="Its last day")
    expected: int = Field(description="Doses expected")
    taken: int = Field(description="Doses taken")
    ratio: float | None = Field(description="taken / expected; null when none was expected")


class ExpectedPublic(Public):
    """What the order expects on a day."""

    day: date = Field(description="The day")
    kind: str = Field(description="observed-dose, take-home-day, injection-due, injection-overdue or none")
    reason: str = Field(description="Why, in words")


class SupplyPublic(Public):
    """A take-home supply."""

    dispensed_on: date = Field(description="When it was given")
    dates: list[str] = Field(description="The days it covers (YYYY-MM-DD)")
    bottle_ids: list[str] = Field(default_factory=list, description="Its bottles")


class CallbackPublic(Public):
    """A random callback: the participant brings every take-home bottle back in time. Its time is not shown
    until the call is made (a callback announced ahead is no check)."""

    status: str = Field(description="scheduled, called, kept or missed")
    call_at: str | None = Field(
        default=None, description="When the participant was called (ISO 8601); null while scheduled"
    )
    respond_hours: int = Field(description="Hours to bring the bottles")
    bottles: list[str] = Field(default_factory=list, description="The bottles asked for")
    deadline: str | None = Field(default=None, description="When the bottles are due back")

    @field_validator("call_at", mode="after")
    @classmethod
    def _not_before_the_call(cls, value: str | None, info) -> str | None:
        return None if info.data.get("status") == "scheduled" else value


class GuestPublic(Public):
    """Guest dosing at another site."""

    home_order_id: str = Field(description="The order it copies")
    site: str = Field(description="The guest site")
    first_day: date = Field(description="First day dosed there")
    last_day: date = Field(description="Last day dosed there")


class MedicationStatePublic(Public):
    """A medication order as it stands: doses, holds, adherence, take-home eligibility, diversion control."""

    order_id: str = Field(description="The order")
    participant_id: str = Field(description="The participant")
    status: str = Field(description="active, held or stopped")
    order: OrderTermsPublic = Field(description="The order's terms now")
    rules: str = Field(description="The take-home rule set")
    treatment_start: date = Field(description="First day of treatment (time-in-treatment counts from it)")
    timezone: str = Field(description="The time zone of the order's days")
    hold_reason: str | None = Field(default=None, description="Why dosing is held")
    reassessment_required: bool = Field(default=False, description="A clinician reassesses before the next dose")
    hold_released_by: str | None = Field(default=None, description="Who last released a hold (a token id)")
    plain_reason: str = Field(default="", description="The missed-dose or hold state in one sentence")
    outcomes: dict[str, str] = Field(
        default_factory=dict, description="Day -> dosed, take-home, injection, missed, held or refused (last 45 days)"
    )
    split_parts: dict[str, int] = Field(default_factory=dict, description="Day -> parts of a split dose given")
    missed_run: int = Field(default=0, description="Doses missed in a row")
    take_home_covered_until: date | None = Field(default=None, description="The last day take-homes cover")
    last_injection: date | None = Field(default=None, description="The last injection's day")
    eligibility: EligibilityPublic | None = Field(
        default=None, description="Take-home eligibility now; null before it is evaluated"
    )
    adherence_7d: AdherencePublic | None = Field(default=None, description="Adherence over the last 7 days")
    adherence_30d: AdherencePublic | None = Field(default=None, description="Adherence over the last 30 days")
    next_due: ExpectedPublic | None = Field(default=None, description="What is due next")
    evaluated_through: date | None = Field(default=None, description="The last day whose doses were checked")
    dispense_count: int = Field(default=0, description="Dispenses recorded")
    supplies: list[SupplyPublic] = Field(default_factory=list, description="Take-home supplies given")
    injections: list[str] = Field(default_factory=list, description="Days an injection was given")
    bottles_out: dict[str, str] = Field(
        default_factory=dict, description="Bottle id -> the day it was given, for bottles not yet back"
    )
    callbacks: list[CallbackPublic] = Field(default_factory=list, description="Random callbacks")
    diversion_flag_since: date | None = Field(default=None, description="A diversion concern is open since")
    safe_storage_attested: bool = Field(default=False, description="Safe storage of take-homes attested")
    closed_days: list[str] = Field(default_factory=list, description="Clinic-closed days: no dose due")
    guest: GuestPublic | None = Field(default=None, description="On a guest order: where and when")
    guest_orders: list[str] = Field(default_factory=list, description="Guest copies started from this order")
    timeline: list[ActivityPublic] = Field(default_factory=list, description="What happened, last 100")

    @field_validator("eligibility", "adherence_7d", "adherence_30d", "next_due", "guest", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return _none_if_empty(value)

    @classmethod
    def of(cls, value: Any):
        if value is None:
            return None
        found = cls.model_validate(value, from_attributes=True)
        events = value.get("events") if isinstance(value, dict) else getattr(value, "events", None)
        found.timeline = [ActivityPublic.model_validate(e, from_attributes=True) for e in events or []]
        return found
