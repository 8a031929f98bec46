"""Participants: enrollment, the record, the live program state, phase changes, discharge."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ConfigDict, Field
from sqlalchemy import String, and_, cast, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import ServicesDep, SessionDep, ShownDep, require
from api.idempotency import Idempotency, IdempotentRoute, joins_update
from api.inputs import RequestModel
from api.lookups import active_participant, participant_or_404
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.public import ParticipantProgramPublic
from api.tokens import Actor
from api.workflow_calls import TEMPORAL_DOWN, workflow_call
from domain import search
from domain.clock import local_date
from domain.plan import PHASES
from domain.vocab import DischargeKind, ParticipantStatus
from iop.crashpoints import crash_point
from iop.enrollment import start_program
from store.models import IdempotencyRecord, Participant, ParticipantCreate, ParticipantPublic, utcnow
from store.programs import current_program
from workflows.contracts.participant import Discharge, ParticipantState, PhaseChange
from workflows.participant import ParticipantWorkflow, workflow_id

log = logging.getLogger(__name__)

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, prefix="/participants", tags=["participants"], responses=responses(422))

Enroller = Annotated[Actor, Depends(require("admin", "staff"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
CareTeam = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]

ENROLLING = ParticipantStatus.ENROLLING


class ParticipantDetail(ParticipantPublic):
    """A participant with the live state of their program workflow."""

    workflow_id: str = Field(description="The Temporal workflow id of the participant's program")
    workflow: ParticipantProgramPublic | None = Field(
        description="The participant's program as it stands (null while the enrollment completes)"
    )


class PhaseChangeRequest(RequestModel):
    """Move a participant to another phase."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "phase": "phase-2",
                    "reason": "90 days of negative results and full attendance",
                }
            ]
        }
    )

    phase: str = Field(
        min_length=1,
        max_length=32,
        description=f"One of the program's phases ({', '.join(PHASES)} in the default program)",
    )
    reason: str = Field(
        min_length=1, max_length=500, description="Why (kept in the record), e.g. '90 days of negative results'"
    )


