"""Recipients, consents (42 CFR Part 2) and the accounting of disclosures."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, ShownDep, done_reading, require
from api.idempotency import IdempotentRoute
from api.inputs import ConsentMoment, RequestModel, recipient_url_problem
from api.lookups import participant_or_404
from api.pages import Page, PagingDep, containing
from api.problems import FieldError, ProblemError, responses
from api.tokens import Actor
from domain.consent import (
    CATEGORIES,
    EMPLOYMENT_ENDED,
    FINAL_DISPOSITION,
    SUPERVISION_ENDED,
    ConsentError,
    ConsentEvent,
    DisclosureCategory,
    RecipientKind,
    SignatureMethod,
    can_revoke,
    consent_from_dict,
    consent_to_dict,
    record_event,
    revoke,
)
from domain.verifiable import NOTICE_SUBSCRIPTIONS, NoticeSubscription
from domain.vocab import DeliveryMethod, DisclosureStatus
from domain.webhook_signing import new_webhook_secret
from iop.codec import encryption_codec, seal_text
from store.models import CaseEvent, ConsentRecord, Disclosure, Recipient, utcnow
from workflows.contracts.disclosure import disclosure_workflow_id
from workflows.disclosure import DisclosureWorkflow

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["disclosures"], responses=responses(422))

Admin = Annotated[Actor, Depends(require("admin"))]
ConsentTaker = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
CaseRecorder = Annotated[Actor, Depends(require("admin", "staff"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]

Category = DisclosureCategory
Subscription = NoticeSubscription
NOTICES_DESCRIPTION = (
    "Notices it subscribes to, none about any participant: selection-commitments = each random-"
    "selection period's commitment when it opens and its seed once revealed (signed like reports)"
)


# --- recipients -----------------------------------------------------------------------------


class RecipientIn(RequestModel):
    """Someone who may receive reports under a consent (a court, probation, an employer ...)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "County Drug Court, Part 3",
                    "kind": "court",
                    "delivery": "webhook",
                    "url": "https://court.example.org/iop-webhooks",
                    "case_number_system": "county-drug-court",
                    "categories": [
                        DisclosureCategory.SCREENING_RESULTS,
                        DisclosureCategory.MISSED_TESTS,
                        DisclosureCategory.PROGRAM_STATUS,
                    ],
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200, description="E.g. 'Cook County Drug Court, Part 3'")
    kind: RecipientKind = Field(description="What kind of recipient (see the enumeration)")
    delivery: DeliveryMethod = Field(description="webhook (signed, Standard Webhooks) or email")
    url: str | None = Field(default=None, max_length=500, description="HTTPS endpoint for signed webhooks")
    email: str | None = Field(default=None, max_length=254, description="Email address, for delivery=email")
    case_number_system: str | None = Field(
        default=None, max_length=80, description="Participants with a case number in this system are linked"
    )
    categories: list[Category] = Field(
        default_factory=list,
        max_length=len(CATEGORIES),
        description="Which events this recipient wants (under consent)",
    )
    notices: list[Subscription] = Field(
        default_factory=list, max_length=len(NOTICE_SUBSCRIPTIONS), description=NOTICES_DESCRIPTION
    )

    @model_validator(mode="after")
    def _where_to(self) -> RecipientIn:
        if not self.categories and not self.notices:
            raise ValueError("a recipient wants at least one category of reports or one notice")
        if self.delivery == "webhook" and not self.url:
            raise ValueError("a webhook recipient needs a url")
        if self.delivery == "email" and not self.email:
            raise ValueError("an email recipient needs an email address")
        return self


class RecipientPublic(BaseModel):
    """A recipient of reports."""

    id: str = Field(description="The recipient's id")
    name: str = Field(description="Its name")
    kind: str = Field(description="What kind of recipient")
    delivery: str = Field(description="webhook or email")
    url: str | None = Field(description="The webhook endpoint")
    email: str | None = Field(description="The email address")
    case_number_system: str | None = Field(description="Participants with a case number in this system are linked")
    categories: list[str] = Field(description="Which events it wants")
    notices: list[str] = Field(description=NOTICES_DESCRIPTION)
    status: str = Field(description="active, or disabled (see disabled_reason)")
    disabled_reason: str | None = Field(description="Why deliveries stopped, e.g. the endpoint kept failing")
    created_at: datetime = Field(description="When it was added")


