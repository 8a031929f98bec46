"""Closed vocabularies of the workflows, the API and the dashboard, one `StrEnum` each.

Vocabularies of a single domain concept live next to it (domain.medication.DispenseKind,
domain.consent.DisclosureCategory, ...); this module holds the ones that the workflows, the API, the
dashboard and the simulator share and that have no other home in domain/. API `Literal`s,
dashboard choices and simulator constants iterate these enums; tests/domain/test_vocabularies.py
fails on any literal copy of two or more of an enum's values elsewhere.

The values are wire values: they are stored in the database, sent in JSON and carried in Temporal
payloads and saved workflow histories. Never change one; add members only.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from enum import StrEnum


class Vocabulary(StrEnum):
    """A closed vocabulary. Its members are their values (str), and show as their values, so a message that
    lists the choices or quotes one (`{value!r}`, a tuple of choices, a pydantic Literal error) reads the same as
    it did when the vocabulary was a tuple of strings."""

    def __repr__(self) -> str:
        return str.__repr__(self.value)


class Role(Vocabulary):
    """What a bearer token may do (the role matrix in api/roles.py)."""

    ADMIN = "admin"
    STAFF = "staff"
    CLINICIAN = "clinician"
    LAB = "lab"
    AUDITOR = "auditor"


class ParticipantStatus(Vocabulary):
    """Where a participant is in the program: enrolling, active, or how they left it."""

    ENROLLING = "enrolling"
    ACTIVE = "active"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    TRANSFERRED = "transferred"
    DISCHARGED_ADMINISTRATIVE = "discharged-administrative"


class DischargeKind(Vocabulary):
    """How a participant leaves the program."""

    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"
    TRANSFERRED = "transferred"
    ADMINISTRATIVE = "administrative"


# The participant status each way of leaving ends in.
DISCHARGE_STATUSES: dict[DischargeKind, ParticipantStatus] = {
    DischargeKind.COMPLETED: ParticipantStatus.COMPLETED,
    DischargeKind.WITHDRAWN: ParticipantStatus.WITHDRAWN,
    DischargeKind.TRANSFERRED: ParticipantStatus.TRANSFERRED,
    DischargeKind.ADMINISTRATIVE: ParticipantStatus.DISCHARGED_ADMINISTRATIVE,
}


class ScreeningStatus(Vocabulary):
    """Where a screening is, from the draw to the final result."""

    SCHEDULED = "scheduled"  # drawn, the participant not yet told
    AWAITING_COLLECTION = "awaiting-collection"
    AWAITING_RESULT = "awaiting-result"
    COMPLETED = "completed"  # a breath test: the reading is the result
    MISSED = "missed"
    EXCUSED = "excused"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    NOT_NOTIFIED = "not-notified"  # the window closed and the participant was never told: staff decide
    WINDOW_LOST = "window-lost"  # told too late, or the site was closed: staff decide
    PRELIMINARY = "preliminary"  # a P result is in: never final by itself
    AWAITING_REVIEW = "awaiting-review"
    FINAL = "final"
    NO_RESULT = "no-result"  # the lab never answered: a reportable gap


class FinalOutcome(Vocabulary):
    """The final outcome of a screening, as a report carries it."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    EXPLAINED = "explained"  # non-negative with a documented legitimate explanation
    INVALID = "invalid"
    REFUSAL = "refusal"


class RefusalKind(Vocabulary):
    """Refusals to test (49 CFR 40.191 and 40.261 as the model); a verified adulterated or substituted
    specimen is one too."""

    REFUSED_TO_PROVIDE = "refused-to-provide"
    LEFT_BEFORE_COMPLETION = "left-before-completion"
    REFUSED_OBSERVATION = "refused-observation"
    INSUFFICIENT_SPECIMEN = "insufficient-specimen"
    ADMITTED_TAMPERING = "admitted-tampering"
    ADULTERATED_OR_SUBSTITUTED = "adulterated-or-substituted"


class PointOfCareResult(Vocabulary):
    """A point-of-care reading (an instant cup or a breath device) as the collector records it."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    INVALID = "invalid"


class ReviewDecision(Vocabulary):
    """A clinician's decision on a result that needs review."""

    CONFIRM = "confirm"
    EXCUSE = "excuse"
    REQUEST_CONFIRMATION = "request-confirmation"
    REQUEST_RETEST = "request-retest"


class ReassessmentDecision(Vocabulary):
    """A clinician's decision on a medication order held for reassessment."""

    RESUME = "resume"
    KEEP_HOLDING = "keep-holding"
    HOLD = "hold"


class CheckInMethod(Vocabulary):
    """How a participant checked in to learn whether they are selected today."""

    KIOSK = "kiosk"
    IVR = "ivr"
    SMS = "sms"
    APP = "app"
    STAFF = "staff"


class ResultStatus(Vocabulary):
    """A lab result's status (HL7 v2 table 0123, OBR-25; FHIR maps X to cancelled)."""

    PRELIMINARY = "P"
    FINAL = "F"
    CORRECTED = "C"
    CANCELLED = "X"


class QuarantineAction(Vocabulary):
    """How staff settle a quarantined lab result or code."""

    ATTACH = "attach"
    REJECT = "reject"
    MAPPED = "mapped"
    NOT_MONITORED = "not-monitored"


class DeliveryMethod(Vocabulary):
    """How reports reach a recipient."""

    WEBHOOK = "webhook"
    EMAIL = "email"


class DisclosureStatus(Vocabulary):
    """Where a disclosure (one report to one recipient) is."""

    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class NoticeStatus(Vocabulary):
    """What became of one try to tell a participant to test."""

    ACCEPTED = "accepted"  # the gateway took it; a receipt may follow
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    TOLD = "told"  # a check-in or a staff call told them
    RECORDED = "recorded"  # no channel: the notice was only recorded


class GatewayStatus(Vocabulary):
    """Message statuses an SMS gateway reports (Twilio's MessageStatus values)."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"


class DayKind(Vocabulary):
    """What a program day shows on a participant's testing calendar, worst first (a day with two screenings
    shows the worse)."""

    POSITIVE = "positive"
    REFUSED = "refused"
    MISSED = "missed"
    INVALID = "invalid"
    NO_RESULT = "no-result"
    PENDING = "pending"
    EXPLAINED = "explained"
    EXCUSED = "excused"
    NEGATIVE = "negative"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    NOT_SELECTED = "not-selected"
