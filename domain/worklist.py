"""The staff worklist: what each alert, held lab message or failing report asks staff to do.

One table (KINDS) turns a raw alert kind (what a workflow passed to `raise_alert`, or a quarantine
reason code) into a worklist item: its kind, the plain words for what to do, how urgent it is, when
it is due, which role owns it and to which role it escalates when nobody resolves it. Adding an
alert kind is one row here; a kind not in the table still lands, as a generic item (OTHER), so no
alert is ever dropped.

Pure and stdlib-only: the caller passes every moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class WorklistKind(StrEnum):
    """What a worklist item asks staff to do."""

    RESULT_OVERDUE = "result-overdue"
    REVIEW_OVERDUE = "review-overdue"
    MISSED_DOSES = "missed-doses"
    REASSESSMENT = "reassessment-required"
    INJECTION_OVERDUE = "injection-overdue"
    DIVERSION = "diversion"
    CALLBACK_DUE = "callback-due"
    DISCLOSURE_FAILED = "disclosure-failed"
    DISCLOSURE_BLOCKED = "disclosure-blocked"
    LAB_QUARANTINE = "lab-quarantine"
    INTAKE_STALLED = "intake-stalled"
    NOT_NOTIFIED = "not-notified"
    MISSED_CHECK_IN = "missed-check-in"
    CALL_LIST = "call-list"
    MISS_DECISION = "miss-needs-decision"
    CONFIRMATION_REQUESTED = "confirmation-requested"
    ENROLLMENT_ROLLED_BACK = "enrollment-rolled-back"
    ENROLLMENT_STUCK = "enrollment-stuck"
    OTHER = "other"


class Severity(StrEnum):
    """How soon a worklist item needs a person."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Source(StrEnum):
    """Where an item came from; (source, source_ref) identifies it, so it is opened once."""

    ALERT = "alert"  # an `alerts` row: source_ref is "<kind>:<subject id>"
    QUARANTINE = "lab-quarantine"  # a `lab_quarantine` row: source_ref is its id
    DISCLOSURE = "disclosure"  # a blocked report: source_ref is the disclosure id
    CALL_LIST = "call-list"  # a `call_list` row: source_ref is its id
    RECONCILER = "reconciler"  # a reconciler finding: source_ref is "<kind>:<participant id>"


class Status(StrEnum):
    """Where a worklist item is."""

    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class Outcome(StrEnum):
    """How an item was closed: a closed vocabulary, so the worklist can be counted."""

    DONE = "done"  # what the item asked for was done
    CONTACTED = "participant-contacted"
    NOT_REACHED = "participant-not-reached"
    REFERRED = "referred-to-clinician"
    NO_ACTION = "no-action-needed"
    DUPLICATE = "duplicate"
    RESOLVED_AT_SOURCE = "resolved-at-source"  # the system: the quarantine item or report was settled


STAFF_OUTCOMES = tuple(o for o in Outcome if o is not Outcome.RESOLVED_AT_SOURCE)
# Outcomes that say nothing was done need a note saying why.
NEEDS_NOTE = frozenset({Outcome.NO_ACTION, Outcome.NOT_REACHED})
SEVERITY_ORDER = {Severity.URGENT: 0, Severity.HIGH: 1, Severity.NORMAL: 2, Severity.LOW: 3}


@dataclass(frozen=True)
class Step:
    """After this long without a resolution (counted from when the item was opened), it goes to `role`."""

    after: timedelta
    role: str


@dataclass(frozen=True)
class KindSpec:
    kind: WorklistKind
    title: str  # a few words for the list
    subject_type: str  # participant | screening | medication-order | disclosure | lab-message | enrollment
    todo: str  # what to do, in plain words
    severity: Severity
    owner_role: str  # who works it first
    due_in: timedelta
    ladder: tuple[Step, ...]


H = timedelta(hours=1)


def _spec(
    kind: WorklistKind,
    title: str,
    subject: str,
    todo: str,
    severity: Severity,
    owner: str,
    due_hours: float,
    *ladder: tuple[float, str],
) -> KindSpec:
    return KindSpec(
        kind,
        title,
        subject,
        todo,
        severity,
        owner,
        due_hours * H,
        tuple(Step(hours * H, role) for hours, role in ladder),
    )