class RecipientCreated(RecipientPublic):
    """A new recipient, with its signing secret (shown once)."""

    signing_secret: str | None = Field(description="Shown once: the recipient verifies webhook signatures with it")


def _check_url(url: str, settings) -> None:
    problem = recipient_url_problem(
        url, production=settings.env == "production", allow_private=settings.allow_private_recipients
    )
    if problem:
        raise ProblemError(
            422, f"The recipient url is refused: {problem}.", errors=[FieldError(field="body.url", message=problem)]
        )


@router.post("/recipients", status_code=201, response_model=RecipientCreated, responses=responses(401, 403, 422))
def create_recipient(body: RecipientIn, actor: Admin, session: SessionDep, services: ServicesDep) -> RecipientCreated:
    """Adds a recipient of reports (a court, probation, an employer ...). For webhook delivery the answer carries
    the signing secret, shown once."""
    secret = None
    if body.delivery == "webhook":
        _check_url(body.url or "", services.settings)
        secret = new_webhook_secret(secrets.token_bytes(32))
    # Sealed with the payload keys the worker holds too, so it can sign.
    keys = encryption_codec(services.temporal.data_converter).keys
    row = Recipient(
        id="r-" + secrets.token_hex(4), **body.model_dump(), secret_sealed=seal_text(keys, secret) if secret else None
    )
    session.add(row)
    session.commit()
    return RecipientCreated(
        **RecipientPublic.model_validate(row, from_attributes=True).model_dump(), signing_secret=secret
    )


@router.get("/recipients", response_model=Page[RecipientPublic], responses=responses(401, 403, 422))
def list_recipients(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    q: Annotated[str | None, Query(max_length=100, description="Part of the recipient's name, any case")] = None,
    kind: Annotated[str | None, Query(max_length=16, description="Only this kind of recipient")] = None,
    status: Annotated[str | None, Query(max_length=16, description="active or disabled")] = None,
) -> Page[RecipientPublic]:
    """Every recipient, by name, with its delivery status."""
    query = select(Recipient)
    if q and q.strip():
        like = containing(q.strip())
        query = query.where(col(Recipient.name).ilike(like, escape="\\"))
    if kind:
        query = query.where(Recipient.kind == kind)
    if status:
        query = query.where(Recipient.status == status)
    return pages.rows(
        session,
        query,
        (col(Recipient.name), col(Recipient.id)),
        lambda row: RecipientPublic.model_validate(row, from_attributes=True),
    )


@router.post("/recipients/{recipient_id}/enable", response_model=RecipientPublic, responses=responses(401, 403, 404))
def enable_recipient(recipient_id: str, actor: Admin, session: SessionDep) -> RecipientPublic:
    """After a recipient answered 410 Gone and has fixed its endpoint."""
    row = session.get(Recipient, recipient_id)
    if row is None:
        raise ProblemError(404, f"No recipient has the id {recipient_id!r}.")
    row.status, row.disabled_reason = "active", None
    session.add(row)
    session.commit()
    return RecipientPublic.model_validate(row, from_attributes=True)


