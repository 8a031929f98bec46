"""MedicationWorkflow (workflows/medication.py): its input, state and updates, and the rows it records."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.ledger import DoseLedger, Supply
from domain.medication import Adherence, Callback, Dispense, Expected, MedicationOrder
from domain.takehome import Eligibility


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
