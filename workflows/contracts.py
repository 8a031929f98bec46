"""Data that crosses Temporal: workflow inputs, update arguments, query results, activity
arguments. Ids and clinical facts only; never names, birth dates or contact details.

Plain dataclasses of JSON-friendly fields (dates as ISO strings) so payloads stay readable after
decryption and stable across versions: add fields with defaults, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from domain.analytes import AddedAnalyte
from domain.interpretation import Interpretation
from domain.ledger import DoseLedger, Supply
from domain.loinc_tox import AnalyteMethod
from domain.medication import Adherence, Callback, Dispense, Expected, MedicationOrder
from domain.plan import TestingPlan
from domain.program import SPECIMEN_TYPES as SPECIMEN_TYPES  # re-exported for the workflows
from domain.result_basis import BreathResult
from domain.selection import DrawInputs
from domain.takehome import Eligibility
from domain.vocab import (
    DISCHARGE_STATUSES as DISCHARGE_STATUSES,  # re-exported for the workflows
)
from domain.vocab import (
    FinalOutcome,
    ParticipantStatus,
    RefusalKind,
    ReviewDecision,
    ScreeningStatus,
)

ACTIVE = ParticipantStatus.ACTIVE


def disclosure_workflow_id(disclosure_id: str) -> str:
    return f"disclosure-{disclosure_id}"


def participant_workflow_id(participant_id: str) -> str:
    return f"participant-{participant_id}"


def selection_period_workflow_id(task_queue: str, program: str, period: str) -> str:
    """One per deployment (its task queue, like the reconciler's schedule), program and period."""
    return f"selection-period--{task_queue}--{program}--{period}"


def selection_notice_workflow_id(notice_id: str) -> str:
    return f"selection-notice--{notice_id}"


@dataclass
class PhaseEntry:
    phase: str
    since: str  # ISO datetime
    reason: str
    actor: str


@dataclass
class ParticipantState:
    participant_id: str
    program: str
    site: str
    phase: str
    start_date: str
    timezone: str
    plan: TestingPlan
    status: str = ACTIVE
    phase_history: list[PhaseEntry] = field(default_factory=list)
    discharge_kind: str | None = None
    discharge_reason: str | None = None
    discharged_at: str | None = None
    discharged_by: str | None = None
    runs: int = 1  # how many runs this program has had (continue-as-new)
    # Selection. The plan of a phase change applies from the next program day.
    next_plan: TestingPlan | None = None
    next_plan_from: str | None = None
    plan_since: str | None = None  # the program day the current plan took effect (None: start_date)
    next_draw_day: str | None = None  # None until the first draw is planned
    pending_time_roll: float | None = None  # drawn at the start of next_draw_day's wait
    # The day whose pending_time_roll is a verifiable HMAC roll (patch "verifiable-selection").
    verifiable_roll_for: str | None = None
    recent_selections: list[str] = field(default_factory=list)  # last 7 selected days
    draws_recorded: int = 0
    pauses: list[Pause] = field(default_factory=list)
    screenings: list[ScreeningRef] = field(default_factory=list)  # the last 30 days'
    check_ins: dict[str, CheckIn] = field(default_factory=dict)  # day -> first check-in (last 7 days)
    for_cause_count: int = 0
    medications: list[str] = field(default_factory=list)  # order ids of medication workflows
    # The plan fixed for next_draw_day when its wait began (a program version keeps for the whole day).
    day_plan: TestingPlan | None = None
    day_plan_for: str | None = None
    phases: list[str] = field(default_factory=list)  # the program's phases (empty: the built-in ones)


@dataclass
class ParticipantInput:
    state: ParticipantState
    # True when this run continues an earlier one: the record was confirmed then.
    continued: bool = False


@dataclass
class PhaseChange:
    phase: str
    reason: str
    actor: str


@dataclass
class Discharge:
    kind: str
    reason: str
    actor: str


@dataclass
class ParticipantSync:
    """What the participant's SQL row must say after a workflow change."""

    participant_id: str
    phase: str
    status: str
    discharged_at: str | None = None


# ApplicationError types that the API maps to HTTP statuses.
CONFLICT = "Conflict"  # the request does not fit the current state (409)
INVALID = "Invalid"  # the request itself is wrong (422)


# --- screening -------------------------------------------------------------------------------

# Refusals to test; a verified adulterated or substituted specimen is one too.
REFUSAL_KINDS = tuple(RefusalKind)
# Where a screening is. The last five end the collection stage.
SCHEDULED = ScreeningStatus.SCHEDULED  # drawn, the participant not yet told
AWAITING_COLLECTION = ScreeningStatus.AWAITING_COLLECTION
AWAITING_RESULT = ScreeningStatus.AWAITING_RESULT
COMPLETED = ScreeningStatus.COMPLETED  # a breath test: the reading is the result
MISSED = ScreeningStatus.MISSED
EXCUSED = ScreeningStatus.EXCUSED
REFUSED = ScreeningStatus.REFUSED
CANCELLED = ScreeningStatus.CANCELLED


@dataclass
class PocReading:
    """A point-of-care cup or strip reading: presumptive only, never a final result."""

    analyte: str
    result: str  # positive | negative | invalid


@dataclass
class Collection:
    specimen_type: str
    observed: bool
    collector: str
    collected_at: str | None = None  # ISO datetime; when absent, the moment it is recorded
    temperature_in_range: bool | None = None
    temperature_f: float | None = None
    poc_readings: list[PocReading] = field(default_factory=list)
    breath_alcohol: float | None = None  # g/210 L, breath tests only: the screening test
    # The evidential confirmation test, at least 15 minutes after the screening test (49 CFR 40.251).
    breath_confirmation: float | None = None
    breath_confirmation_at: str | None = None  # ISO datetime of the confirmation test
    breath_device_id: str | None = None  # the evidential breath testing device
    custody_notes: str | None = None
    late: bool = False
    late_reason: str | None = None
    actor: str = ""


@dataclass
class Admission:
    """The participant's documented admission of use, instead of a specimen: reported as a positive with basis
    admitted-use (domain.result_basis.Basis), naming who witnessed it."""

    # Field descriptions for the API's schema, read from the docstrings below (a plain dict: no pydantic here).
    __pydantic_config__: ClassVar[dict[str, bool]] = {"use_attribute_docstrings": True}

    substances: list[str]
    """What the participant admitted using, e.g. ["cocaine"] (reported as positive_for)"""
    witnessed_by: str
    """The staff member who witnessed the admission (reported with it)"""
    statement: str
    """What the participant said, as documented (kept in the record, never reported)"""
    actor: str = ""
    """The token id that recorded it"""
    admitted_at: str | None = None
    """When the admission was made (ISO 8601); defaults to when it was recorded"""


@dataclass
class Excuse:
    reason: str
    actor: str


@dataclass
class Refusal:
    kind: str
    detail: str
    actor: str


@dataclass
class ScreeningEvent:
    at: str
    what: str
    actor: str = "system"
    detail: str = ""


@dataclass
class ScreeningInput:
    screening_id: str
    participant_id: str
    site: str
    day: str  # the program day it belongs to (ISO date, program time zone)
    reason: str  # random | for-cause
    selected_at: str
    window_hours: float
    timezone: str
    for_cause_reason: str | None = None
    selection_detail: str = ""
    result_due_hours: float = 48.0
    late_grace_hours: float = 24.0
    # The site's closing time on the day (ISO datetime): the window ends then, never after. None: not clipped.
    site_closes_at: str | None = None
    breath_alcohol_cutoff: float = 0.02  # g/210 L, the program's (domain.program.Program)
    # A screening whose workflow had closed, started again from its last saved state because a correction came
    # (iop/reopen.py): it resumes where it stopped, with a fresh correction period. None: a new screening.
    reopen: ScreeningState | None = None
    # Remind a told, uncollected participant this many hours before the window closes (0: never).
    reminder_hours: float = 0.0


@dataclass
class ScreeningState:
    screening_id: str
    participant_id: str
    site: str
    day: str
    reason: str
    selected_at: str
    window_hours: float
    for_cause_reason: str | None = None
    status: str = SCHEDULED
    notified_at: str | None = None
    window_closes_at: str | None = None
    told_at: str | None = None  # the notice is known to have reached the participant (adapter or check-in)
    miss_detail: str | None = None  # why a window that closed without a collection is or is not reportable
    late_until: str | None = None
    specimen_id: str | None = None
    collection: Collection | None = None
    late_collection: bool = False
    missed_at: str | None = None
    excuse: Excuse | None = None
    admission: Admission | None = None  # a documented admission of use, in place of a specimen
    refusal: Refusal | None = None
    cancel_reason: str | None = None
    result_due_at: str | None = None
    result_overdue: bool = False
    events: list[ScreeningEvent] = field(default_factory=list)
    results: list[ResultEntry] = field(default_factory=list)
    current_result_id: str | None = None
    reviews: list[Review] = field(default_factory=list)
    review_due_at: str | None = None
    review_overdue: bool = False
    final_outcome: str | None = None
    finalized_at: str | None = None
    turnaround_hours: float | None = None  # collection to final result
    # A result corrected after it was final: any report already sent must be corrected.
    corrected_after_final: bool = False
    breath_result: BreathResult | None = None  # a breath test's result
    # When a correction reopened the screening after its workflow had closed (its correction period runs anew).
    reopened_at: str | None = None
    confirmation_request: ConfirmationRequest | None = None  # the last request to the lab to confirm a screen
    # Incremented on every save, so a slower, older save can never overwrite a newer one.
    revision: int = 0


NOT_NOTIFIED = ScreeningStatus.NOT_NOTIFIED  # the window closed and the participant was never told: staff decide
WINDOW_LOST = ScreeningStatus.WINDOW_LOST  # told too late, or the site was closed: staff decide
# Only these take a collection, an excuse or a refusal.
TAKES_COLLECTION = (SCHEDULED, AWAITING_COLLECTION, MISSED, NOT_NOTIFIED, WINDOW_LOST)


def already_message(state: ScreeningState) -> str:
    """Why a screening takes no more collection, excuse or refusal: what already happened."""
    collected = state.collection is not None
    details: dict[str, str] = {
        MISSED: f" at {state.missed_at}",
        EXCUSED: f": {state.excuse.reason}" if state.excuse else "",
        REFUSED: f": {state.refusal.kind}" if state.refusal else "",
        CANCELLED: f": {state.cancel_reason}",
    }
    when = details.get(state.status, "")
    if collected and state.status not in (EXCUSED, REFUSED, CANCELLED):
        return f"screening {state.screening_id} is already collected (specimen {state.specimen_id}, now {state.status})"
    return f"screening {state.screening_id} is already {state.status}{when}"


@dataclass
class Notification:
    notification_id: str  # stable across retries: the adapter sends each one once
    participant_id: str
    screening_id: str
    kind: str  # test-required | for-cause-test | reminder
    report_by: str  # ISO datetime
    site: str


@dataclass
class NoticeResult:
    """What the notification adapter did: the workflow carries this, never a phone number."""

    status: str  # recorded | accepted | delivered | no-phone
    told_at: str | None = None  # set when the notice is known to have reached the participant


@dataclass
class CallListItem:
    notification_id: str
    participant_id: str
    screening_id: str | None
    reason: str
    window_closes_at: str | None


@dataclass
class MissQuestion:
    screening_id: str
    participant_id: str
    notification_id: str
    day: str
    window_opened_at: str
    window_closes_at: str
    told_at: str | None = None  # when the workflow learnt the notice reached the participant


@dataclass
class MissAssessment:
    status: str  # domain.misses.VERDICTS
    reportable: bool
    detail: str


@dataclass
class ProgramDayRequest:
    program: str
    site: str
    phase: str
    day: str


@dataclass
class DayPlan:
    """The plan a stored program version gives for one day."""

    plan: TestingPlan
    program_id: str
    version: int
    phases: list[str] = field(default_factory=list)


@dataclass
class ColourDayRequest:
    """A colour-mode program's colours on one day at one site, and the participant's own colour."""

    program: str
    version: int
    site: str
    day: str
    participant_id: str


@dataclass
class ColourDayAnswer:
    colours: list[str]  # the colours called that day (drawn once per program, site and day)
    own: str | None  # the participant's colour (None: none assigned)
    program_version: int  # the version whose colours were drawn
    drawn_detail: str = ""  # each colour's outcome, for the draw record
    own_probability: float = 0.0  # the probability the participant's colour was drawn with


@dataclass
class Alert:
    kind: str  # result-overdue | ...
    participant_id: str
    subject_id: str
    detail: str


# --- participant: selection, pauses, check-ins, for-cause ------------------------------------


@dataclass
class Pause:
    start: str  # ISO date, first paused day
    end: str  # ISO date, last paused day
    reason: str
    actor: str


@dataclass
class DrawRecord:
    """One day's draw, recorded for auditors; roll values let anyone re-check the outcome."""

    participant_id: str
    day: str
    phase: str
    weekday: int
    probability: float
    roll: float
    time_roll: float
    selected: bool
    reason: str
    detail: str
    screening_id: str | None = None
    program_id: str | None = None
    program_version: int | None = None
    verifiable: bool = False  # rolls are HMACs of the period's committed seed (domain/verifiable.py)
    draw_minute: str | None = None  # local HH:MM the draw was made
    inputs: DrawInputs | None = None  # what a verifiable draw was computed from


@dataclass
class RollRequest:
    """A verifiable roll (domain/verifiable.py): the seed stays in the worker; only the roll enters history."""

    program: str
    participant_id: str
    day: str
    purpose: str  # select | minute


@dataclass
class SelectionPeriodInput:
    """SelectionPeriodWorkflow: one program period, from its commitment to its reveal (no seed in here)."""

    program: str
    period: str  # YYYY-MM


@dataclass
class PeriodOpened:
    commitment: str
    published_at: str  # ISO
    reveal_at: str  # ISO, UTC: domain.verifiable.reveal_moment


@dataclass
class RevealRequest:
    program: str
    period: str
    at: str  # ISO: the workflow's now, which the reveal is checked against


@dataclass
class NoticePlan:
    program: str
    period: str
    kind: str  # domain.verifiable.NoticeKind


@dataclass
class SelectionPeriodState:
    program: str = ""
    period: str = ""
    commitment: str = ""
    status: str = "opening"  # opening | committed | revealed
    reveal_at: str | None = None
    notices: list[str] = field(default_factory=list)


@dataclass
class CheckIn:
    method: str  # kiosk | ivr | sms | app | staff
    actor: str
    at: str | None = None  # filled by the workflow


@dataclass
class CheckInAnswer:
    participant_id: str
    day: str
    must_test: bool
    screening_id: str | None
    report_by: str | None
    message: str


@dataclass
class CheckInDay:
    participant_id: str
    day: str
    checked_in_at: str | None
    method: str | None
    required: bool = False  # the phase asks for a daily check-in
    reportable: bool = False  # and a missed one is reportable (where consent allows)


@dataclass
class ForCause:
    reason: str
    actor: str


@dataclass
class ScreeningRef:
    screening_id: str
    day: str
    reason: str
    report_by: str


# --- lab results -----------------------------------------------------------------------------

PRELIMINARY = ScreeningStatus.PRELIMINARY  # a P result is in: never final by itself
AWAITING_REVIEW = ScreeningStatus.AWAITING_REVIEW
FINAL = ScreeningStatus.FINAL
NO_RESULT = ScreeningStatus.NO_RESULT  # the lab never answered: a reportable gap
REVIEW_DECISIONS = tuple(ReviewDecision)
# Final outcomes a report can carry.
FINAL_NEGATIVE = FinalOutcome.NEGATIVE
FINAL_POSITIVE = FinalOutcome.POSITIVE
FINAL_EXPLAINED = FinalOutcome.EXPLAINED  # non-negative with a documented legitimate explanation
FINAL_INVALID = FinalOutcome.INVALID
FINAL_REFUSAL = FinalOutcome.REFUSAL


@dataclass
class AnalyteIn:
    """One mapped analyte result as the lab sent it (see domain.interpretation.AnalyteResult)."""

    analyte: str
    value: float | None = None
    qualitative: str | None = None
    units: str | None = None
    lab_cutoff: float | None = None
    method: str = "screen"
    code: str | None = None  # the lab's code, kept for the record
    # Why this method (domain.loinc_tox.resolve_method): loinc-code | clinic-override | clinic-mapping |
    # lab-label | default, and a line for the review. None in results recorded before issue 19.
    method_basis: str | None = None
    method_note: str | None = None


@dataclass
class LabReport:
    """A lab's result for one specimen, matched to a screening by the ingest."""

    result_id: str  # ours; the same result sent twice has the same id
    lab_id: str
    message_ref: str  # lab message row id, for the audit trail
    specimen_id: str
    result_status: str  # P | F | C
    received_at: str
    analytes: list[AnalyteIn]
    collected_at: str | None = None
    expected_medications: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Codes of this specimen not in the code table, held for staff ("CODE (text) from LAB"): the
    # mapped analytes are filed and interpreted, but the result cannot be final until each is
    # mapped or marked not monitored (issue 19).
    held_codes: list[str] = field(default_factory=list)
    # Admin-added analytes among `analytes`, so that the interpreter knows their class, medication
    # links and default cutoffs (issue 19). Empty in reports recorded before.
    added_analytes: list[AddedAnalyte] = field(default_factory=list)


@dataclass
class SettledCodes:
    """Staff settled one held code: `report` is the result again, with the code now mapped (and its
    analyte among report.analytes) or dropped as not monitored, and the codes still held."""

    report: LabReport
    code: str
    resolution: str  # mapped | not-monitored
    actor: str
    note: str


@dataclass
class ResultEntry:
    """One lab result as filed. Its interpretation and methods are the domain's own frozen dataclasses: the data
    converter encodes them as dataclasses.asdict, with the keys interpretation_to_dict wrote before issue 14, so the
    states in older histories and saved snapshots decode to them (iop.codec.from_json for a snapshot)."""

    result_id: str
    result_status: str
    received_at: str
    interpretation: Interpretation
    superseded_by: str | None = None
    corrects: str | None = None
    held_codes: list[str] = field(default_factory=list)
    # How each analyte's method was decided: shown in the review.
    methods: list[AnalyteMethod] = field(default_factory=list)
    lab_id: str = ""  # the lab that sent it ("" in results recorded before it was kept)


@dataclass
class Review:
    decision: str
    explanation: str
    actor: str
    at: str | None = None
    # A clinician reverses the review that decided a final result: the new decision replaces it and every
    # recipient told of the result is sent the amendment (issue 16).
    reverses: bool = False


@dataclass
class ConfirmationRequest:
    """A clinician asked the lab to confirm a screen (review decision request-confirmation): the staff worklist
    carries it until a result by a confirmatory method arrives for the analytes named."""

    requested_at: str
    actor: str
    result_id: str | None  # the presumptive result the clinician reviewed
    lab_id: str
    specimen_id: str | None
    analytes: list[str] = field(default_factory=list)
    answered_by: str | None = None  # the confirmatory result's id, once it arrived
    answered_at: str | None = None


# --- medication ------------------------------------------------------------------------------


@dataclass
class MedicationInput:
    order: MedicationOrder
    participant_id: str
    site: str
    timezone: str
    rules: str  # take-home rule set name (domain.takehome.RULE_SETS)
    treatment_start: str  # first day of treatment (time-in-treatment bands count from it)
    state: MedicationState | None = None  # set when continuing as new
    # Clinic-closed days (ISO dates) from the program calendar: no dose is due unless a supply covers one.
    closed_days: list[str] = field(default_factory=list)
    guest: GuestPeriod | None = None  # set on a guest order: a time-limited copy dosed at another site


@dataclass
class MedicationEvent:
    at: str
    what: str
    actor: str = "system"
    detail: str = ""


@dataclass
class MedicationEventEntry:
    """A medication event to record in SQL (the workflow's local activity): a missed dose, a hold, a pill count..."""

    id: str
    order_id: str
    participant_id: str
    day: str
    kind: str
    actor: str
    detail: str


@dataclass
class MedicationState:
    order_id: str
    participant_id: str
    order: MedicationOrder
    rules: str
    treatment_start: str
    timezone: str
    status: str = "active"  # active | held | stopped
    hold_reason: str | None = None
    reassessment_required: bool = False
    # day -> what happened: dosed | take-home | injection | missed | held | refused (last 45 days)
    outcomes: dict[str, str] = field(default_factory=dict)
    take_home_covered_until: str | None = None
    last_injection: str | None = None
    injection_alerted_for: str | None = None  # the due date an overdue alert was raised for
    missed_run: int = 0
    count_misses_after: str | None = None  # a reassessment starts the count afresh
    diversion_flag_since: str | None = None
    safe_storage_attested: bool = False
    recent_screens: list[ScreenOutcome] = field(default_factory=list)  # last 60 days
    # None until first weighed.
    eligibility: Eligibility | None = None
    adherence_7d: Adherence | None = None
    adherence_30d: Adherence | None = None
    next_due: Expected | None = None
    evaluated_through: str | None = None  # last program day whose doses were checked
    dispense_count: int = 0
    event_count: int = 0
    events: list[MedicationEvent] = field(default_factory=list)  # the last 100
    # Issue 18: the dose ledger's take-home supplies and injections, the bottles out with the participant
    # (id -> day dispensed), callbacks, guest periods, closed days.
    supplies: list[Supply] = field(default_factory=list)
    injections: list[str] = field(default_factory=list)
    bottles_out: dict[str, str] = field(default_factory=dict)
    callbacks: list[Callback] = field(default_factory=list)
    closed_days: list[str] = field(default_factory=list)
    guest: GuestPeriod | None = None  # on a guest order
    guest_orders: list[str] = field(default_factory=list)  # guest copies started from this order
    hold_released_by: str | None = None
    plain_reason: str = ""  # the missed-dose / hold state in one plain sentence for the dashboard
    split_parts: dict[str, int] = field(default_factory=dict)  # day -> parts of a split dose given


@dataclass
class GuestPeriod:
    """Guest dosing: the participant doses at `site` from `first_day` to `last_day` (inclusive)."""

    home_order_id: str
    site: str
    first_day: str
    last_day: str


@dataclass
class GuestRequest:
    site: str
    first_day: str
    last_day: str
    actor: str


@dataclass
class BottleReturn:
    bottle_ids: list[str]
    actor: str
    note: str = ""


@dataclass
class CallbackPolicy:
    """Random callbacks: within the next `window_days` the participant is called back once, at a
    random time, and has `respond_hours` to bring every bottle out."""

    window_days: int
    respond_hours: int
    actor: str


@dataclass
class DispenseRecord:
    kind: str  # observed-dose | take-home | refused | held | injection
    actor: str
    dose: float | None = None
    unit: str | None = None
    take_home_count: int = 0
    bottle_ids: list[str] = field(default_factory=list)
    lot: str | None = None
    site: str | None = None
    note: str | None = None
    split_parts: int = 1  # a split dose: this record is one of `split_parts` equal parts of the day's dose


@dataclass
class Reassessment:
    decision: str  # resume | keep-holding
    note: str
    actor: str


@dataclass
class DoseChange:
    dose: float
    unit: str
    reason: str
    actor: str
    # Why a dose above the drug's usual maximum is right (domain.medication.check_dose); kept with the order.
    override_reason: str | None = None


@dataclass
class OrderStop:
    reason: str
    actor: str


@dataclass
class PillCountRecord:
    bottle_id: str
    expected_units: float
    counted_units: float
    returned_on_time: bool
    seal_intact: bool
    actor: str


@dataclass
class StorageAttestation:
    attested: bool
    note: str
    actor: str


@dataclass
class ScreenOutcome:
    """A screening's final outcome, as take-home rules weigh it."""

    screening_id: str
    day: str
    result: str  # negative | positive | expected-absent | missed | refused | invalid


@dataclass
class MedicationStart:
    order: MedicationOrder
    rules: str
    treatment_start: str | None = None
    closed_days: list[str] = field(default_factory=list)  # clinic-closed days (ISO), from the program calendar


@dataclass
class DispenseEntry:
    """A dispense to record in SQL (the workflow's local activity): the domain's Dispense, with its ids."""

    dispense_id: str
    order_id: str
    participant_id: str
    dispense: Dispense
    note: str | None = None
    covered_dates: list[str] | None = None  # a take-home supply: the days it covers


@dataclass
class MedicationSync:
    order_id: str
    status: str
    order: MedicationOrder
    eligibility: Eligibility | None
    ledger: DoseLedger | None = None
    closed_days: list[str] = field(default_factory=list)


# --- disclosure ------------------------------------------------------------------------------


@dataclass
class DisclosureEvent:
    """Something reportable happened; each recipient that wants its category gets a disclosure."""

    participant_id: str
    category: str  # domain.consent.CATEGORIES
    event_ref: str  # what it is about: a screening id, "phase-2026-11-23", ...
    facts: dict[str, Any]  # the minimum facts (no PHI); the allow-list trims them again
    corrects_event: bool = False  # a corrected result: re-disclose to whoever got the original


@dataclass
class PlannedDisclosure:
    disclosure_id: str
    recipient_id: str
    corrects: str | None = None
    # The report's category: a retraction keeps the category of the report it withdraws. None in plans
    # recorded before issue 16 (the event's category).
    category: str | None = None


@dataclass
class DisclosureInput:
    disclosure_id: str
    participant_id: str
    recipient_id: str
    category: str


@dataclass
class AttemptResult:
    """One delivery attempt, decided by the activity that made it."""

    kind: str  # delivered | retry | waiting | disable-recipient | stop-and-surface | blocked
    reason: str
    delay_s: float | None = None
    status_code: int | None = None


@dataclass
class DisclosureState:
    disclosure_id: str
    status: str = "pending"  # pending | retrying | delivered | blocked | failed | cancelled
    attempts: int = 0
    reason: str = ""
    last_status_code: int | None = None
    cancelled_because: str | None = None


@dataclass
class CheckpointTaken:
    """An audit checkpoint was signed and written (no PHI: a sequence number and a time)."""

    seq: int
    at: str