class NoticesIn(RequestModel):
    """The notices a recipient subscribes to (replacing its current list)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"notices": ["selection-commitments"]}]})

    notices: list[Subscription] = Field(max_length=len(NOTICE_SUBSCRIPTIONS), description=NOTICES_DESCRIPTION)


@router.put(
    "/recipients/{recipient_id}/notices",
    response_model=RecipientPublic,
    responses=responses(401, 403, 404),
    summary="Subscribe a recipient to notices, or unsubscribe it",
)
def set_recipient_notices(recipient_id: str, body: NoticesIn, actor: Admin, session: SessionDep) -> RecipientPublic:
    """E.g. a court that wants each selection period's commitment as it opens and its seed once revealed. Notices
    already on their way still go; an unsubscribed recipient is sent no new one."""
    row = session.get(Recipient, recipient_id)
    if row is None:
        raise ProblemError(404, f"No recipient has the id {recipient_id!r}.")
    row.notices = list(dict.fromkeys(body.notices))
    session.add(row)
    session.commit()
    return RecipientPublic.model_validate(row, from_attributes=True)


# --- consents -------------------------------------------------------------------------------


class ConsentIn(RequestModel):
    """A written consent to disclose (42 CFR 2.31)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "recipient_id": "r-8c2f4d1e",
                    "categories": [DisclosureCategory.SCREENING_RESULTS, DisclosureCategory.MISSED_TESTS],
                    "purpose": "Monitoring compliance with the drug court's conditions",
                    "disclosing_program": "North IOP",
                    "signer": "The participant",
                    "signed_at": "2026-12-01T10:00:00-05:00",
                    "signature_method": "electronic",
                    "expires_on_event": "final-disposition",
                    "criminal_justice": True,
                    "revocable_after_event": "final-disposition",
                }
            ]
        }
    )

    recipient_id: str = Field(description="To whom")
    categories: list[Category] = Field(
        min_length=1, max_length=len(CATEGORIES), description="What information, specifically"
    )
    purpose: str = Field(min_length=1, max_length=500, description="The purpose of the disclosure")
    disclosing_program: str = Field(min_length=1, max_length=200, description="Who may disclose")
    signer: str = Field(min_length=1, max_length=200, description="The participant or their legal representative")
    signed_at: ConsentMoment = Field(description="When it was signed")
    signature_method: SignatureMethod = Field(description="wet-ink or electronic")
    effective_from: ConsentMoment | None = Field(default=None, description="Defaults to signed_at")
    expires_at: ConsentMoment | None = Field(
        default=None, description="When it expires (give this or expires_on_event)"
    )
    expires_on_event: ConsentEvent | None = Field(default=None, description="The event on which it expires")
    criminal_justice: bool = Field(default=False, description="A 42 CFR 2.35 consent")
    revocable_after: ConsentMoment | None = Field(
        default=None, description="For a criminal-justice consent: when it may be revoked"
    )
    revocable_after_event: ConsentEvent | None = Field(
        default=None, description="For a criminal-justice consent: the event after which it may be revoked"
    )


class ConsentPublic(BaseModel):
    """A consent on file."""

    id: str = Field(description="The consent's id")
    participant_id: str = Field(description="Whose consent")
    recipient_id: str = Field(description="To whom")
    consent: dict = Field(description="The consent as given")
    revoked_at: datetime | None = Field(description="When it was revoked; null while in force")
    created_by: str = Field(description="The token that recorded it")
    created_at: datetime = Field(description="When it was recorded")