class DischargeRequest(RequestModel):
    """End a participant's program."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "completed",
                    "reason": "Completed all phases",
                }
            ]
        }
    )

    kind: DischargeKind = Field(
        description="How the participant leaves: completed, withdrawn, transferred or administrative"
    )
    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the record)")


def _new_participant_id() -> str:
    return "p-" + secrets.token_hex(5)


def _request_digest(body: ParticipantCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _public(participant: Participant) -> ParticipantPublic:
    return ParticipantPublic.model_validate(participant, from_attributes=True)


@router.post(
    "",
    status_code=201,
    response_model=ParticipantPublic,
    responses=responses(401, 403, 409, 422, 503),
    summary="Enroll a participant and start their program",
)
async def enroll(
    body: ParticipantCreate,
    actor: Enroller,
    session: SessionDep,
    services: ServicesDep,
    response: Response,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ParticipantPublic:
    """Creates the participant record and starts their program workflow (daily random selection by phase). Send an
    Idempotency-Key header: a retry with the same key and body answers with the first result; the same key with
    another body is refused."""
    program = await run_in_threadpool(_stored_program, session, body)
    if program is None and body.phase not in PHASES:
        raise ProblemError(422, f"phase must be one of {', '.join(PHASES)}.")
    if program is not None:
        body = _fit_program(body, program[0])
    digest = _request_digest(body)
    # Today is the program's day in its own time zone: in New York after 7 pm the UTC date is already tomorrow's.
    start_date = body.start_date or local_date(datetime.now(UTC), body.timezone)

    replayed = await run_in_threadpool(_replay, session, actor, idempotency_key, digest)
    if replayed is not None:
        response.headers["Idempotent-Replayed"] = "true"
        return await _complete(services, session, request, replayed)

    participant = Participant(
        id=_new_participant_id(),
        **body.model_dump(exclude={"case_numbers", "start_date"}),
        case_numbers=[c.model_dump() for c in body.case_numbers],
        start_date=start_date,
        status=ENROLLING,
    )
    # The record is committed first (as "enrolling") so the workflow can confirm it; if the
    # workflow cannot be started the record is removed again, so nothing is left half-made.
    try:
        await run_in_threadpool(_insert, session, participant, actor, idempotency_key, digest)
    except IntegrityError:
        session.rollback()
        replayed = await run_in_threadpool(_replay, session, actor, idempotency_key, digest)
        if replayed is None:
            raise ProblemError(
                409, "Another request with this Idempotency-Key is still being processed; retry."
            ) from None
        response.headers["Idempotent-Replayed"] = "true"
        return await _complete(services, session, request, replayed)

    crash_point("enroll.after-commit")
    try:
        await _start_program(services, participant)
    except Exception as exc:
        # The error's type only: its text can quote the request it failed on (PHI stays out of logs).
        log.warning("enrollment of %s rolled back: workflow not started (%s)", participant.id, type(exc).__name__)
        await run_in_threadpool(_remove, session, participant.id, idempotency_key)
        raise ProblemError(503, TEMPORAL_DOWN.replace("nothing was changed", "nobody was enrolled")) from exc

    crash_point("enroll.after-start")
    await run_in_threadpool(_mark_active, session, participant)
    request.state.audit_participant = participant.id
    return _public(participant)


async def _complete(
    services: ServicesDep, session: Session, request: Request, replayed: ParticipantPublic
) -> ParticipantPublic:
    """A repeated request whose first attempt stopped half way (its process died after the record
    was committed): finish that enrollment rather than replay an answer that was never given."""
    if replayed.status != ENROLLING:
        return replayed
    participant = await run_in_threadpool(session.get_one, Participant, replayed.id)
    try:
        await _start_program(services, participant)
    except WorkflowAlreadyStartedError:
        pass  # started by the first attempt or the reconciler: the same program
    except Exception as exc:
        log.warning("enrollment of %s not completed yet: workflow not started (%s)", participant.id, type(exc).__name__)
        # The record stays: this retry, a later one or the reconciler completes it.
        raise ProblemError(
            503,
            "The workflow service (Temporal) cannot be reached right now; the enrollment is "
            "recorded but its program is not started yet. Retrying with the same "
            "Idempotency-Key is safe and completes it.",
            headers={"Retry-After": "5"},
        ) from exc
    await run_in_threadpool(_mark_active, session, participant)
    request.state.audit_participant = participant.id
    return _public(participant)


async def _start_program(services: ServicesDep, participant: Participant) -> None:
    with Session(services.engine) as session:
        program = current_program(session, participant.program)
    await start_program(services.temporal, services.settings.task_queue, participant, program)


def _stored_program(session: Session, body: ParticipantCreate):
    found = current_program(session, body.program)
    session.rollback()  # end the read: the enrollment's own transaction starts afresh
    return found


def _fit_program(body: ParticipantCreate, program) -> ParticipantCreate:
    """Enrollment in a stored program: its phases and sites; the site's time zone unless another was asked for."""
    phases = [p.name for p in program.phases]
    if body.phase not in phases:
        raise ProblemError(422, f"phase must be one of program {program.program_id}'s phases: {', '.join(phases)}.")
    if body.site not in program.sites:
        raise ProblemError(
            422,
            f"site {body.site!r} is not a site of program {program.program_id}; its sites are "
            f"{', '.join(sorted(program.sites))}.",
        )
    zone = program.sites[body.site].timezone
    if "timezone" in body.model_fields_set and body.timezone != zone:
        raise ProblemError(
            422,
            f"site {body.site} of program {program.program_id} keeps {zone} time; leave timezone "
            "out or send that zone.",
        )
    return body.model_copy(update={"timezone": zone})


def _replay(session: Session, actor: Actor, key: str | None, digest: str) -> ParticipantPublic | None:
    if key is None:
        return None
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.actor == actor.token_id,
            IdempotencyRecord.scope == "participants",
            IdempotencyRecord.key == key,
        )
    ).first()
    if record is None:
        return None
    if record.request_sha256 != digest:
        raise ProblemError(
            422,
            "This Idempotency-Key was already used with a different request body; use a new key for a new enrollment.",
        )
    participant = session.get(Participant, record.resource_id)
    if participant is None:
        return None
    return _public(participant)


def _insert(session: Session, participant: Participant, actor: Actor, key: str | None, digest: str) -> None:
    session.rollback()  # end the read snapshot of _replay: the write must see the latest rows
    session.add(participant)
    if key is not None:
        session.add(
            IdempotencyRecord(
                actor=actor.token_id, scope="participants", key=key, request_sha256=digest, resource_id=participant.id
            )
        )
    session.commit()


def _remove(session: Session, participant_id: str, key: str | None) -> None:
    session.rollback()
    if key is not None:
        for record in session.exec(
            select(IdempotencyRecord).where(IdempotencyRecord.resource_id == participant_id)
        ).all():
            session.delete(record)
    participant = session.get(Participant, participant_id)
    if participant is not None:
        session.delete(participant)
    session.commit()


def _mark_active(session: Session, participant: Participant) -> None:
    # The workflow's first activity does the same; whichever runs first wins, both are harmless.
    row = session.get(Participant, participant.id)
    if row is not None and row.status == ENROLLING:
        row.status = "active"
        row.updated_at = utcnow()
        session.add(row)
        session.commit()
        participant.status, participant.updated_at = row.status, row.updated_at


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matches(wanted: search.Search):
    """A birth date; or every word in the given or family name, or the whole text in a case number."""
    if wanted.birth_date:
        return Participant.date_of_birth == wanted.birth_date
    names = and_(
        *(
            or_(
                col(Participant.given_name).ilike(_like(w), escape="\\"),
                col(Participant.family_name).ilike(_like(w), escape="\\"),
            )
            for w in wanted.words
        )
    )
    return or_(names, cast(Participant.case_numbers, String).ilike(_like(wanted.text), escape="\\"))


