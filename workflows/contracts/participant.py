"""ParticipantWorkflow (workflows/participant.py): its state and updates, and what it asks its activities
for its daily draw (the program's plan and colours, a verifiable roll) and records (draws, check-ins)."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.plan import TestingPlan
from domain.selection import DrawInputs
from domain.vocab import ParticipantStatus

ACTIVE = ParticipantStatus.ACTIVE


def participant_workflow_id(participant_id: str) -> str:
    return f"participant-{participant_id}"


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


# --- the daily draw ------------------------------------------------------------------------------


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


# --- pauses, check-ins, for-cause ---------------------------------------------------------------


@dataclass
class Pause:
    start: str  # ISO date, first paused day
    end: str  # ISO date, last paused day
    reason: str
    actor: str


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