class RevokeIn(RequestModel):
    """Revoke a consent."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Revoked by the participant in writing"}]})

    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the record)")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ProblemError(422, "Times need a time zone offset, e.g. 2026-11-23T09:30:00-05:00.")
    return moment.isoformat()


@router.post(
    "/participants/{participant_id}/consents",
    status_code=201,
    response_model=ConsentPublic,
    responses=responses(401, 403, 404, 422),
)
def add_consent(participant_id: str, body: ConsentIn, actor: ConsentTaker, session: SessionDep) -> ConsentPublic:
    """Records a participant's written consent to disclose to a recipient (42 CFR 2.31); nothing is disclosed
    without one in force."""
    participant_or_404(session, participant_id)
    recipient = session.get(Recipient, body.recipient_id)
    if recipient is None:
        raise ProblemError(422, f"No recipient has the id {body.recipient_id!r}; an administrator adds it first.")
    consent_id = "c-" + secrets.token_hex(4)
    try:
        consent = consent_from_dict(
            {
                "consent_id": consent_id,
                "participant_id": participant_id,
                "recipient_id": recipient.id,
                "recipient_kind": recipient.kind,
                "categories": list(body.categories),
                "purpose": body.purpose,
                "disclosing_program": body.disclosing_program,
                "signer": body.signer,
                "signed_at": _iso(body.signed_at),
                "signature_method": body.signature_method,
                "effective_from": _iso(body.effective_from) or _iso(body.signed_at),
                "expires_at": _iso(body.expires_at),
                "expires_on_event": body.expires_on_event,
                "criminal_justice": body.criminal_justice,
                "revocable_after": _iso(body.revocable_after),
                "revocable_after_event": body.revocable_after_event,
                "revoked_at": None,
                "revocation_reason": None,
                "events_occurred": [],
            }
        )
    except (ConsentError, ValueError) as exc:
        raise ProblemError(422, f"The consent is not complete: {getattr(exc, 'reason', exc)}") from exc
    row = ConsentRecord(
        id=consent_id,
        participant_id=participant_id,
        recipient_id=recipient.id,
        consent=consent_to_dict(consent),
        created_by=actor.token_id,
    )
    session.add(row)
    session.commit()
    return ConsentPublic.model_validate(row, from_attributes=True)


@router.get(
    "/participants/{participant_id}/consents",
    response_model=Page[ConsentPublic],
    responses=responses(401, 403, 404, 422),
)
def list_consents(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    recipient_id: Annotated[str | None, Query(max_length=40, description="Only consents to this recipient")] = None,
    revoked: Annotated[
        bool | None, Query(description="true: only revoked consents; false: only those not revoked")
    ] = None,
) -> Page[ConsentPublic]:
    """Every consent of one participant, oldest first, revoked ones included."""
    participant_or_404(session, participant_id)
    query = select(ConsentRecord).where(ConsentRecord.participant_id == participant_id)
    if recipient_id:
        query = query.where(ConsentRecord.recipient_id == recipient_id)
    if revoked is not None:
        query = query.where(
            col(ConsentRecord.revoked_at).is_not(None) if revoked else col(ConsentRecord.revoked_at).is_(None)
        )
    return pages.rows(
        session,
        query,
        (col(ConsentRecord.created_at), col(ConsentRecord.id)),
        lambda row: ConsentPublic.model_validate(row, from_attributes=True),
    )


@router.post(
    "/consents/{consent_id}/revoke", response_model=ConsentPublic, responses=responses(401, 403, 404, 409, 422, 503)
)
async def revoke_consent(
    consent_id: str, body: RevokeIn, actor: ConsentTaker, session: SessionDep, services: ServicesDep
) -> ConsentPublic:
    """Revokes a consent from now on; a criminal-justice consent (42 CFR 2.35) only once it may be revoked."""
    row, in_flight = await run_in_threadpool(_revoke, session, consent_id, body.reason)
    # Deliveries waiting to retry stop now; any attempt would find no consent anyway.
    for disclosure_id in in_flight:
        try:
            await services.temporal.get_workflow_handle(disclosure_workflow_id(disclosure_id)).signal(
                DisclosureWorkflow.cancel, f"consent {consent_id} revoked: {body.reason}"
            )
        except Exception:  # noqa: BLE001 - a delivery that has just finished cannot be cancelled
            pass
    return ConsentPublic.model_validate(row, from_attributes=True)


def _revoke(session: Session, consent_id: str, reason: str) -> tuple[ConsentRecord, list[str]]:
    row = session.get(ConsentRecord, consent_id)
    if row is None:
        raise ProblemError(404, f"No consent has the id {consent_id!r}.")
    consent = consent_from_dict(row.consent)
    now = datetime.now(UTC).isoformat()
    allowed, why = can_revoke(consent, now)
    if not allowed:
        raise ProblemError(409, why[:1].upper() + why[1:].rstrip(".") + ".")
    row.consent = consent_to_dict(revoke(consent, now, reason))
    row.revoked_at = utcnow()
    session.add(row)
    session.commit()
    in_flight = session.exec(
        select(Disclosure.id).where(
            Disclosure.participant_id == row.participant_id,
            Disclosure.recipient_id == row.recipient_id,
            col(Disclosure.status).in_((DisclosureStatus.PENDING, DisclosureStatus.RETRYING)),
        )
    ).all()
    done_reading(session)
    return row, list(in_flight)


# --- case events: what consents end at --------------------------------------------------------

CASE_EVENT_KINDS = (FINAL_DISPOSITION, SUPERVISION_ENDED, EMPLOYMENT_ENDED)


class CaseEventIn(RequestModel):
    """Something that happened in the participant's case that consents may end at or become revocable at."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "final-disposition",
                    "occurred_at": "2026-12-01T11:30:00-05:00",
                    "case_system": "county-drug-court",
                    "note": "Case dismissed on successful completion; order on file",
                }
            ]
        }
    )

    kind: Literal[ConsentEvent.FINAL_DISPOSITION, ConsentEvent.SUPERVISION_ENDED, ConsentEvent.EMPLOYMENT_ENDED] = (
        Field(
            description="final-disposition (of the criminal case), supervision-ended (probation, parole, pretrial) or "
            "employment-ended"
        )
    )
    occurred_at: ConsentMoment | None = Field(
        default=None, description="When it happened (not in the future); defaults to now"
    )
    case_system: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description=(
            "The case-number system of the case it happened in (one of the participant's case numbers): only the "
            "consents of recipients in that system are told. Omitted: every consent of the participant is told."
        ),
    )
    note: str | None = Field(default=None, max_length=500, description="What the record shows, e.g. the order")


