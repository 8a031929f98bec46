"""ScreeningWorkflow (workflows/screening.py): its input, state and updates, and what it hands its activities
(notifications, the call list, miss assessments). The lab results it files are in workflows.contracts.results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from domain.result_basis import BreathResult
from domain.vocab import RefusalKind, ScreeningStatus
from workflows.contracts.results import ConfirmationRequest, ResultEntry, Review

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
# A lab result's course.
PRELIMINARY = ScreeningStatus.PRELIMINARY  # a P result is in: never final by itself
AWAITING_REVIEW = ScreeningStatus.AWAITING_REVIEW
FINAL = ScreeningStatus.FINAL
NO_RESULT = ScreeningStatus.NO_RESULT  # the lab never answered: a reportable gap


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
