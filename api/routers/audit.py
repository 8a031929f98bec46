"""For auditors: the audit trail and its verification, a participant's whole timeline, decoded
workflow histories, the payload codec for the Temporal UI and CLI, and token administration."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, col, select
from temporalio.api.common.v1 import Payload

from api import history, timeline_words
from api.deps import ServicesDep, SessionDep, ShownDep, done_reading, require
from api.idempotency import IdempotentRoute
from api.inputs import RequestModel
from api.pages import Page, Paging, PagingDep, containing, paging
from api.problems import ProblemError, responses
from api.tokens import Actor, expiry_after, issue_token, sender_problem
from api.workflow_calls import workflow_call
from domain.vocab import Role
from iop.audit import write_checkpoint
from iop.codec import encryption_codec
from store.audit import AuditKeyError, CheckpointError, read_checkpoints, verify
from store.models import (
    ApiToken,
    AuditEvent,
    Disclosure,
    MedicationOrderRecord,
    Participant,
    Recipient,
    Screening,
    SelectionDraw,
    utcnow,
)
from workflows.contracts.disclosure import disclosure_workflow_id
from workflows.medication import workflow_id as medication_workflow_id
from workflows.participant import workflow_id as participant_workflow_id
from workflows.screening import workflow_id as screening_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["audit"], responses=responses(422))

Auditor = Annotated[Actor, Depends(require("admin", "auditor"))]
TimelineReader = Annotated[Actor, Depends(require("admin", "auditor", "staff", "clinician"))]
Admin = Annotated[Actor, Depends(require("admin"))]


class AuditEventPublic(BaseModel):
    """One event of the tamper-evident audit trail."""

    seq: int = Field(description="Its place in the chain")
    at: datetime = Field(description="When")
    actor: str = Field(description="The token's name, or 'anonymous'")
    role: str = Field(description="The token's role")
    action: str = Field(description="What was done: the method and route template, or a named action")
    subject_type: str | None = Field(description="What kind of thing it touched, e.g. participant, screening")
    subject_id: str | None = Field(description="Which one")
    participant_id: str | None = Field(description="Whose record it touched")
    outcome: str = Field(description="The answer: the HTTP status, or denied")
    request_id: str | None = Field(description="The request's X-Request-ID")
    source: str | None = Field(description="The client address of the request")
    detail: str | None = Field(description="More about it, with no patient data")
    shown: str | None = Field(description="A list read: the participant ids that were on the page")
    prev_hash: str = Field(description="The previous event's hash")
    mac_alg: str = Field(description="hmac-sha256 (keyed; from migration 0011 on) or sha256 (older rows)")
    key_id: str | None = Field(description="The audit key that signed the event")
    hash: str = Field(description="This event's hash (a MAC when keyed), chaining it to the previous one")


class VerificationPublic(BaseModel):
    """The audit chain checked end to end."""

    ok: bool = Field(description="Every event is intact and in order")
    checked: int = Field(description="Events checked")
    first_broken_seq: int | None = Field(
        description="The first missing or changed event (for unkeyed events: the first that may have been changed)"
    )
    problem: str | None = Field(description="What is wrong, if anything")
    checkpoints: int = Field(description="Signed checkpoints the chain was compared against")
    keyed_from: int | None = Field(description="The first keyed event: every event from here on must be keyed")


class CheckpointPublic(BaseModel):
    """A signed checkpoint of the audit chain."""

    seq: int = Field(description="The last event it covers")
    hash: str = Field(description="That event's hash")
    at: str = Field(description="When it was made (ISO 8601)")
    keyed_from: int | None = Field(description="The first keyed event")
    key_id: str = Field(description="The key that signed it")
    mac: str = Field(description="Its signature")


@router.get("/audit", response_model=Page[AuditEventPublic], responses=responses(401, 403, 422))
def list_audit(
    actor: Auditor,
    session: SessionDep,
    shown: ShownDep,
    pages: Annotated[Paging, Depends(paging(default=100, maximum=500))],
    participant_id: Annotated[
        str | None, Query(max_length=40, description="Only events about this participant")
    ] = None,
    actor_id: Annotated[
        str | None, Query(alias="actor", max_length=120, description="Only events by this token (its name)")
    ] = None,
    action: Annotated[
        str | None, Query(max_length=200, description="Only this action, e.g. 'GET /participants/{participant_id}'")
    ] = None,
) -> Page[AuditEventPublic]:
    """The audit trail in chain order, one page at a time, filtered by participant or actor."""
    query = select(AuditEvent)
    if participant_id:
        query = query.where(AuditEvent.participant_id == participant_id)
    if actor_id:
        query = query.where(AuditEvent.actor == actor_id)
    if action:
        query = query.where(AuditEvent.action == action)
    page = pages.rows(
        session, query, (col(AuditEvent.seq),), lambda row: AuditEventPublic.model_validate(row, from_attributes=True)
    )
    shown.extend(e.participant_id for e in page.items if e.participant_id)
    return page


@router.get(
    "/audit/verify",
    response_model=VerificationPublic,
    responses=responses(401, 403),
    summary="Walk the chain against its keys and the signed checkpoints; names the first broken link",
)
def verify_audit(actor: Auditor, services: ServicesDep) -> VerificationPublic:
    """Checks the audit chain end to end against its keys and the signed checkpoints, and names the first broken
    link."""
    path = services.settings.audit_checkpoint_path
    try:
        points = read_checkpoints(path) if path.exists() else []
    except CheckpointError as exc:
        return VerificationPublic(
            ok=False,
            checked=0,
            first_broken_seq=None,
            checkpoints=0,
            keyed_from=None,
            problem=f"The checkpoint file cannot be read: {exc}.",
        )
    return VerificationPublic(**verify(services.engine, checkpoints=points).__dict__)


@router.post(
    "/audit/checkpoints",
    status_code=201,
    response_model=CheckpointPublic,
    responses=responses(401, 403, 502, 503),
    summary="Sign the chain's head now and write it out of the database (file, auditor's webhook)",
)
def take_checkpoint(actor: Admin, services: ServicesDep) -> CheckpointPublic:
    """Signs the head of the audit chain now and writes the checkpoint out of the database (to a file and the
    auditor's webhook)."""
    try:
        point = write_checkpoint(services.engine, services.settings)
    except AuditKeyError as exc:
        raise ProblemError(503, f"Checkpoints are not configured correctly: {exc}.") from exc
    except httpx.HTTPError as exc:
        raise ProblemError(
            502,
            f"The checkpoint was written to the file but the auditor's webhook did not take it "
            f"({type(exc).__name__}); check IOP_AUDIT_CHECKPOINT_URL and try again.",
        ) from exc
    return CheckpointPublic(**point.__dict__)


# --- timelines ------------------------------------------------------------------------------


class TimelineEntryPublic(BaseModel):
    """One entry of a participant's or workflow's history, in the clinic's words (api/timeline_words.py)."""

    at: str = Field(description="When (ISO 8601)")
    source: str = Field(description="workflow (Temporal history), audit (who read or changed what) or draw")
    kind: str = Field(
        description="record (what happened to the participant), access (someone read the record) or "
        "technical (the audit line of a change the record tells already, or the workflow "
        "engine's housekeeping)"
    )
    workflow_id: str = Field(description="The workflow it belongs to")
    event: str = Field(description='What happened, in plain words ("Test ordered for cause", "Result confirmed")')
    actor: str = Field(description='Who did it: the name the token was issued to, or "the system"')
    actor_id: str = Field(description="Who did it, as the records hold it: the token id, or system")
    role: str = Field(description="The role of the token that did it, where known")
    detail: str = Field(description="More about it: the reason, the note, the dose")
    action: str = Field(
        description="The raw action, for auditors: the HTTP route, the workflow update's or activity's name"
    )
    outcome: str = Field(
        description="The audit outcome (the HTTP status, or what came of it); empty for workflow events"
    )
    request_id: str = Field(description="The request id of an audit event; empty otherwise")


def _participant_workflows(session: Session, participant_id: str) -> tuple[list[str], list[SelectionDraw], dict]:
    if session.get(Participant, participant_id) is None:
        raise ProblemError(404, f"No participant has the id {participant_id!r}.")
    ids = [participant_workflow_id(participant_id)]
    ids += [
        screening_workflow_id(s)
        for s in session.exec(
            select(Screening.id).where(Screening.participant_id == participant_id).order_by(col(Screening.day))
        )
    ]
    ids += [
        medication_workflow_id(m)
        for m in session.exec(
            select(MedicationOrderRecord.id).where(MedicationOrderRecord.participant_id == participant_id)
        )
    ]
    ids += [
        disclosure_workflow_id(d)
        for d in session.exec(select(Disclosure.id).where(Disclosure.participant_id == participant_id))
    ]
    draws = session.exec(select(SelectionDraw).where(SelectionDraw.participant_id == participant_id)).all()
    tokens = session.exec(select(ApiToken)).all()
    recipients = {r.id: r.name for r in session.exec(select(Recipient)).all()}
    audit = session.exec(
        select(AuditEvent).where(AuditEvent.participant_id == participant_id).order_by(col(AuditEvent.seq))
    ).all()
    done_reading(session)
    return (
        ids,
        list(draws),
        {
            "roles": {t.id: t.role for t in tokens},
            "names": {t.id: t.name for t in tokens},
            "recipients": recipients,
            "audit": audit,
        },
    )


@router.get(
    "/participants/{participant_id}/history",
    response_model=Page[TimelineEntryPublic],
    responses={200: {"content": {"text/csv": {}}}, **responses(401, 403, 404, 422, 503)},
    summary="Everything that happened to a participant, in order, with who did it",
)
async def participant_history(
    participant_id: str,
    actor: TimelineReader,
    session: SessionDep,
    services: ServicesDep,
    pages: Annotated[Paging, Depends(paging(default=200, maximum=1000))],
    format: Annotated[
        Literal["json", "csv"], Query(description="json: one page; csv: every entry, as a file")
    ] = "json",
    source: Annotated[
        Literal["workflow", "audit", "draw"] | None,
        Query(description="Only entries from the workflows, the audit trail or the daily draws"),
    ] = None,
):
    """Everything that happened to a participant, in order, with who did it: workflow events, audit events and
    draws. As JSON one page at a time, or every entry as CSV with ?format=csv."""
    workflow_ids, draws, extra = await run_in_threadpool(_participant_workflows, session, participant_id)
    roles, names, recipients = extra["roles"], extra["names"], extra["recipients"]
    entries: list[history.TimelineEntry] = []
    async with workflow_call("participant"):
        for workflow_id in workflow_ids:
            for events in await history.workflow_events(services.temporal, workflow_id):
                entries += await history.render(services.temporal, workflow_id, events)
    for entry in entries:
        entry.actor_id, entry.role = entry.actor, roles.get(entry.actor, "system" if entry.actor == "system" else "")
        entry.detail = timeline_words.name_ids(entry.detail, recipients)
    entries += [
        history.TimelineEntry(
            _iso(d.recorded_at),
            "draw",
            participant_workflow_id(participant_id),
            f"Daily draw: {'selected for a test' if d.selected else 'not selected'}",
            "system",
            d.reason,
            action=f"draw for {d.day}",
            actor_id="system",
            role="system",
        )
        for d in draws
    ]
    for a in extra["audit"]:
        event, kind = timeline_words.audit_words(a.action, a.outcome)
        entries.append(
            history.TimelineEntry(
                _iso(a.at),
                "audit",
                "",
                event,
                a.actor,
                timeline_words.name_ids(a.detail or "", recipients),
                kind,
                a.action,
                a.actor,
                a.role,
                a.outcome,
                a.request_id or "",
            )
        )
    for entry in entries:
        entry.actor = timeline_words.actor_name(entry.actor_id, names)
    entries.sort(key=lambda e: e.at)
    if source:
        entries = [e for e in entries if e.source == source]
    if format == "csv":
        return Response(
            to_csv(entries),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="history-{participant_id}.csv"'},
        )
    return pages.cut([TimelineEntryPublic(**history.as_dict(e)) for e in entries])


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


CSV_FIELDS = list(TimelineEntryPublic.model_fields)


def to_csv(entries: list[history.TimelineEntry]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for entry in entries:
        writer.writerow(history.as_dict(entry))
    return out.getvalue()


class WorkflowEventPublic(BaseModel):
    """One event of a workflow's Temporal history, as Temporal records it, every payload decoded."""

    event_id: int = Field(description="The event's number in the history (1 is the start)")
    event_time: str | None = Field(description="When it was recorded (ISO 8601, UTC)")
    event_type: str = Field(description="Temporal's event type, e.g. EVENT_TYPE_WORKFLOW_EXECUTION_STARTED")
    attributes: dict[str, Any] = Field(
        description="The event's attributes as Temporal records them, with each "
        "payload decoded under 'decoded' (selection rolls withheld until "
        "the draw)"
    )


def _workflow_event(raw: dict[str, Any]) -> WorkflowEventPublic:
    attributes: dict[str, Any] = next((value for key, value in raw.items() if key.endswith("EventAttributes")), {})
    return WorkflowEventPublic(
        event_id=int(raw.get("eventId", 0)),
        event_time=raw.get("eventTime"),
        event_type=str(raw.get("eventType", "")),
        attributes=attributes,
    )


@router.get(
    "/workflows/{workflow_id}/history",
    response_model=Page[WorkflowEventPublic],
    responses=responses(401, 403, 404, 422, 503),
    summary="One workflow's raw event history, every payload decoded",
)
async def workflow_history(
    workflow_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,255}$")],
    actor: Auditor,
    services: ServicesDep,
    pages: Annotated[Paging, Depends(paging(default=200, maximum=1000))],
) -> Page[WorkflowEventPublic]:
    # The id goes into a visibility query (api/history.py): a quote in it would break the query.
    """One workflow's raw Temporal event history, first event first, every payload decoded: for auditors and
    administrators. The rolls of a daily draw are withheld until the draw is made."""
    async with workflow_call("workflow"):
        raw = await history.raw_history(services.temporal, workflow_id)
    return pages.cut([_workflow_event(event) for event in raw])


# --- codec endpoint (Temporal UI and `temporal workflow show --codec-endpoint`) -------------


class CodecPayload(RequestModel):
    """One Temporal payload."""

    metadata: dict[str, str] = Field(default_factory=dict, description="base64 values")
    data: str = Field(default="", description="base64")


class CodecBody(RequestModel):
    """Temporal payloads to encode or decode (the Temporal UI's remote codec)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "payloads": [{"metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA=="}, "data": "AAEC"}],
                }
            ]
        }
    )

    payloads: list[CodecPayload] = Field(max_length=5000, description="The payloads")


def _to_proto(payloads: list[CodecPayload]) -> list[Payload]:
    try:
        return [
            Payload(metadata={k: base64.b64decode(v) for k, v in p.metadata.items()}, data=base64.b64decode(p.data))
            for p in payloads
        ]
    except ValueError as exc:
        raise ProblemError(422, "Payload metadata and data must be base64.") from exc


def _from_proto(payloads: list[Payload]) -> CodecBody:
    return CodecBody(
        payloads=[
            CodecPayload(
                metadata={k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                data=base64.b64encode(p.data).decode(),
            )
            for p in payloads
        ]
    )


@router.post("/codec/decode", response_model=CodecBody, responses=responses(401, 403, 422))
async def codec_decode(body: CodecBody, actor: Auditor, services: ServicesDep) -> CodecBody:
    """The Temporal UI's remote codec: decrypts payloads for an authorised viewer."""
    try:
        return _from_proto(await encryption_codec(services.temporal.data_converter).open(_to_proto(body.payloads)))
    except Exception as exc:  # noqa: BLE001 - a wrong key or a tampered payload
        raise ProblemError(
            422, f"These payloads cannot be decoded with the configured keys ({type(exc).__name__})."
        ) from exc


@router.post("/codec/encode", response_model=CodecBody, responses=responses(401, 403, 422))
async def codec_encode(body: CodecBody, actor: Admin, services: ServicesDep) -> CodecBody:
    """Admins only: an encrypted payload is what a production worker accepts as coming from the service."""
    return _from_proto(await encryption_codec(services.temporal.data_converter).encode(_to_proto(body.payloads)))


# --- tokens ---------------------------------------------------------------------------------


class TokenIn(RequestModel):
    """A new API token."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "ACME lab interface",
                    "role": "lab",
                    "days": 365,
                    "sender_application": "ACMELAB",
                    "sender_facility": "ACME REFERENCE LAB",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=120, description="Who or what holds it (no patient data)")
    role: Role = Field(description="What it may do: admin, staff, clinician, lab or auditor")
    days: int | None = Field(default=None, description="Expires after this many days (1-3650); omit for no expiry")
    sender_application: str | None = Field(
        default=None,
        max_length=120,
        description="Lab tokens (required): the MSH-3 sending application (namespace id) this lab sends as",
    )
    sender_facility: str | None = Field(
        default=None,
        max_length=120,
        description="Lab tokens (required): the MSH-4 sending facility "
        "(namespace id), also the JSON lab_id, this lab sends as",
    )

    @field_validator("days")
    @classmethod
    def _lifetime(cls, value: int | None) -> int | None:
        expiry_after(value, datetime.now(UTC))  # the one rule, shared with `iop token create`
        return value


class TokenPublic(BaseModel):
    """An API token (never its secret)."""

    id: str = Field(description="The token's id")
    name: str = Field(description="Who or what holds it")
    role: str = Field(description="What it may do")
    sender_application: str | None = Field(default=None, description="Lab tokens: the MSH-3 sending application")
    sender_facility: str | None = Field(default=None, description="Lab tokens: the MSH-4 sending facility")
    created_at: datetime = Field(description="When it was made")
    expires_at: datetime | None = Field(description="When it expires; null for never")
    revoked_at: datetime | None = Field(description="When it was revoked")


class TokenCreated(TokenPublic):
    """A new token, with its secret (shown once)."""

    token: str = Field(description="Shown once; only its hash is stored")


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses=responses(401, 403, 422),
    description="A lab token must name the sender it sends as (sender_application = MSH-3, "
    "sender_facility = MSH-4 / JSON lab_id); messages naming any other sender are kept "
    "and refused (AR).",
)
def create_token(body: TokenIn, actor: Admin, session: SessionDep) -> TokenCreated:
    expires = expiry_after(body.days, datetime.now(UTC))
    if problem := sender_problem(body.role, body.sender_application, body.sender_facility):
        raise ProblemError(422, problem[0].upper() + problem[1:] + ".")
    row, plaintext = issue_token(
        session,
        name=body.name,
        role=body.role,
        expires_at=expires,
        sender_application=body.sender_application,
        sender_facility=body.sender_facility,
    )
    session.commit()
    return TokenCreated(**TokenPublic.model_validate(row, from_attributes=True).model_dump(), token=plaintext)


@router.get("/tokens", response_model=Page[TokenPublic], responses=responses(401, 403, 422))
def list_tokens(
    actor: Admin,
    session: SessionDep,
    pages: PagingDep,
    role: Annotated[str | None, Query(max_length=16, description="Only tokens of this role")] = None,
    revoked: Annotated[
        bool | None, Query(description="true: only revoked tokens; false: only those not revoked")
    ] = None,
    q: Annotated[str | None, Query(max_length=120, description="Part of the holder's name, any case")] = None,
) -> Page[TokenPublic]:
    """Every API token, oldest first (never a secret)."""
    query = select(ApiToken)
    if role:
        query = query.where(ApiToken.role == role)
    if revoked is not None:
        query = query.where(col(ApiToken.revoked_at).is_not(None) if revoked else col(ApiToken.revoked_at).is_(None))
    if q and q.strip():
        like = containing(q.strip())
        query = query.where(col(ApiToken.name).ilike(like, escape="\\"))
    return pages.rows(
        session,
        query,
        (col(ApiToken.created_at), col(ApiToken.id)),
        lambda row: TokenPublic.model_validate(row, from_attributes=True),
    )


@router.post("/tokens/{token_id}/revoke", response_model=TokenPublic, responses=responses(401, 403, 404))
def revoke_token(token_id: str, actor: Admin, session: SessionDep) -> TokenPublic:
    """Revokes a token at once."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise ProblemError(404, f"No token has the id {token_id!r}.")
    row.revoked_at = row.revoked_at or utcnow()
    session.add(row)
    session.commit()
    return TokenPublic.model_validate(row, from_attributes=True)
