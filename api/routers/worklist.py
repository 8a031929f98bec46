"""The staff worklist: every alert, held lab message and blocked report, claimed, commented on and resolved.

Items are opened by the system (store/worklist.py) and escalated on Temporal timers (workflows/worklist.py);
staff work them here. Every request is in the audit trail (api/audit.py), with the outcome in its detail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, or_
from sqlmodel import Session, col, select

from api.deps import SessionDep, ShownDep, require
from api.idempotency import IdempotentRoute
from api.inputs import RequestModel
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.tokens import Actor
from domain import worklist as wl
from store.models import AlertRecord, ApiToken, Participant, WorklistItem

router = APIRouter(route_class=IdempotentRoute, prefix="/worklist", tags=["worklist"], responses=responses(422))

Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
Worker = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # past this, SQL integers overflow
UNRESOLVED = "unresolved"


class WorklistNote(BaseModel):
    """One entry in an item's history: opened, claimed, released, commented on, escalated or resolved."""

    at: str = Field(description="When it happened (ISO 8601, UTC)")
    actor: str = Field(description="The token id of who did it, or 'system'")
    actor_name: str | None = Field(default=None, description="The name behind that token, if it is a person's")
    what: str = Field(description="opened, claimed, released, comment, escalated or resolved")
    text: str = Field(description="The comment, or what happened in plain words")


class WorklistItemPublic(BaseModel):
    """One thing staff must do: an alert, a held lab message or a blocked report, with who has it and its history."""

    id: int = Field(description="The item's id")
    kind: wl.WorklistKind = Field(description="What kind of work it is")
    title: str = Field(description="A short title for lists")
    severity: wl.Severity = Field(description="urgent, high, normal or low; lists put the most urgent first")
    source: str = Field(
        description="Where the item came from: alert, lab-quarantine, disclosure, call-list or reconciler"
    )
    raw_kind: str = Field(description="The kind of alert or quarantine reason the system raised")
    subject_type: str = Field(description="What the item is about, e.g. screening, participant or disclosure")
    subject_id: str = Field(description="The id of that subject")
    participant_id: str | None = Field(description="The participant it is about, if any")
    participant_name: str | None = Field(
        description="Given and family name, where the item is about someone; null "
        "for an enrollment the system undid (its record is gone: "
        "'why' names the person to enroll again)"
    )
    timezone: str | None = Field(description="The participant's program time zone, for showing times")
    site: str | None = Field(description="The clinic site, if the item belongs to one")
    why: str = Field(description="Why the item was opened, in plain words")
    todo: str = Field(description="What to do, in plain words")
    owner_role: str = Field(description="The role whose work it is")
    status: wl.Status = Field(description="open, claimed or resolved")
    assignee: str | None = Field(description="The token id of who claimed it; null while nobody has")
    assignee_name: str | None = Field(description="The name behind that token")
    due_at: datetime = Field(description="When it should be resolved by")
    overdue: bool = Field(description="Unresolved and past due_at")
    escalation_level: int = Field(description="How many times it was escalated (0: not yet)")
    escalated_to: str | None = Field(description="The role it was last escalated to")
    escalated_at: datetime | None = Field(description="When it was last escalated")
    next_escalation_at: datetime | None = Field(description="When it escalates next if still unresolved")
    outcome: str | None = Field(description="How it was resolved; null until then")
    resolution_note: str | None = Field(description="The note given with the outcome")
    resolved_by: str | None = Field(description="The token id of who resolved it ('system' when settled at the source)")
    resolved_at: datetime | None = Field(description="When it was resolved")
    notes: list[WorklistNote] = Field(description="Its history, oldest first")
    created_at: datetime = Field(description="When it was opened")


class ClaimRequest(RequestModel):
    """Claim an item: it is assigned to you."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"take_over": False}]})

    take_over: bool = Field(default=False, description="Take over an item someone else claimed")


class CommentRequest(RequestModel):
    """A comment on an item, kept in its history."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "Left a voicemail; will call again at 3 pm"}]})

    note: str = Field(min_length=1, max_length=1000, description="The comment, as staff will read it")