class CaseEventPublic(BaseModel):
    """A case event as recorded, with the consents it was recorded on."""

    id: str = Field(description="The event's id")
    participant_id: str = Field(description="Whose case")
    kind: str = Field(description="final-disposition, supervision-ended or employment-ended")
    case_system: str | None = Field(description="The case-number system of the case; null: every consent")
    occurred_at: datetime = Field(description="When it happened (UTC)")
    note: str | None = Field(description="What the record shows")
    consents: list[str] = Field(
        description="The consents it was recorded on: those that end at this event stop "
        "covering from occurred_at, criminal-justice ones become revocable"
    )
    recorded_by: str = Field(description="The token that recorded it")
    created_at: datetime = Field(description="When it was recorded")


def _case_event_public(row: CaseEvent) -> CaseEventPublic:
    def aware(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

    return CaseEventPublic(
        id=row.id,
        participant_id=row.participant_id,
        kind=row.kind,
        case_system=row.case_system,
        occurred_at=aware(row.occurred_at),
        note=row.note,
        consents=list(row.consents),
        recorded_by=row.recorded_by,
        created_at=aware(row.created_at),
    )


def _record_case_event(session: Session, participant_id: str, body: CaseEventIn, actor: str) -> CaseEvent:
    participant = participant_or_404(session, participant_id)
    now = datetime.now(UTC)
    occurred = body.occurred_at or now
    if occurred.tzinfo is None:
        raise ProblemError(422, "occurred_at needs a time zone offset, e.g. 2026-12-01T11:30:00-05:00.")
    if occurred > now:
        raise ProblemError(422, "occurred_at is in the future: record a case event once it has happened.")
    systems = {c.get("system") for c in participant.case_numbers}
    if body.case_system is not None and body.case_system not in systems:
        known = ", ".join(sorted(s for s in systems if s)) or "none"
        raise ProblemError(
            422,
            f"The participant has no case number in system {body.case_system!r} (theirs: "
            f"{known}); give one of those, or leave case_system out to tell every consent.",
        )
    query = select(ConsentRecord).where(ConsentRecord.participant_id == participant_id)
    if body.case_system is not None:
        in_system = select(Recipient.id).where(Recipient.case_number_system == body.case_system)
        query = query.where(col(ConsentRecord.recipient_id).in_(in_system))
    told = []
    for row in session.exec(query.order_by(col(ConsentRecord.created_at))).all():
        # domain.consent.record_event: idempotent; the consent's own rules decide what the event does to it.
        row.consent = consent_to_dict(record_event(consent_from_dict(row.consent), body.kind, occurred.isoformat()))
        session.add(row)
        told.append(row.id)
    event = CaseEvent(
        id="ce-" + secrets.token_hex(5),
        participant_id=participant_id,
        kind=body.kind,
        case_system=body.case_system,
        occurred_at=occurred.astimezone(UTC),
        note=(body.note or "").strip() or None,
        consents=told,
        recorded_by=actor,
    )
    session.add(event)
    session.commit()
    done_reading(session)
    return event


@router.post(
    "/participants/{participant_id}/case-events",
    status_code=201,
    response_model=CaseEventPublic,
    responses=responses(401, 403, 404, 422),
    summary="Record a final disposition, end of supervision or end of employment",
)
def record_case_event(
    participant_id: str, body: CaseEventIn, actor: CaseRecorder, session: SessionDep, request: Request
) -> CaseEventPublic:
    """Records an event in the participant's case on their consents (42 CFR 2.31(a)(6): a consent may end at an
    event; 2.35(d): a criminal-justice consent becomes revocable no later than final disposition). From occurred_at
    a consent that ends at this event covers nothing more: any report after it is blocked at sending, with the
    reason. The event, who recorded it and the consents told are kept and audited."""
    row = _record_case_event(session, participant_id, body, actor.token_id)
    request.state.audit_detail = f"case event {row.kind} recorded on {len(row.consents)} consent(s)"
    return _case_event_public(row)


@router.get(
    "/participants/{participant_id}/case-events",
    response_model=Page[CaseEventPublic],
    responses=responses(401, 403, 404, 422),
)
def list_case_events(
    participant_id: str, actor: Reader, session: SessionDep, pages: PagingDep
) -> Page[CaseEventPublic]:
    """Every case event recorded for the participant, oldest first."""
    participant_or_404(session, participant_id)
    return pages.rows(
        session,
        select(CaseEvent).where(CaseEvent.participant_id == participant_id),
        [col(CaseEvent.occurred_at), col(CaseEvent.id)],
        _case_event_public,
    )


# --- the accounting of disclosures ----------------------------------------------------------


class DisclosurePublic(BaseModel):
    """One disclosure, made or withheld: the accounting of disclosures (42 CFR 2.24)."""

    id: str = Field(description="The disclosure's id")
    participant_id: str = Field(description="Whose information")
    recipient_id: str = Field(description="To whom")
    category: str = Field(description="What kind of event it reports")
    event_ref: str = Field(description="The event it reports")
    corrects: str | None = Field(description="The disclosure it corrects, if a correction")
    consent_id: str | None = Field(description="The consent it was made under")
    status: str = Field(description="pending, delivered, retrying, failed, blocked (no consent) or cancelled")
    reason: str | None = Field(description="Why it was blocked or failed")
    payload: dict | None = Field(description="What was sent")
    attempts: int = Field(description="Delivery attempts")
    last_status_code: int | None = Field(description="The recipient's last HTTP status")
    delivered_at: datetime | None = Field(description="When it was delivered")
    created_at: datetime = Field(description="When it was made")
    updated_at: datetime = Field(description="When the record last changed")


@router.get(
    "/disclosures",
    response_model=Page[DisclosurePublic],
    responses=responses(401, 403, 422),
    summary="Who got what, when, under which consent - or why it was blocked",
)
def list_disclosures(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    pages: PagingDep,
    participant_id: Annotated[str | None, Query(max_length=40, description="Only this participant's")] = None,
    recipient_id: Annotated[str | None, Query(max_length=40, description="Only to this recipient")] = None,
    status: Annotated[
        str | None, Query(max_length=16, description="pending, delivered, retrying, failed, blocked or cancelled")
    ] = None,
    category: Annotated[str | None, Query(max_length=40, description="Only reports of this category")] = None,
) -> Page[DisclosurePublic]:
    """The accounting of disclosures (42 CFR 2.24): what was disclosed to whom and when, under which consent, or why
    it was withheld."""
    query = select(Disclosure)
    for column, value in (
        (Disclosure.participant_id, participant_id),
        (Disclosure.recipient_id, recipient_id),
        (Disclosure.status, status),
        (Disclosure.category, category),
    ):
        if value:
            query = query.where(column == value)
    page = pages.rows(
        session,
        query,
        (col(Disclosure.created_at).desc(), col(Disclosure.id)),
        lambda row: DisclosurePublic.model_validate(row, from_attributes=True),
    )
    shown.extend(d.participant_id for d in page.items if d.participant_id)
    return page
