"""The staff worklist: every alert, held lab message and blocked report, claimed, commented on and resolved.

Items are opened by the system (store/worklist.py) and escalated on Temporal timers (workflows/worklist.py);
staff work them here. Every request is in the audit trail (api/audit.py), with the outcome in its detail.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import case, func, or_
from sqlmodel import Session, col, select

from api.idempotency import IdempotentRoute
from api.deps import SessionDep, ShownDep, require
from api.inputs import RequestModel
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
    at: str
    actor: str
    actor_name: str | None = None
    what: str  # opened | claimed | released | comment | escalated | resolved
    text: str


class WorklistItemPublic(BaseModel):
    id: int
    kind: wl.WorklistKind
    title: str
    severity: wl.Severity
    source: str
    raw_kind: str
    subject_type: str
    subject_id: str
    participant_id: str | None
    participant_name: str | None = Field(description="Given and family name, where the item is about someone")
    timezone: str | None = Field(description="The participant's program time zone, for showing times")
    site: str | None
    why: str
    todo: str = Field(description="What to do, in plain words")
    owner_role: str
    status: wl.Status
    assignee: str | None
    assignee_name: str | None
    due_at: datetime
    overdue: bool
    escalation_level: int
    escalated_to: str | None
    escalated_at: datetime | None
    next_escalation_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    notes: list[WorklistNote]
    created_at: datetime


class WorklistPage(BaseModel):
    items: list[WorklistItemPublic]
    total: int
    limit: int
    offset: int
    next: int | None = Field(description="The offset of the next page, or null on the last page")


class ClaimRequest(RequestModel):
    take_over: bool = Field(default=False, description="Take over an item someone else claimed")


class CommentRequest(RequestModel):
    note: str = Field(min_length=1, max_length=1000)


class ResolveRequest(RequestModel):
    outcome: wl.Outcome = Field(description=f"One of {', '.join(wl.STAFF_OUTCOMES)}")
    note: str | None = Field(default=None, max_length=1000,
                             description=f"Required for {', '.join(sorted(wl.NEEDS_NOTE))}")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _names(session: Session, rows: list[WorklistItem]) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    people = {r.participant_id for r in rows if r.participant_id}
    tokens = {r.assignee for r in rows if r.assignee} | {r.resolved_by for r in rows if r.resolved_by}
    tokens |= {n.get("actor") for r in rows for n in r.notes if n.get("actor") not in (None, "system")}
    participants = {p.id: (f"{p.given_name} {p.family_name}", p.timezone) for p in session.exec(
        select(Participant).where(col(Participant.id).in_(people))).all()} if people else {}
    staff = {t.id: t.name for t in session.exec(select(ApiToken).where(col(ApiToken.id).in_(tokens))).all()} \
        if tokens else {}
    return participants, staff


def _public(row: WorklistItem, participants: dict[str, tuple[str, str]], staff: dict[str, str],
            now: datetime) -> WorklistItemPublic:
    spec = wl.spec_for(row.source, row.raw_kind)
    notes = [WorklistNote(**n, actor_name=staff.get(n.get("actor"))) for n in row.notes]
    name, zone = participants.get(row.participant_id or "", (None, None))
    return WorklistItemPublic(
        **row.model_dump(exclude={"notes", "updated_at"}), title=spec.title, participant_name=name, timezone=zone,
        assignee_name=staff.get(row.assignee or ""),
        overdue=wl.is_overdue(row.due_at, row.status, now), notes=notes)


def _one(session: Session, row: WorklistItem) -> WorklistItemPublic:
    participants, staff = _names(session, [row])
    return _public(row, participants, staff, _now())


@router.get("", response_model=WorklistPage, responses=responses(401, 403, 422))
def list_items(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    site: str | None = None,
    kind: wl.WorklistKind | None = None,
    status: Annotated[str, Query(pattern="^(unresolved|open|claimed|resolved|all)$",
                                 description="unresolved (open or claimed, the default), open, claimed, "
                                             "resolved or all")] = UNRESOLVED,
    mine: Annotated[bool, Query(description="Only items assigned to me")] = False,
    overdue: Annotated[bool, Query(description="Only unresolved items past their due time")] = False,
    role: Annotated[str | None, Query(description="Items owned by, or escalated to, this role")] = None,
    participant_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> WorklistPage:
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
        query = query.where(or_(WorklistItem.owner_role == role, WorklistItem.escalated_to == role))
    if participant_id:
        query = query.where(WorklistItem.participant_id == participant_id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rank = case({s.value: n for s, n in wl.SEVERITY_ORDER.items()}, value=WorklistItem.severity, else_=9)
    rows = session.exec(query.order_by(rank, col(WorklistItem.due_at), col(WorklistItem.id))
                        .offset(offset).limit(limit)).all()
    participants, staff = _names(session, list(rows))
    shown.extend(r.participant_id for r in rows if r.participant_id)
    return WorklistPage(items=[_public(r, participants, staff, now) for r in rows], total=total, limit=limit,
                        offset=offset, next=offset + limit if offset + limit < total else None)


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


@router.get("/{worklist_item_id}", response_model=WorklistItemPublic, responses=responses(401, 403, 404))
def get_item(worklist_item_id: ItemId, actor: Reader, session: SessionDep, request: Request) -> WorklistItemPublic:
    return _one(session, _item(session, worklist_item_id, request))


@router.post("/{worklist_item_id}/claim", response_model=WorklistItemPublic,
             responses=responses(401, 403, 404, 409), summary="Claim an item: it is assigned to you")
def claim(worklist_item_id: ItemId, body: ClaimRequest, actor: Worker, session: SessionDep,
          request: Request) -> WorklistItemPublic:
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


@router.post("/{worklist_item_id}/release", response_model=WorklistItemPublic,
             responses=responses(401, 403, 404, 409), summary="Give a claimed item back to the list")
def release(worklist_item_id: ItemId, actor: Worker, session: SessionDep, request: Request) -> WorklistItemPublic:
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


@router.post("/{worklist_item_id}/comments", response_model=WorklistItemPublic, status_code=201,
             responses=responses(401, 403, 404))
def comment(worklist_item_id: ItemId, body: CommentRequest, actor: Worker, session: SessionDep,
            request: Request) -> WorklistItemPublic:
    row = _item(session, worklist_item_id, request, lock=True)
    _note(row, actor, "comment", body.note, _now())
    session.add(row)
    session.commit()
    request.state.audit_detail = "comment"
    return _one(session, row)


@router.post("/{worklist_item_id}/resolve", response_model=WorklistItemPublic,
             responses=responses(401, 403, 404, 409, 422), summary="Resolve an item with an outcome")
def resolve(worklist_item_id: ItemId, body: ResolveRequest, actor: Worker, session: SessionDep,
            request: Request) -> WorklistItemPublic:
    row = _item(session, worklist_item_id, request, lock=True)
    if row.status == wl.Status.RESOLVED:
        raise ProblemError(409, f"This item was already resolved ({row.outcome}); nothing was changed.")
    if row.source == wl.Source.QUARANTINE:
        raise ProblemError(409, f"A held lab message is resolved where it is held: attach or reject quarantine item "
                                f"{row.source_ref} (POST /lab/quarantine/{row.source_ref}/resolve); this item "
                                f"closes with it.")
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
        alert = session.exec(select(AlertRecord).where(AlertRecord.kind == kind,
                                                       AlertRecord.subject_id == subject_id)).first()
        if alert is not None and alert.resolved_at is None:
            alert.resolved_at = now
            session.add(alert)
    session.commit()
    request.state.audit_detail = f"resolved: {body.outcome.value}"
    return _one(session, row)