@router.get("", response_model=Page[ParticipantPublic], responses=responses(401, 403, 422))
def list_participants(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    pages: PagingDep,
    status: Annotated[
        str | None,
        Query(max_length=40, description="Only participants with this status: active, completed, withdrawn, ..."),
    ] = None,
    phase: Annotated[str | None, Query(max_length=32, description="Only participants in this phase")] = None,
    site: Annotated[str | None, Query(max_length=64, description="Only this site's participants")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="A name (every word must match the given or "
            "family name), a birth date (1987-03-14 or 03/14/1987) or a case number",
        ),
    ] = None,
    date_of_birth: Annotated[date | None, Query(description="Only participants born that day")] = None,
    phone: Annotated[str | None, Query(max_length=32, description="Matches the same digits, however written")] = None,
) -> Page[ParticipantPublic]:
    """Participants, newest first, one page at a time, filtered by status, phase and site. Every participant shown
    is recorded in the audit trail."""
    query = select(Participant)
    if status:
        query = query.where(Participant.status == status)
    if phase:
        query = query.where(Participant.phase == phase)
    if site:
        query = query.where(Participant.site == site)
    if q and q.strip():
        query = query.where(_matches(search.parse(q)))
    if date_of_birth:
        query = query.where(Participant.date_of_birth == date_of_birth)
    if phone is not None:
        digits = search.phone_digits(phone)
        if len(digits) < 7:
            raise ProblemError(422, "A phone search needs at least 7 digits.")
        # Narrowed in SQL by the last four digits, then compared digit for digit.
        candidates = session.exec(query.where(col(Participant.phone).contains(digits[-4:]))).all()
        same = [r.id for r in candidates if search.phone_digits(r.phone) == digits]
        query = query.where(col(Participant.id).in_(same))
    page = pages.rows(session, query, (col(Participant.created_at).desc(), col(Participant.id)), _public)
    shown.extend(p.id for p in page.items)
    return page


@router.get("/{participant_id}", response_model=ParticipantDetail, responses=responses(401, 403, 404, 503))
async def get_participant(
    participant_id: str, actor: Reader, session: SessionDep, services: ServicesDep
) -> ParticipantDetail:
    """One participant's record with the live state of their program workflow."""
    participant = await run_in_threadpool(participant_or_404, session, participant_id)
    handle = services.temporal.get_workflow_handle(workflow_id(participant_id))
    state: ParticipantState | None = None
    if participant.status != ENROLLING:
        async with workflow_call("participant"):
            state = await handle.query(ParticipantWorkflow.status)
    return ParticipantDetail(
        **_public(participant).model_dump(), workflow_id=handle.id, workflow=ParticipantProgramPublic.of(state)
    )


@router.post(
    "/{participant_id}/phase",
    response_model=ParticipantProgramPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def change_phase(
    participant_id: str,
    body: PhaseChangeRequest,
    actor: CareTeam,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ParticipantProgramPublic:
    """Moves the participant to another phase; the daily draws follow the new phase's testing plan."""
    await run_in_threadpool(active_participant, session, participant_id, "change the phase")
    handle = services.temporal.get_workflow_handle(workflow_id(participant_id))
    async with workflow_call("participant"):
        return ParticipantProgramPublic.of(
            await handle.execute_update(
                ParticipantWorkflow.change_phase,
                PhaseChange(phase=body.phase, reason=body.reason, actor=actor.token_id),
                id=attempt.update_id(participant_id) if attempt else None,
            )
        )


@router.post(
    "/{participant_id}/discharge",
    response_model=ParticipantProgramPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def discharge(
    participant_id: str,
    body: DischargeRequest,
    actor: CareTeam,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ParticipantProgramPublic:
    """Ends the participant's program: no further draws; open screenings are cancelled."""
    if attempt is None or not attempt.retry:  # a retry may find its own first attempt's discharge: it joins it
        await run_in_threadpool(active_participant, session, participant_id, "discharge")
    handle = services.temporal.get_workflow_handle(workflow_id(participant_id))
    async with workflow_call("participant"):
        return ParticipantProgramPublic.of(
            await handle.execute_update(
                ParticipantWorkflow.discharge,
                Discharge(kind=body.kind, reason=body.reason, actor=actor.token_id),
                id=attempt.update_id(participant_id) if attempt else None,
            )
        )
