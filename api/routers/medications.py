"""Medication orders, dispensing, missed doses, reassessment and take-home eligibility."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, done_reading, require
from api.lookups import active_participant, participant_or_404
from api.problems import ProblemError, responses
from api.tokens import Actor
from api.workflow_calls import workflow_call
from domain import medication as med
from domain.clock import local_date
from domain.takehome import RULE_SETS
from store.models import DispenseRow, MedicationOrderRecord, Participant
from workflows.contracts import (
    DispenseRecord,
    DoseChange,
    MedicationStart,
    MedicationState,
    OrderStop,
    PillCountRecord,
    Reassessment,
    StorageAttestation,
)
from workflows.medication import MedicationWorkflow
from workflows.medication import workflow_id as medication_workflow_id
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(tags=["medications"], responses=responses(422))

Prescriber = Annotated[Actor, Depends(require("admin", "clinician"))]
Dispenser = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]


class ScheduleIn(BaseModel):
    kind: Literal["daily-observed", "observed-plus-take-home", "injection"]
    observed_weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5, 6], description="0 = Monday")
    every_days: int | None = Field(default=None, ge=1, le=120, description="Injection interval, e.g. 28")
    grace_days: int = Field(default=3, ge=0, le=30, description="An injection is overdue after due + grace")


class MedicationOrderIn(BaseModel):
    drug: Literal[med.DRUGS]  # type: ignore[valid-type]
    dose: float = Field(gt=0)
    unit: Literal[med.UNITS]  # type: ignore[valid-type]
    route: Literal[med.ROUTES]  # type: ignore[valid-type]
    schedule: ScheduleIn
    start_date: date
    stop_date: date | None = None
    prescriber: str = Field(min_length=1, max_length=120)
    rules: str = Field(default="federal-otp-2024", description=f"Take-home rule set: {', '.join(RULE_SETS)}")
    treatment_start: date | None = Field(default=None, description="First day of treatment; defaults to start_date")


class MedicationOrderPublic(BaseModel):
    id: str
    participant_id: str
    site: str
    drug: str
    status: str
    start_date: date
    stop_date: date | None
    rules: str
    order: dict
    eligibility: dict
    created_at: datetime
    updated_at: datetime


class MedicationDetail(MedicationOrderPublic):
    workflow_id: str
    workflow: MedicationState | None


class DispenseIn(BaseModel):
    kind: Literal["observed-dose", "take-home", "refused", "held", "injection"]
    dose: float | None = Field(default=None, gt=0)
    unit: Literal[med.UNITS] | None = None  # type: ignore[valid-type]
    take_home_count: int = Field(default=0, ge=0, le=28)
    bottle_ids: list[str] = Field(default_factory=list, max_length=28)
    lot: str | None = Field(default=None, max_length=80)
    site: str | None = Field(default=None, max_length=80, description="Injection site")
    note: str | None = Field(default=None, max_length=1000)


class ReassessmentIn(BaseModel):
    decision: Literal["resume", "keep-holding", "hold"]
    note: str = Field(min_length=1, max_length=2000)


class DoseChangeIn(BaseModel):
    dose: float = Field(gt=0)
    unit: Literal[med.UNITS]  # type: ignore[valid-type]
    reason: str = Field(min_length=1, max_length=1000)


class StopIn(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class PillCountIn(BaseModel):
    bottle_id: str = Field(min_length=1, max_length=80)
    expected_units: float = Field(ge=0)
    counted_units: float = Field(ge=0)
    returned_on_time: bool
    seal_intact: bool = True


class StorageIn(BaseModel):
    attested: bool
    note: str = Field(min_length=1, max_length=1000)


class DueToday(BaseModel):
    order_id: str
    participant_id: str
    site: str
    drug: str
    dose: float
    unit: str
    status: str
    expected: str = Field(description="observed-dose, take-home-day, injection-due, injection-overdue or none")
    reason: str
    dosed_today: bool
    recorded_today: list[str]


def _public(row: MedicationOrderRecord) -> MedicationOrderPublic:
    return MedicationOrderPublic.model_validate(row, from_attributes=True)


def _order(session: Session, order_id: str) -> MedicationOrderRecord:
    row = session.get(MedicationOrderRecord, order_id)
    done_reading(session)
    if row is None:
        raise ProblemError(404, f"No medication order has the id {order_id!r}.")
    return row


@router.post("/participants/{participant_id}/medications", status_code=201, response_model=MedicationOrderPublic,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Start a medication order")
async def start_order(participant_id: str, body: MedicationOrderIn, actor: Prescriber, session: SessionDep,
                      services: ServicesDep) -> MedicationOrderPublic:
    await run_in_threadpool(active_participant, session, participant_id, "start a medication order")
    if body.rules not in RULE_SETS:
        raise ProblemError(422, f"Unknown take-home rule set {body.rules!r}; known: {', '.join(RULE_SETS)}.")
    order = {
        # Named after its participant: no two participants' orders (nor their workflows) can share an id.
        "order_id": f"m-{participant_id.removeprefix('p-')}-{secrets.token_hex(4)}", "participant_id": participant_id,
        "drug": body.drug,
        "dose": body.dose, "unit": body.unit, "route": body.route,
        "schedule": {**body.schedule.model_dump(), "observed_weekdays": list(body.schedule.observed_weekdays)},
        "start_date": body.start_date.isoformat(), "stop_date": body.stop_date.isoformat() if body.stop_date else None,
        "prescriber": body.prescriber,
    }
    try:
        med.order_from_dict(order)
    except ValueError as exc:
        raise ProblemError(422, f"The order is not valid: {exc}.") from exc
    start = MedicationStart(order=order, rules=body.rules,
                            treatment_start=body.treatment_start.isoformat() if body.treatment_start else None)
    async with workflow_call("participant"):
        order_id = await services.temporal.get_workflow_handle(participant_workflow_id(participant_id)).execute_update(
            ParticipantWorkflow.start_medication, start)
    return _public(await run_in_threadpool(_order, session, order_id))


@router.get("/participants/{participant_id}/medications", response_model=list[MedicationOrderPublic],
            responses=responses(401, 403, 404))
def list_orders(participant_id: str, actor: Reader, session: SessionDep) -> list[MedicationOrderPublic]:
    participant_or_404(session, participant_id)
    rows = session.exec(select(MedicationOrderRecord).where(MedicationOrderRecord.participant_id == participant_id)
                        .order_by(col(MedicationOrderRecord.created_at))).all()
    return [_public(r) for r in rows]


@router.get("/medications/{order_id}", response_model=MedicationDetail, responses=responses(401, 403, 404, 503),
            summary="An order with its live state: next due, adherence, take-home eligibility with reasons")
async def get_order(order_id: str, actor: Reader, session: SessionDep, services: ServicesDep) -> MedicationDetail:
    row = await run_in_threadpool(_order, session, order_id)
    handle = services.temporal.get_workflow_handle(medication_workflow_id(order_id))
    async with workflow_call("medication order"):
        state = await handle.query(MedicationWorkflow.status)
    return MedicationDetail(**_public(row).model_dump(), workflow_id=handle.id, workflow=state)


async def _update(services: ServicesDep, session: Session, order_id: str, update, argument) -> MedicationState:
    row = await run_in_threadpool(_order, session, order_id)
    if row.status == "stopped":
        raise ProblemError(409, f"Order {order_id} is stopped; nothing more can be recorded against it.")
    async with workflow_call("medication order"):
        return await services.temporal.get_workflow_handle(medication_workflow_id(order_id)).execute_update(
            update, argument)


@router.post("/medications/{order_id}/dispenses", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Record a dose, take-home, refusal, hold or injection")
async def dispense(order_id: str, body: DispenseIn, actor: Dispenser, session: SessionDep,
                   services: ServicesDep) -> MedicationState:
    record = DispenseRecord(actor=actor.token_id, **body.model_dump())
    return await _update(services, session, order_id, MedicationWorkflow.dispense, record)


@router.post("/medications/{order_id}/reassessment", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503))
async def reassess(order_id: str, body: ReassessmentIn, actor: Prescriber, session: SessionDep,
                   services: ServicesDep) -> MedicationState:
    return await _update(services, session, order_id, MedicationWorkflow.reassess,
                         Reassessment(body.decision, body.note, actor.token_id))


@router.post("/medications/{order_id}/dose-change", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503))
async def change_dose(order_id: str, body: DoseChangeIn, actor: Prescriber, session: SessionDep,
                      services: ServicesDep) -> MedicationState:
    return await _update(services, session, order_id, MedicationWorkflow.change_dose,
                         DoseChange(body.dose, body.unit, body.reason, actor.token_id))


@router.post("/medications/{order_id}/stop", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503))
async def stop(order_id: str, body: StopIn, actor: Prescriber, session: SessionDep,
               services: ServicesDep) -> MedicationState:
    return await _update(services, session, order_id, MedicationWorkflow.stop, OrderStop(body.reason, actor.token_id))


@router.post("/medications/{order_id}/pill-counts", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503), summary="A bottle return or callback pill count")
async def pill_count(order_id: str, body: PillCountIn, actor: Dispenser, session: SessionDep,
                     services: ServicesDep) -> MedicationState:
    return await _update(services, session, order_id, MedicationWorkflow.record_pill_count,
                         PillCountRecord(actor=actor.token_id, **body.model_dump()))


@router.post("/medications/{order_id}/storage-attestation", response_model=MedicationState,
             responses=responses(401, 403, 404, 409, 422, 503))
async def storage(order_id: str, body: StorageIn, actor: Prescriber, session: SessionDep,
                  services: ServicesDep) -> MedicationState:
    return await _update(services, session, order_id, MedicationWorkflow.attest_storage,
                         StorageAttestation(body.attested, body.note, actor.token_id))


@router.get("/dispensing/today", response_model=list[DueToday], responses=responses(401, 403, 422),
            summary="Who is due for a dose or injection today, and who has been dosed")
def dispensing_today(actor: Reader, session: SessionDep, site: str | None = None) -> list[DueToday]:
    query = select(MedicationOrderRecord, Participant).join(Participant).where(
        MedicationOrderRecord.status != "stopped")
    if site:
        query = query.where(MedicationOrderRecord.site == site)
    items = []
    now = datetime.now(timezone.utc)
    for row, participant in session.exec(query.order_by(col(MedicationOrderRecord.site), col(MedicationOrderRecord.id))):
        today = local_date(now, participant.timezone)
        order = med.order_from_dict(row.order)
        last_injection = session.exec(select(func.max(DispenseRow.day)).where(
            DispenseRow.order_id == row.id, DispenseRow.kind == "injection")).one()
        recorded = session.exec(select(DispenseRow.kind).where(DispenseRow.order_id == row.id,
                                                               DispenseRow.day == today)).all()
        expected = med.expected_on(order, today, last_injection)
        items.append(DueToday(order_id=row.id, participant_id=row.participant_id, site=row.site, drug=row.drug,
                              dose=order.dose, unit=order.unit, status=row.status, expected=expected.kind,
                              reason=expected.reason, dosed_today=bool({"observed-dose", "injection"} & set(recorded)),
                              recorded_today=list(recorded)))
    return items
