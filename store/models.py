"""Record tables. SQL is the source of truth for records; Temporal for what happens next.

Style: `XBase` holds the fields a client may send, `XCreate` is the request body, `X` the table,
`XPublic` what the API returns. PHI (names, birth date, contact) lives here and nowhere else.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, field_validator
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.inputs import BirthDate, CleanText, ProgramDay


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- participants -------------------------------------------------------------------------


class CaseNumber(CleanText, SQLModel):
    """An identifier a court, probation office or employer knows the participant by."""

    system: str = Field(min_length=1, max_length=80, description="Who issued it, e.g. 'county-drug-court'")
    value: str = Field(min_length=1, max_length=80, description="The identifier itself, e.g. 'DC-2026-0917'")


class ParticipantBase(SQLModel):
    given_name: str = Field(min_length=1, max_length=100, description="Given (first) name")
    family_name: str = Field(min_length=1, max_length=100, description="Family (last) name")
    date_of_birth: date = Field(description="Date of birth (YYYY-MM-DD)")
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="Phone number for selection notices, E.164 preferred, e.g. '+15555550123'",
    )
    email: str | None = Field(default=None, max_length=254, description="Email address for selection notices")
    site: str = Field(min_length=1, max_length=64, description="Clinic site code")
    referral_source: str | None = Field(
        default=None, max_length=120, description="Who referred the participant, e.g. 'county drug court'"
    )


class ParticipantCreate(CleanText, ParticipantBase):
    """A participant to enroll: who they are, how to reach them, and the program they start."""

    # SQLModel declares model_config as its own SQLModelConfig (ConfigDict plus table options), not exported.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {  # type: ignore[assignment]  # a ConfigDict
                    "given_name": "Jordan",
                    "family_name": "Example",
                    "date_of_birth": "1990-04-12",
                    "phone": "+15555550100",
                    "site": "north",
                    "referral_source": "county drug court",
                    "case_numbers": [{"system": "county-drug-court", "value": "DC-2026-0917"}],
                    "program": "iop",
                    "phase": "phase-1",
                    "start_date": "2026-12-01",
                    "timezone": "America/New_York",
                }
            ]
        }
    )

    date_of_birth: BirthDate = Field(description="Gives an age of 10 to 120 years")
    case_numbers: list[CaseNumber] = Field(
        default_factory=list,
        max_length=20,
        description="Identifiers courts, probation offices or employers know the participant by",
    )
    program: str = Field(default="iop", min_length=1, max_length=64, description="The program to enroll in")
    phase: str = Field(default="phase-1", description="Starting phase of the program")
    start_date: ProgramDay | None = Field(
        default=None, description="Program start (within 2 years of today); defaults to today"
    )
    timezone: str = Field(default="America/New_York", description="The program's IANA time zone")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name such as America/New_York") from None
        return value


class Participant(ParticipantBase, table=True):
    __tablename__ = "participants"

    id: str = Field(primary_key=True, max_length=40)
    case_numbers: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    program: str = Field(max_length=64)
    phase: str = Field(max_length=32, index=True)
    status: str = Field(max_length=32, index=True, default="active")
    start_date: date
    timezone: str = Field(max_length=64)
    discharged_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # The colour (group code) staff assigned, in a program in colour mode: the participant tests on the days
    # their colour is drawn (colour_days).
    colour: str | None = Field(default=None, max_length=32)


class ParticipantPublic(ParticipantBase):
    """A participant as staff see them."""

    id: str = Field(description="The participant's id in this system, e.g. 'p-3f9a1c27b4'")
    case_numbers: list[CaseNumber] = Field(
        description="Identifiers courts, probation offices or employers know the participant by"
    )
    program: str = Field(description="The program the participant is enrolled in")
    phase: str = Field(description="The program phase the participant is in now (sets the testing frequency)")
    status: str = Field(
        description="enrolling, active, or how the participant left: completed, withdrawn, "
        "transferred, discharged-administrative"
    )
    start_date: date = Field(description="First day of the program")
    timezone: str = Field(description="The program's IANA time zone; program days and windows are in it")
    discharged_at: datetime | None = Field(description="When the participant left the program; null while enrolled")
    created_at: datetime = Field(description="When the record was created")
    updated_at: datetime = Field(description="When the record last changed")


# --- access -------------------------------------------------------------------------------


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=120)
    role: str = Field(max_length=16)
    secret_sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    # A lab token's registered sender: the MSH-3 / MSH-4 namespace ids it may send as.
    sender_application: str | None = Field(default=None, max_length=120)
    sender_facility: str | None = Field(default=None, max_length=120)


class IdempotencyRecord(SQLModel, table=True):
    """A create request already answered: the same key and body get the same answer again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "scope", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=32)
    scope: str = Field(max_length=64)
    key: str = Field(max_length=200)
    request_sha256: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class IdempotentAnswer(SQLModel, table=True):
    """A state-changing POST sent with an Idempotency-Key: the first attempt's body digest and, once
    answered, its answer. A retry with the same key replays the answer (or, for a workflow update,
    joins the first attempt by its derived update id); the same key with another body is refused."""

    __tablename__ = "idempotent_answers"
    __table_args__ = (UniqueConstraint("actor", "route", "subject", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=32)  # the token id: keys are scoped to the caller
    route: str = Field(max_length=120)  # the route's name, e.g. record_collection
    subject: str = Field(max_length=200)  # the path's ids, e.g. screening_id=s-...
    key: str = Field(max_length=200)
    request_sha256: str = Field(max_length=64)
    status_code: int | None = None
    answer: Any | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    answered_at: datetime | None = None


# --- demographics (equity report) ---------------------------------------------------------


class ParticipantDemographics(SQLModel, table=True):
    """Optional answers for the equity report (domain/demographics.py), kept apart from the clinical
    record: given only with the participant's consent, never sent to Temporal or to recipients."""

    __tablename__ = "participant_demographics"

    participant_id: str = Field(primary_key=True, foreign_key="participants.id", max_length=40)
    consented: bool = False
    race: str | None = Field(default=None, max_length=48)
    ethnicity: str | None = Field(default=None, max_length=48)
    sex: str | None = Field(default=None, max_length=48)
    age_band: str | None = Field(default=None, max_length=48)
    payer: str | None = Field(default=None, max_length=48)
    recorded_by: str = Field(max_length=32)  # the token id that recorded the answers (and the consent)
    recorded_at: datetime = Field(default_factory=utcnow)


# --- screenings ---------------------------------------------------------------------------


class Screening(SQLModel, table=True):
    """The record of one drug test; `state` is the workflow's last saved snapshot."""

    __tablename__ = "screenings"

    id: str = Field(primary_key=True, max_length=64)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    site: str = Field(index=True, max_length=64)
    day: date = Field(index=True)
    reason: str = Field(max_length=16)
    status: str = Field(index=True, max_length=32)
    revision: int = 0
    selected_at: datetime
    notified_at: datetime | None = None
    window_closes_at: datetime | None = None
    specimen_id: str | None = Field(default=None, max_length=80, unique=True)
    specimen_type: str | None = Field(default=None, max_length=16)
    late_collection: bool = False
    collected_at: datetime | None = None
    result_due_at: datetime | None = None
    result_overdue: bool = False
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    # Forensic (reportable) or clinical (never disclosed); None: the program's default (issue 16).
    forensic: bool | None = None
    forensic_reason: str | None = Field(default=None, max_length=500)
    forensic_set_by: str | None = Field(default=None, max_length=32)
    forensic_set_at: datetime | None = None


class SelectionDraw(SQLModel, table=True):
    """Every day's random draw, selected or not, so an auditor can see why."""

    __tablename__ = "selection_draws"
    __table_args__ = (UniqueConstraint("participant_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    day: date
    phase: str = Field(max_length=32)
    weekday: int
    probability: float
    roll: float
    time_roll: float
    selected: bool
    reason: str = Field(max_length=32)
    detail: str = Field(max_length=400)
    screening_id: str | None = Field(default=None, max_length=64)
    recorded_at: datetime = Field(default_factory=utcnow)
    # The program version that decided the draw (None: the built-in plan, before programs were data).
    program_id: str | None = Field(default=None, max_length=64)
    program_version: int | None = None
    # Verifiable selection (domain/verifiable.py): the rolls are HMACs of the period's seed, and these are the
    # other inputs of the draw (plan, recent selections, history start, paused), so anyone can recompute it.
    verifiable: bool = False
    draw_minute: str | None = Field(default=None, max_length=5)
    inputs: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class SelectionPeriod(SQLModel, table=True):
    """One program period's selection seed: committed at its start, revealed after its end."""

    __tablename__ = "selection_periods"
    __table_args__ = (UniqueConstraint("program", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    program: str = Field(max_length=64)
    period: str = Field(max_length=7)  # YYYY-MM
    seed_sealed: str = Field(max_length=200)  # iop.codec.seal_text under the payload keys
    commitment: str = Field(max_length=64)  # hex SHA-256(seed | program | period)
    published_at: datetime = Field(default_factory=utcnow)
    beacon: str | None = Field(default=None, max_length=200)  # e.g. "drand:quicknet:12345678:<randomness>"
    first_roll_at: datetime | None = None  # the beacon is fixed from here on
    revealed_at: datetime | None = None
    seed_revealed: str | None = Field(default=None, max_length=64)
    beacon_entered_at: datetime | None = None


class SelectionNotice(SQLModel, table=True):
    """One period's commitment (or reveal) notice to one subscribing recipient: its delivery record. No
    participant's information is in it, so it is not a Part 2 disclosure; it is accounted for here."""

    __tablename__ = "selection_notices"

    id: str = Field(primary_key=True, max_length=200)  # domain.verifiable.notice_id: the webhook-id too
    program: str = Field(max_length=64)
    period: str = Field(max_length=7)
    kind: str = Field(max_length=16)  # commitment | reveal
    recipient_id: str = Field(foreign_key="recipients.id", index=True, max_length=40)
    status: str = Field(default="pending", index=True, max_length=16)  # pending retrying delivered failed blocked
    reason: str | None = Field(default=None, max_length=1000)
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    attempts: int = 0
    last_status_code: int | None = None
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CheckInDayRecord(SQLModel, table=True):
    """One row per participant and program day: when they checked in, or that they did not."""

    __tablename__ = "check_in_days"
    __table_args__ = (UniqueConstraint("participant_id", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    day: date
    checked_in_at: datetime | None = None
    method: str | None = Field(default=None, max_length=16)
    # The phase required a check-in that day and none came: its own recorded event.
    missed_required: bool | None = None
    # And the program made a missed one reportable (under consent, category missed-check-ins).
    missed_reportable: bool | None = None


class ColourDay(SQLModel, table=True):
    """A program in colour mode: the colours drawn at one site on one day, each colour's roll kept."""

    __tablename__ = "colour_days"
    __table_args__ = (UniqueConstraint("program_id", "site", "day"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(max_length=64, index=True)
    site: str = Field(max_length=64)
    day: date
    program_version: int
    colours: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # the drawn ones
    draws: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    drawn_at: datetime = Field(default_factory=utcnow)


class NotificationRecord(SQLModel, table=True):
    __tablename__ = "notifications"

    id: str = Field(primary_key=True, max_length=120)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    screening_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=32)
    channel: str = Field(max_length=32)
    report_by: datetime | None = None
    sent_at: datetime = Field(default_factory=utcnow)
    message: str = Field(max_length=400)


class NotificationAttempt(SQLModel, table=True):
    """Each try to tell a participant, with the gateway's receipt; "told" when a check-in told them."""

    __tablename__ = "notification_attempts"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: str = Field(index=True, max_length=120)
    participant_id: str = Field(foreign_key="participants.id", max_length=40)
    screening_id: str | None = Field(default=None, max_length=64)
    channel: str = Field(max_length=32)  # recorded | sms-gateway | check-in
    # accepted | delivered | failed | undelivered | error | no-phone | told | recorded
    status: str = Field(max_length=16)
    provider_ref: str | None = Field(default=None, index=True, max_length=120)
    error: str | None = Field(default=None, max_length=400)
    at: datetime = Field(default_factory=utcnow)
    receipt_at: datetime | None = None


class CallListEntry(SQLModel, table=True):
    """A participant staff must phone: a notice that could not be delivered in time, or no phone."""

    __tablename__ = "call_list"

    id: int | None = Field(default=None, primary_key=True)
    subject_id: str = Field(max_length=120, unique=True)  # the notification id
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    screening_id: str | None = Field(default=None, max_length=64)
    reason: str = Field(max_length=400)
    window_closes_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolved_by: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=400)


class ParticipantPin(SQLModel, table=True):
    """The participant's channel PIN, scrypt-hashed (domain.channel), and its wrong-PIN count."""

    __tablename__ = "participant_pins"

    participant_id: str = Field(foreign_key="participants.id", primary_key=True, max_length=40)
    pin_hash: str = Field(max_length=200, repr=False)
    failures: int = 0
    window_start: datetime | None = None
    locked_until: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ChannelLockout(SQLModel, table=True):
    """Wrong PINs per calling number (keyed by a hash of the number, never the number itself)."""

    __tablename__ = "channel_lockouts"

    key: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    window_start: datetime | None = None
    locked_until: datetime | None = None


# --- programs -----------------------------------------------------------------------------


class ProgramRecord(SQLModel, table=True):
    __tablename__ = "programs"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    current_version: int
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ProgramVersion(SQLModel, table=True):
    """Every version of a program's definition (domain.program.program_to_dict), never edited."""

    __tablename__ = "program_versions"
    __table_args__ = (UniqueConstraint("program_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: str = Field(foreign_key="programs.id", index=True, max_length=64)
    version: int
    definition: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    note: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class AlertRecord(SQLModel, table=True):
    """Something staff must look at: an overdue result, a missed-dose run, a failing delivery."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("kind", "subject_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True, max_length=40)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    subject_id: str = Field(max_length=300)  # a screening, order or disclosure id
    detail: str = Field(max_length=400)
    raised_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


class WorklistItem(SQLModel, table=True):
    """Something staff must do, opened from an alert, a held lab message or a blocked report
    (store/worklist.py opens it in the same transaction as its source; domain/worklist.py says what it asks)."""

    __tablename__ = "worklist_items"
    __table_args__ = (UniqueConstraint("source", "source_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=24)  # domain.worklist.Source
    source_ref: str = Field(max_length=200)
    raw_kind: str = Field(max_length=40)  # the alert kind or quarantine reason code as raised
    kind: str = Field(index=True, max_length=40)  # domain.worklist.WorklistKind
    severity: str = Field(max_length=16)
    participant_id: str | None = Field(default=None, index=True, max_length=40)
    site: str | None = Field(default=None, index=True, max_length=64)
    subject_type: str = Field(max_length=32)
    subject_id: str = Field(max_length=200)
    why: str = Field(max_length=2000)
    todo: str = Field(max_length=400)
    owner_role: str = Field(max_length=16)
    status: str = Field(default="open", index=True, max_length=16)  # open | claimed | resolved
    assignee: str | None = Field(default=None, index=True, max_length=32)  # a token id
    due_at: datetime = Field(index=True)
    escalation_level: int = 0
    escalated_to: str | None = Field(default=None, max_length=16)  # a role
    escalated_at: datetime | None = None
    next_escalation_at: datetime | None = Field(default=None, index=True)
    outcome: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, max_length=1000)
    resolved_by: str | None = Field(default=None, max_length=32)
    resolved_at: datetime | None = None
    # What happened to it, oldest first: {at, actor, what, text}: claims, comments, escalations, resolution.
    notes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


# --- lab ----------------------------------------------------------------------------------


class LabMessage(SQLModel, table=True):
    """Every message a lab sent, stored raw before anything else is done with it.

    A message with the sender and control id of an earlier one is a resend (not stored again)
    only when its normalised body is the same: `replay_key` is unique over sender, control id and
    body digest. The first such message holds the control id (`claim_key`, unique over sender and
    control id); another body under the same control id is stored as its own row with
    `conflicts_with` naming the holder, and held in quarantine. Messages refused for their sender
    (or their token) hold neither key: they are kept, never replayed, and use up no control id.
    """

    __tablename__ = "lab_messages"
    __table_args__ = (Index("ix_lab_messages_sender_control_id", "sender", "control_id"),)

    id: int | None = Field(default=None, primary_key=True)
    sender: str = Field(max_length=300)  # MSH-3^MSH-4, or the JSON lab id
    control_id: str = Field(max_length=200)  # MSH-10, or a digest of an unparseable text
    transport: str = Field(max_length=16)  # http | mllp | json
    raw: str = Field(sa_column=Column(Text, nullable=False))
    raw_sha256: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="received", index=True, max_length=24)  # received | processed | rejected
    ack_code: str | None = Field(default=None, max_length=2)
    ack: str | None = Field(default=None, sa_column=Column(Text))
    detail: str | None = Field(default=None, max_length=2000)
    body_sha256: str | None = Field(default=None, max_length=64)  # domain.lab_intake.body_digest
    replay_key: str | None = Field(default=None, max_length=64, unique=True)
    claim_key: str | None = Field(default=None, max_length=64, unique=True)
    conflicts_with: int | None = Field(default=None)  # the lab message that holds the control id
    token_id: str | None = Field(default=None, max_length=32)  # the token it came with


class LabResult(SQLModel, table=True):
    """One specimen's results from one message (an OBR), after mapping, before or after matching."""

    __tablename__ = "lab_results"
    __table_args__ = (UniqueConstraint("lab_message_id", "order_index"),)

    id: str = Field(primary_key=True, max_length=80)
    lab_message_id: int = Field(foreign_key="lab_messages.id", index=True)
    order_index: int
    lab_id: str = Field(max_length=120)
    placer_order_number: str | None = Field(default=None, max_length=120)
    filler_order_number: str | None = Field(default=None, max_length=120)
    specimen_id: str | None = Field(default=None, max_length=120)
    result_status: str = Field(max_length=4)
    screening_id: str | None = Field(default=None, index=True, max_length=64)
    state: str = Field(index=True, max_length=24)  # filed | quarantined | rejected
    report: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)


class QuarantineItem(SQLModel, table=True):
    """Something a lab sent that could not be filed: held, with the reason, until staff resolve it."""

    __tablename__ = "lab_quarantine"

    id: int | None = Field(default=None, primary_key=True)
    lab_message_id: int = Field(foreign_key="lab_messages.id", index=True)
    lab_result_id: str | None = Field(default=None, max_length=80)
    reason_code: str = Field(index=True, max_length=40)
    reason: str = Field(max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolution: str | None = Field(default=None, max_length=16)  # attached | rejected
    resolved_by: str | None = Field(default=None, max_length=32)
    resolution_note: str | None = Field(default=None, max_length=2000)
    screening_id: str | None = Field(default=None, max_length=64)
    # A code of a filed result that is not in the code table ("CODE (text) from LAB"), held per code.
    held_code: str | None = Field(default=None, max_length=300)
    lab_id: str | None = Field(default=None, max_length=120)  # the lab id a code is mapped under
    lab_id_source: str | None = Field(default=None, max_length=16)  # MSH-4 | MSH-3 | JSON


class CodeMapping(SQLModel, table=True):
    """A lab's own analyte code (or a correction of a code it misuses), editable by admins."""

    __tablename__ = "code_mappings"
    __table_args__ = (UniqueConstraint("lab_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    lab_id: str = Field(max_length=120)
    code: str = Field(max_length=80)
    analyte: str = Field(max_length=40)
    method: str = Field(default="screen", max_length=16)  # used only when the code names no method
    method_override: str | None = Field(default=None, max_length=16)  # explicit: wins over the code
    note: str | None = Field(default=None, max_length=400)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class AnalyteDefinition(SQLModel, table=True):
    """An analyte an admin added without a code change (issue 19)."""

    __tablename__ = "analyte_definitions"

    key: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=120)
    drug_class: str = Field(max_length=60)
    medication: str | None = Field(default=None, max_length=60)
    also_explained_by: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    initial_cutoff: float | None = None
    confirm_cutoff: float | None = None
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


# --- medication ---------------------------------------------------------------------------


class MedicationOrderRecord(SQLModel, table=True):
    __tablename__ = "medication_orders"

    id: str = Field(primary_key=True, max_length=64)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    site: str = Field(index=True, max_length=64)
    drug: str = Field(max_length=40)
    status: str = Field(index=True, max_length=16)  # active | held | stopped
    start_date: date
    stop_date: date | None = None
    rules: str = Field(max_length=64)
    order: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    eligibility: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The dose ledger the workflow keeps (domain.ledger.DoseLedger as store.shapes.plain writes it, plus
    # closed_days), for reports.
    ledger: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    home_order_id: str | None = Field(default=None, max_length=64)  # set on a guest-dosing copy
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DispenseRow(SQLModel, table=True):
    """Every dose given, take-home supplied, dose refused or held, injection given."""

    __tablename__ = "dispenses"

    id: str = Field(primary_key=True, max_length=100)
    order_id: str = Field(foreign_key="medication_orders.id", index=True, max_length=64)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    day: date = Field(index=True)
    kind: str = Field(max_length=16)
    dose: float | None = None
    unit: str | None = Field(default=None, max_length=16)
    take_home_count: int = 0
    bottle_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    covered_dates: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    lot: str | None = Field(default=None, max_length=80)
    injection_site: str | None = Field(default=None, max_length=80)
    note: str | None = Field(default=None, max_length=1000)
    actor: str = Field(max_length=32)
    recorded_at: datetime = Field(default_factory=utcnow)


class MedicationEventRow(SQLModel, table=True):
    """Missed doses, holds, reassessments, dose changes, pill counts, diversion flags."""

    __tablename__ = "medication_events"

    id: str = Field(primary_key=True, max_length=120)
    order_id: str = Field(foreign_key="medication_orders.id", index=True, max_length=64)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    day: date
    kind: str = Field(index=True, max_length=32)
    actor: str = Field(max_length=32)
    detail: str = Field(max_length=2000)
    recorded_at: datetime = Field(default_factory=utcnow)


# --- disclosure ---------------------------------------------------------------------------


class Recipient(SQLModel, table=True):
    """A court, probation office, employer...: who may receive reports, and how."""

    __tablename__ = "recipients"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    delivery: str = Field(max_length=16)  # webhook | email
    url: str | None = Field(default=None, max_length=500)
    email: str | None = Field(default=None, max_length=254)
    secret_sealed: str | None = Field(default=None, max_length=400, repr=False)
    # The case-number system under which this recipient knows participants (e.g. county-drug-court).
    case_number_system: str | None = Field(default=None, max_length=80)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="active", max_length=16)  # active | disabled
    disabled_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    # Notices it subscribes to, none about any participant (domain.verifiable.NOTICE_SUBSCRIPTIONS).
    notices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ConsentRecord(SQLModel, table=True):
    """A signed Part 2 consent; `consent` is domain.consent.consent_to_dict of its current form."""

    __tablename__ = "consents"

    id: str = Field(primary_key=True, max_length=40)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    recipient_id: str = Field(foreign_key="recipients.id", index=True, max_length=40)
    consent: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    revoked_at: datetime | None = None
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class Disclosure(SQLModel, table=True):
    """The accounting of disclosures: who got what, when, under which consent, or why not."""

    __tablename__ = "disclosures"

    # domain.disclosure_ids.disclosure_id (at most 255), or an id recorded before ids named their participant.
    id: str = Field(primary_key=True, max_length=300)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    recipient_id: str = Field(foreign_key="recipients.id", index=True, max_length=40)
    category: str = Field(max_length=40)
    event_ref: str = Field(max_length=120)
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    corrects: str | None = Field(default=None, max_length=300)
    consent_id: str | None = Field(default=None, max_length=40)
    status: str = Field(default="pending", index=True, max_length=16)
    reason: str | None = Field(default=None, max_length=1000)
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    attempts: int = 0
    last_status_code: int | None = None
    delivered_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    content_hash: str | None = Field(default=None, max_length=64)  # SHA-256 of the document sent (PDF)


class CaseEvent(SQLModel, table=True):
    """An event in a participant's case that consents may end at or become revocable at (final disposition, end
    of supervision, end of employment: domain.consent.CONSENT_EVENTS), as staff recorded it."""

    __tablename__ = "case_events"

    id: str = Field(primary_key=True, max_length=40)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    kind: str = Field(max_length=32)
    # The case-number system of the case it happened in (the consents of recipients in that system are told);
    # None: every consent of the participant is told.
    case_system: str | None = Field(default=None, max_length=80)
    occurred_at: datetime
    note: str | None = Field(default=None, max_length=500)
    consents: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # the consents told
    recorded_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


# --- attendance ---------------------------------------------------------------------------


class AttendanceSession(SQLModel, table=True):
    """A scheduled group or individual treatment session (domain.attendance.SessionKind)."""

    __tablename__ = "attendance_sessions"

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=16)
    title: str = Field(max_length=200)
    site: str = Field(index=True, max_length=64)
    starts_at: datetime = Field(index=True)
    duration_minutes: int
    facilitator: str = Field(max_length=80)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class AttendanceRecord(SQLModel, table=True):
    """One participant at one session: scheduled (on the roster), then present, late, excused or absent."""

    __tablename__ = "attendance_records"
    __table_args__ = (UniqueConstraint("session_id", "participant_id"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="attendance_sessions.id", index=True, max_length=40)
    participant_id: str = Field(foreign_key="participants.id", index=True, max_length=40)
    status: str = Field(default="scheduled", max_length=16)
    note: str | None = Field(default=None, max_length=500)
    method: str | None = Field(default=None, max_length=16)  # staff | kiosk
    recorded_by: str | None = Field(default=None, max_length=32)
    recorded_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class EmailOutbox(SQLModel, table=True):
    """Reports to recipients that take email: queued here for the mail relay."""

    __tablename__ = "email_outbox"

    id: str = Field(primary_key=True, max_length=300)  # the disclosure id
    recipient_id: str = Field(foreign_key="recipients.id", max_length=40)
    to_address: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    queued_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


# --- audit --------------------------------------------------------------------------------


class AuditEvent(SQLModel, table=True):
    """Append-only and hash-chained: each row holds the hash of the one before it."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True)  # 1, 2, 3 ... with no gaps
    at: datetime
    actor: str = Field(max_length=40)  # token id, "system", or "anonymous"
    role: str = Field(max_length=16)
    action: str = Field(max_length=120)  # e.g. "GET /participants/{participant_id}", "disclosure.delivered"
    subject_type: str | None = Field(default=None, max_length=32)
    subject_id: str | None = Field(default=None, max_length=300)
    participant_id: str | None = Field(default=None, index=True, max_length=40)
    outcome: str = Field(max_length=32)  # an HTTP status, or what happened
    request_id: str | None = Field(default=None, max_length=64)
    source: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=1000)
    # A list read: the participant ids that were on the page, comma separated.
    shown: str | None = Field(default=None, sa_column=Column(Text))
    prev_hash: str = Field(max_length=64)
    # "hmac-sha256" with the audit key `key_id` (from migration 0011 on); "sha256" (no key) for older rows.
    mac_alg: str = Field(default="hmac-sha256", max_length=16)
    key_id: str | None = Field(default=None, max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """The chain's last link, updated with every append: a truncated tail shows against it."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int
    hash: str = Field(max_length=64)
    # The first keyed event (the cut-over from unkeyed rows). Kept here for convenience only: the value that
    # counts is the one pinned by the signed checkpoints outside the database (store/audit.py).
    keyed_from: int | None = None


# Every alert, held lab message and blocked report opens a worklist item in the same transaction.
from store import worklist as _worklist  # noqa: E402,F401  (registers the table events)