class WorklistResolution(RequestModel):
    """Close an item with an outcome."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"outcome": "participant-contacted", "note": "Reached by phone; collection booked for tomorrow 9 am"}
            ]
        }
    )

    outcome: wl.Outcome = Field(description=f"One of {', '.join(wl.STAFF_OUTCOMES)}")
    note: str | None = Field(
        default=None, max_length=1000, description=f"Required for {', '.join(sorted(wl.NEEDS_NOTE))}"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _names(session: Session, rows: list[WorklistItem]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    people = {r.participant_id for r in rows if r.participant_id}
    tokens = {r.assignee for r in rows if r.assignee} | {r.resolved_by for r in rows if r.resolved_by}
    tokens |= {n["actor"] for r in rows for n in r.notes if n.get("actor") not in (None, "system")}
    participants = (
        {
            p.id: (f"{p.given_name} {p.family_name}", p.timezone)
            for p in session.exec(select(Participant).where(col(Participant.id).in_(people))).all()
        }
        if people
        else {}
    )
    staff = (
        {t.id: t.name for t in session.exec(select(ApiToken).where(col(ApiToken.id).in_(tokens))).all()}
        if tokens
        else {}
    )
    return participants, staff


def _public(
    row: WorklistItem, participants: dict[str, tuple[str, str]], staff: dict[str, str], now: datetime
) -> WorklistItemPublic:
    spec = wl.spec_for(row.source, row.raw_kind)
    notes = [WorklistNote(**n, actor_name=staff.get(n.get("actor") or "")) for n in row.notes]
    name, zone = participants.get(row.participant_id or "", (None, None))
    return WorklistItemPublic(
        **row.model_dump(exclude={"notes", "updated_at"}),
        title=spec.title,
        participant_name=name,
        timezone=zone,
        assignee_name=staff.get(row.assignee or ""),
        overdue=wl.is_overdue(row.due_at, row.status, now),
        notes=notes,
    )


def _one(session: Session, row: WorklistItem) -> WorklistItemPublic:
    participants, staff = _names(session, [row])
    return _public(row, participants, staff, _now())


@router.get(
    "", response_model=Page[WorklistItemPublic], responses=responses(401, 403, 422), summary="The worklist, filtered"
)
def list_items(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    pages: PagingDep,
    site: Annotated[str | None, Query(max_length=64, description="Only this site's items")] = None,
    kind: Annotated[wl.WorklistKind | None, Query(description="Only items of this kind")] = None,
    status: Annotated[
        str,
        Query(
            pattern="^(unresolved|open|claimed|resolved|all)$",
            description="unresolved (open or claimed, the default), open, claimed, resolved or all",
        ),
    ] = UNRESOLVED,
    mine: Annotated[bool, Query(description="Only items assigned to me")] = False,
    overdue: Annotated[bool, Query(description="Only unresolved items past their due time")] = False,
    role: Annotated[str | None, Query(description="Items owned by, or escalated to, this role")] = None,
    participant_id: Annotated[str | None, Query(max_length=40, description="Only this participant's items")] = None,
) -> Page[WorklistItemPublic]:
    """What staff have to do, most urgent and soonest due first: by default every unresolved item; filter by site,
    kind, status, owner role, participant, your own items or the overdue ones."""
    now = _now()
    query = select(WorklistItem)
    if site:
        query = query.where(WorklistItem.site == site)
    if kind:
        query = query.where(WorklistItem.kind == kind.value)
    if status == UNRESOLVED:
        query = query.where(WorklistItem.status != wl.Status.RESOLVED)
    elif status != "all":
        query = query.where(WorklistItem.status == status)
    if mine:
        query = query.where(WorklistItem.assignee == actor.token_id)
    if overdue:
        query = query.where(WorklistItem.status != wl.Status.RESOLVED, col(WorklistItem.due_at) <= now)
    if role:
        query = query.where(or_(col(WorklistItem.owner_role) == role, col(WorklistItem.escalated_to) == role))
    if participant_id:
        query = query.where(WorklistItem.participant_id == participant_id)
    rank = case({s.value: n for s, n in wl.SEVERITY_ORDER.items()}, value=WorklistItem.severity, else_=9)
    page = pages.rows(session, query, (rank, col(WorklistItem.due_at), col(WorklistItem.id)), lambda row: row)
    participants, staff = _names(session, list(page.items))
    shown.extend(r.participant_id for r in page.items if r.participant_id)
    return page.model_copy(update={"items": [_public(r, participants, staff, now) for r in page.items]})


def _item(session: Session, item_id: int, request: Request, *, lock: bool = False) -> WorklistItem:
    query = select(WorklistItem).where(WorklistItem.id == item_id)
    row = session.exec(query.with_for_update() if lock else query).first()
    if row is None:
        raise ProblemError(404, f"No worklist item has the id {item_id}.")
    request.state.audit_participant = row.participant_id
    return row


def _note(row: WorklistItem, actor: Actor, what: str, text: str, now: datetime) -> None:
    row.notes = [*row.notes, {"at": now.isoformat(), "actor": actor.token_id, "what": what, "text": text}]
    row.updated_at = now


@router.get(
    "/{worklist_item_id}",
    response_model=WorklistItemPublic,
    responses=responses(401, 403, 404),
    summary="One worklist item with its history",
)
def get_item(worklist_item_id: ItemId, actor: Reader, session: SessionDep, request: Request) -> WorklistItemPublic:
    """One item: what to do, who has it, when it is due and escalates, and every note so far."""
    return _one(session, _item(session, worklist_item_id, request))


@router.post(
    "/{worklist_item_id}/claim",
    response_model=WorklistItemPublic,
    responses=responses(401, 403, 404, 409),
    summary="Claim an item: it is assigned to you",
)
def claim(
    worklist_item_id: ItemId, body: ClaimRequest, actor: Worker, session: SessionDep, request: Request
) -> WorklistItemPublic:
    """Assigns the item to you. An item someone else claimed is refused (409) unless take_over is true; the
    take-over is noted in its history. Claiming your own item again changes nothing."""
    row = _item(session, worklist_item_id, request, lock=True)
    refusal = wl.claim_refusal(row.status, row.assignee, actor.token_id, body.take_over)
    if refusal:
        raise ProblemError(409, refusal[0].upper() + refusal[1:] + ".")
    if row.assignee != actor.token_id:
        now = _now()
        taken = f" (taken over from {row.assignee})" if row.assignee else ""
        row.assignee, row.status = actor.token_id, wl.Status.CLAIMED.value
        _note(row, actor, "claimed", "claimed" + taken, now)
        session.add(row)
        session.commit()
    request.state.audit_detail = "claimed"
    return _one(session, row)


@router.post(
    "/{worklist_item_id}/release",
    response_model=WorklistItemPublic,
    responses=responses(401, 403, 404, 409),
    summary="Give a claimed item back to the list",
)
def release(worklist_item_id: ItemId, actor: Worker, session: SessionDep, request: Request) -> WorklistItemPublic:
    """Gives the item back to the list (open, nobody assigned), noted in its history. A resolved item cannot be
    released (409)."""
    row = _item(session, worklist_item_id, request, lock=True)
    if row.status == wl.Status.RESOLVED:
        raise ProblemError(409, "This item is already resolved; nothing to release.")
    if row.assignee is not None:
        row.assignee, row.status = None, wl.Status.OPEN.value
        _note(row, actor, "released", "given back to the list", _now())
        session.add(row)
        session.commit()
    request.state.audit_detail = "released"
    return _one(session, row)


@router.post(
    "/{worklist_item_id}/comments",
    response_model=WorklistItemPublic,
    status_code=201,
    responses=responses(401, 403, 404),
    summary="Add a comment to an item",
)
def comment(
    worklist_item_id: ItemId, body: CommentRequest, actor: Worker, session: SessionDep, request: Request
) -> WorklistItemPublic:
    """Adds a comment to the item's history (what was tried, what is next); the item's status does not change."""
    row = _item(session, worklist_item_id, request, lock=True)
    _note(row, actor, "comment", body.note, _now())
    session.add(row)
    session.commit()
    request.state.audit_detail = "comment"
    return _one(session, row)


@router.post(
    "/{worklist_item_id}/resolve",
    response_model=WorklistItemPublic,
    responses=responses(401, 403, 404, 409, 422),
    summary="Resolve an item with an outcome",
)
def resolve(
    worklist_item_id: ItemId, body: WorklistResolution, actor: Worker, session: SessionDep, request: Request
) -> WorklistItemPublic:
    """Closes the item with an outcome (a note is required when nothing was done). An item raised by an alert
    resolves the alert too; a held lab message is resolved where it is held (409 here)."""
    row = _item(session, worklist_item_id, request, lock=True)
    if row.status == wl.Status.RESOLVED:
        raise ProblemError(409, f"This item was already resolved ({row.outcome}); nothing was changed.")
    if row.source == wl.Source.QUARANTINE:
        raise ProblemError(
            409,
            f"A held lab message is resolved where it is held: attach or reject quarantine item "
            f"{row.source_ref} (POST /lab/quarantine/{row.source_ref}/resolve); this item "
            f"closes with it.",
        )
    refusal = wl.resolve_refusal(row.status, body.outcome.value, body.note)
    if refusal:
        raise ProblemError(422, refusal[0].upper() + refusal[1:] + ".")
    now = _now()
    row.status, row.outcome, row.resolution_note = wl.Status.RESOLVED.value, body.outcome.value, body.note
    row.resolved_by, row.resolved_at, row.next_escalation_at = actor.token_id, now, None
    row.assignee = row.assignee or actor.token_id
    _note(row, actor, "resolved", body.outcome.value + (f": {body.note}" if body.note else ""), now)
    session.add(row)
    if row.source == wl.Source.ALERT:
        kind, _, subject_id = row.source_ref.partition(":")
        alert = session.exec(
            select(AlertRecord).where(AlertRecord.kind == kind, AlertRecord.subject_id == subject_id)
        ).first()
        if alert is not None and alert.resolved_at is None:
            alert.resolved_at = now
            session.add(alert)
    session.commit()
    request.state.audit_detail = f"resolved: {body.outcome.value}"
    return _one(session, row)