K = WorklistKind
# Raw kind (the alert kind, or a quarantine reason code) -> what the worklist makes of it.
KINDS: dict[str, KindSpec] = {
    K.RESULT_OVERDUE: _spec(
        K.RESULT_OVERDUE,
        "Lab result overdue",
        "screening",
        "Call the lab about this specimen. If it was lost or rejected, arrange a new collection and note it.",
        Severity.HIGH,
        "staff",
        8,
        (8, "clinician"),
        (32, "admin"),
    ),
    K.REVIEW_OVERDUE: _spec(
        K.REVIEW_OVERDUE,
        "Result waiting for review",
        "screening",
        "Review the confirmed result and record the interpretation (medical review).",
        Severity.URGENT,
        "clinician",
        4,
        (4, "admin"),
    ),
    K.MISSED_DOSES: _spec(
        K.MISSED_DOSES,
        "Missed doses",
        "medication-order",
        "Reach the participant today; a clinician decides whether the dose must be reassessed before the next one.",
        Severity.HIGH,
        "clinician",
        4,
        (4, "admin"),
    ),
    K.REASSESSMENT: _spec(
        K.REASSESSMENT,
        "Reassessment before dosing",
        "medication-order",
        "A clinician reassesses the participant and releases the hold (or changes the dose) before any dose.",
        Severity.HIGH,
        "clinician",
        24,
        (24, "admin"),
    ),
    K.INJECTION_OVERDUE: _spec(
        K.INJECTION_OVERDUE,
        "Injection overdue",
        "medication-order",
        "Call the participant to book the injection; a clinician decides on a bridging plan.",
        Severity.HIGH,
        "clinician",
        24,
        (24, "admin"),
    ),
    "diversion-suspected": _spec(
        K.DIVERSION,
        "Possible diversion",
        "medication-order",
        "A clinician reviews the count and decides on take-home privileges; record what was decided.",
        Severity.URGENT,
        "clinician",
        4,
        (4, "admin"),
    ),
    "diversion-review": _spec(
        K.DIVERSION,
        "Callback not kept: diversion review",
        "medication-order",
        "A clinician reviews the missed callback and decides on take-home privileges.",
        Severity.URGENT,
        "clinician",
        4,
        (4, "admin"),
    ),
    K.CALLBACK_DUE: _spec(
        K.CALLBACK_DUE,
        "Call the participant back",
        "medication-order",
        "Call the participant: they must bring their take-home bottles in for a count.",
        Severity.NORMAL,
        "staff",
        2,
        (2, "clinician"),
        (26, "admin"),
    ),
    K.DISCLOSURE_FAILED: _spec(
        K.DISCLOSURE_FAILED,
        "Report not delivered",
        "disclosure",
        "Check the recipient's address or webhook with them; once fixed, re-enable the recipient.",
        Severity.NORMAL,
        "staff",
        24,
        (24, "admin"),
    ),
    K.DISCLOSURE_BLOCKED: _spec(
        K.DISCLOSURE_BLOCKED,
        "Report blocked (consent)",
        "disclosure",
        "The report was not sent: the consent does not cover it. Ask whether a new consent is wanted.",
        Severity.NORMAL,
        "staff",
        48,
        (48, "admin"),
    ),
    K.LAB_QUARANTINE: _spec(
        K.LAB_QUARANTINE,
        "Lab message held",
        "lab-message",
        "Open the held lab message, attach it to the right screening or reject it with a reason.",
        Severity.NORMAL,
        "staff",
        8,
        (8, "clinician"),
        (32, "admin"),
    ),
    K.INTAKE_STALLED: _spec(
        K.INTAKE_STALLED,
        "Lab message stuck",
        "lab-message",
        "A lab message could not be processed. Check the workflow service, then ask the lab to resend it.",
        Severity.HIGH,
        "admin",
        1,
        (1, "admin"),
    ),
    # Kinds the program and channel work raises (call list, notifications, check-ins).
    K.NOT_NOTIFIED: _spec(
        K.NOT_NOTIFIED,
        "Participant not notified",
        "screening",
        "The test notice did not reach the participant: call them now and record the outcome.",
        Severity.HIGH,
        "staff",
        2,
        (2, "clinician"),
    ),
    K.MISSED_CHECK_IN: _spec(
        K.MISSED_CHECK_IN,
        "Missed check-in",
        "participant",
        "Call the participant about the missed check-in and record the outcome.",
        Severity.NORMAL,
        "staff",
        8,
        (8, "clinician"),
    ),
    K.MISS_DECISION: _spec(
        K.MISS_DECISION,
        "Test not done: not notified or window lost",
        "screening",
        "The participant was not told in time, or the collection window was cut short: this is not a reportable "
        "miss. Excuse the test or order a make-up test, with the reason.",
        Severity.HIGH,
        "staff",
        8,
        (8, "clinician"),
        (32, "admin"),
    ),
    K.CONFIRMATION_REQUESTED: _spec(
        K.CONFIRMATION_REQUESTED,
        "Ask the lab to confirm",
        "screening",
        "A clinician asked for confirmation: ask the lab named to test this specimen by a confirmatory method "
        "(GC-MS or LC-MS/MS) for the analytes named. The item closes itself when that result arrives.",
        Severity.HIGH,
        "staff",
        8,
        (8, "clinician"),
        (32, "admin"),
    ),
    K.CALL_LIST: _spec(
        K.CALL_LIST,
        "On today's call list",
        "participant",
        "Call the participant and record called, reached or not reached.",
        Severity.NORMAL,
        "staff",
        4,
        (4, "clinician"),
    ),
    # Reconciler findings a person must act on (activities/reconciler.py). A half-done enrollment it completes,
    # or a lab message it processes again, is fixed and only audited.
    K.ENROLLMENT_ROLLED_BACK: _spec(
        K.ENROLLMENT_ROLLED_BACK,
        "Enrollment undone: enroll again",
        "enrollment",
        "This person was told they were enrolled, but the record could not start a program and was removed: "
        "nobody is enrolled. Tell them, then enroll again with a new request (a new Idempotency-Key), correcting "
        "what 'why' names.",
        Severity.HIGH,
        "staff",
        4,
        (4, "admin"),
    ),
    K.ENROLLMENT_STUCK: _spec(
        K.ENROLLMENT_STUCK,
        "Enrollment not finished",
        "participant",
        "The record was saved but its program could not be started, and repeated attempts failed: the participant "
        "is not being tested. Check the workflow service; the item closes itself once the system finishes or "
        "undoes the enrollment.",
        Severity.HIGH,
        "admin",
        1,
        (1, "admin"),
    ),
}

GENERIC = _spec(
    K.OTHER,
    "Needs attention",
    "participant",
    "Read why this was raised, do what it asks, and resolve it with a note.",
    Severity.NORMAL,
    "staff",
    24,
    (24, "admin"),
)
# A source's fallback when its raw kind has no row (every quarantine reason is a held lab message).
SOURCE_DEFAULTS = {Source.QUARANTINE: "lab-quarantine"}


def spec_for(source: str, raw_kind: str) -> KindSpec:
    """The row for this raw kind; a source's default; or the generic item: never nothing."""
    if raw_kind in KINDS:
        return KINDS[raw_kind]
    default = SOURCE_DEFAULTS.get(Source(source)) if source in Source._value2member_map_ else None
    return KINDS[default] if default else GENERIC


def due_at(spec: KindSpec, opened_at: datetime) -> datetime:
    return opened_at + spec.due_in


def next_escalation_at(spec: KindSpec, opened_at: datetime, level: int) -> datetime | None:
    """When the item escalates next, having escalated `level` times already; None at the top of the ladder."""
    return opened_at + spec.ladder[level].after if level < len(spec.ladder) else None


def escalation_role(spec: KindSpec, level: int) -> str:
    """The role the item goes to at its (level+1)-th escalation."""
    return spec.ladder[level].role


def shortest_first_escalation() -> timedelta:
    """No item escalates sooner than this after it opens: a timer that never sleeps longer than this
    never escalates an item opened while it slept late."""
    return min(s.ladder[0].after for s in (*KINDS.values(), GENERIC) if s.ladder)


def is_overdue(due: datetime, status: str, now: datetime) -> bool:
    return status != Status.RESOLVED and due <= now


def claim_refusal(status: str, assignee: str | None, actor: str, take_over: bool) -> str | None:
    """Why this actor may not claim the item, or None."""
    if status == Status.RESOLVED:
        return "this item is already resolved; nothing to claim"
    if assignee and assignee != actor and not take_over:
        return "this item is claimed by someone else; send take_over: true to take it over"
    return None


def resolve_refusal(status: str, outcome: str, note: str | None) -> str | None:
    """Why the item may not be resolved this way, or None."""
    if status == Status.RESOLVED:
        return "this item is already resolved"
    if outcome not in STAFF_OUTCOMES:
        return f"outcome must be one of {', '.join(STAFF_OUTCOMES)}"
    if outcome in NEEDS_NOTE and not (note or "").strip():
        return f"an outcome of {outcome} needs a note saying why"
    return None
