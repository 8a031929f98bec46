"""Medication orders, dispensing, missed doses, reassessment and take-home eligibility."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, ShownDep, done_reading, require
from api.idempotency import Attempt, Idempotency, IdempotentRoute, joins_update
from api.inputs import ProgramDay, RequestModel, TreatmentDay
from api.lookups import active_participant, participant_or_404
from api.pages import Page, PagingDep
from api.problems import FieldError, ProblemError, responses
from api.public import EligibilityPublic, MedicationStatePublic, OrderTermsPublic
from api.tokens import Actor
from api.workflow_calls import workflow_call
from domain import medication as med
from domain.calendar import closed_days as calendar_closed_days
from domain.clock import local_date
from domain.takehome import RULE_SETS, rules_to_dict
from domain.vocab import ReassessmentDecision
from iop import takehome_rules
from store.models import DispenseRow, MedicationOrderRecord, Participant
from store.programs import current_program
from store.shapes import typed
from workflows.contracts.medication import (
    BottleReturn,
    CallbackPolicy,
    DispenseRecord,
    DoseChange,
    GuestRequest,
    MedicationStart,
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
router = APIRouter(route_class=IdempotentRoute, tags=["medications"], responses=responses(422))

Prescriber = Annotated[Actor, Depends(require("admin", "clinician"))]
# Releasing or placing a clinical hold is a clinician's decision; an admin cannot release one to dose.
Clinician = Annotated[Actor, Depends(require("clinician"))]
Admin = Annotated[Actor, Depends(require("admin"))]
Dispenser = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]


OVERRIDE_HELP = (
    "A clinician's reason for a dose above the drug's usual maximum (e.g. methadone 120 mg, "
    "buprenorphine 24 mg); kept with the order and in the audit trail"
)


class ScheduleIn(RequestModel):
    """When doses are due."""

    kind: med.ScheduleKind = Field(description="daily-observed, observed-plus-take-home, or injection")
    observed_weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5, 6], max_length=7, description="0 = Monday")
    every_days: int | None = Field(default=None, ge=1, le=120, description="Injection interval, e.g. 28")
    grace_days: int = Field(default=3, ge=0, le=30, description="An injection is overdue after due + grace")


class MedicationOrderIn(RequestModel):
    """A medication order (MOUD: methadone, buprenorphine, naltrexone ...)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "drug": "methadone",
                    "dose": 60,
                    "unit": "mg",
                    "route": "oral",
                    "schedule": {"kind": "observed-plus-take-home", "observed_weekdays": [0, 1, 2, 3, 4, 5]},
                    "start_date": "2026-12-01",
                    "prescriber": "NPI 1234567893",
                }
            ]
        }
    )

    drug: med.Drug = Field(description="The medication")
    dose: float = Field(
        gt=0, allow_inf_nan=False, description="Per dose; above the drug's usual maximum needs override_reason"
    )
    unit: med.DoseUnit = Field(description="Unit of dose")
    route: med.Route = Field(description="How it is given")
    schedule: ScheduleIn = Field(description="When doses are due")
    start_date: ProgramDay = Field(description="First day of the order")
    stop_date: ProgramDay | None = Field(default=None, description="Last day of the order; null for open-ended")
    prescriber: str = Field(min_length=1, max_length=120, description="Who prescribed it (name or NPI)")
    rules: str | None = Field(
        default=None,
        description="Take-home rule set by name; empty: the program's "
        "default (IOP_TAKEHOME_RULES). GET /takehome-rule-sets lists them",
    )
    treatment_start: TreatmentDay | None = Field(
        default=None, description="First day of treatment; defaults to start_date"
    )
    override_reason: str | None = Field(default=None, max_length=1000, description=OVERRIDE_HELP)


class MedicationOrderPublic(BaseModel):
    """A medication order as staff see it."""

    id: str = Field(description="The order's id")
    participant_id: str = Field(description="The participant it is for")
    site: str = Field(description="The dispensing site")
    drug: str = Field(description="The medication")
    status: str = Field(description="active, held or stopped")
    start_date: date = Field(description="First day of the order")
    stop_date: date | None = Field(description="Last day of the order; null for open-ended")
    rules: str = Field(description="The take-home rule set it is judged by")
    order: OrderTermsPublic = Field(description="The order as given: dose, unit, route, schedule, prescriber")
    eligibility: EligibilityPublic | None = Field(
        description="Take-home eligibility now, with the reasons; null before it is evaluated"
    )
    created_at: datetime = Field(description="When it was ordered")
    updated_at: datetime = Field(description="When the record last changed")

    @field_validator("eligibility", mode="before")
    @classmethod
    def _not_yet(cls, value):
        return value or None


class MedicationDetail(MedicationOrderPublic):
    """A medication order with the live state of its workflow."""

    workflow_id: str = Field(description="The Temporal workflow id of the order")
    workflow: MedicationStatePublic | None = Field(
        description="The order as it stands: doses, holds, adherence, take-home eligibility, diversion control"
    )


class DispenseIn(RequestModel):
    """A dose given, supplied, refused or held."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "take-home",
                    "dose": 60,
                    "unit": "mg",
                    "take_home_count": 1,
                    "bottle_ids": ["B-1042"],
                }
            ]
        }
    )

    kind: med.DispenseKind = Field(description="observed-dose, take-home, refused, held or injection")
    dose: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="The dose given; defaults to the order's"
    )
    unit: med.DoseUnit | None = Field(default=None, description="Unit of dose; defaults to the order's")
    take_home_count: int = Field(default=0, ge=0, le=28, description="Take-home doses supplied with it")
    bottle_ids: list[str] = Field(
        default_factory=list, max_length=28, description="Ids of the take-home bottles, one per dose"
    )
    lot: str | None = Field(default=None, max_length=80, description="The lot number")
    site: str | None = Field(default=None, max_length=80, description="Injection site")
    note: str | None = Field(default=None, max_length=1000, description="Remarks")
    split_parts: int = Field(default=1, ge=1, le=4, description="A split dose: this is one of N equal parts")


class ReassessmentIn(RequestModel):
    """A clinician's reassessment after missed doses."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decision": "resume",
                    "note": "Assessed in person; no signs of intoxication",
                }
            ]
        }
    )

    decision: ReassessmentDecision = Field(description="resume dosing, keep-holding, or hold")
    note: str = Field(min_length=1, max_length=2000, description="What was assessed")


class DoseChangeIn(RequestModel):
    """A new dose."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dose": 70,
                    "unit": "mg",
                    "reason": "Withdrawal symptoms at 60 mg",
                }
            ]
        }
    )

    dose: float = Field(gt=0, allow_inf_nan=False, description="The new dose")
    unit: med.DoseUnit = Field(description="Its unit")
    reason: str = Field(min_length=1, max_length=1000, description="Why (kept in the record)")
    override_reason: str | None = Field(default=None, max_length=1000, description=OVERRIDE_HELP)


class StopIn(RequestModel):
    """Stop the order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Tapered off as planned"}]})

    reason: str = Field(min_length=1, max_length=1000, description="Why (kept in the record)")


class PillCountIn(RequestModel):
    """A take-home bottle counted on return (diversion control)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bottle_id": "B-1042",
                    "expected_units": 0,
                    "counted_units": 0,
                    "returned_on_time": True,
                    "seal_intact": True,
                }
            ]
        }
    )

    bottle_id: str = Field(min_length=1, max_length=80, description="The bottle")
    expected_units: float = Field(ge=0, le=10_000, allow_inf_nan=False, description="Units that should be left")
    counted_units: float = Field(ge=0, le=10_000, allow_inf_nan=False, description="Units counted")
    returned_on_time: bool = Field(description="Brought back when asked")
    seal_intact: bool = Field(default=True, description="The tamper seal was intact")


class BottleReturnIn(RequestModel):
    """Empty take-home bottles returned."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "bottle_ids": ["B-1042", "B-1043"],
                    "note": "Both empty",
                }
            ]
        }
    )

    bottle_ids: list[str] = Field(min_length=1, max_length=28, description="The bottles returned")
    note: str = Field(default="", max_length=1000, description="Remarks")


class CallbackIn(RequestModel):
    """Call the participant back with every take-home bottle, on a random day (diversion control)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"window_days": 7, "respond_hours": 24}]})

    window_days: int = Field(default=7, ge=1, le=60, description="The callback falls within this many days")
    respond_hours: int = Field(default=24, ge=1, le=72, description="Time to bring every bottle back")


class GuestIn(RequestModel):
    """Dosing at another site for a while (travel)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site": "south",
                    "first_day": "2026-12-22",
                    "last_day": "2026-12-28",
                }
            ]
        }
    )

    site: str = Field(min_length=1, max_length=64, description="The guest site")
    first_day: ProgramDay = Field(description="First day dosed there")
    last_day: ProgramDay = Field(description="Last day dosed there")


class ClosedDaysIn(RequestModel):
    """Days the clinic is closed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"days": ["2026-12-25", "2027-01-01"]}]})

    days: list[ProgramDay] = Field(max_length=400, description="Clinic-closed days: no dose is due unless supplied")


class StorageIn(RequestModel):
    """The participant's attestation of safe storage for take-home doses (lock box)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"attested": True, "note": "Lock box shown at intake"}]})

    attested: bool = Field(description="The participant attests safe storage")
    note: str = Field(min_length=1, max_length=1000, description="How it was checked")


class DueToday(BaseModel):
    """A dose due today at a site."""

    order_id: str = Field(description="The order")
    participant_id: str = Field(description="The participant")
    site: str = Field(description="The dispensing site")
    drug: str = Field(description="The medication")
    dose: float = Field(description="The dose")
    unit: str = Field(description="Its unit")
    status: str = Field(description="The order's status: active or held")
    expected: str = Field(description="observed-dose, take-home-day, injection-due, injection-overdue or none")
    reason: str = Field(description="Why it is (or is not) due, in words")
    dosed_today: bool = Field(description="A dose was already recorded today")
    recorded_today: list[str] = Field(description="The kinds recorded today")


def _dose_override(
    request: Request,
    actor: Actor,
    drug: str,
    dose: float,
    unit: str,
    override_reason: str | None,
    *,
    initial: bool = False,
) -> str | None:
    """The dose bounds of domain.medication.check_dose, as problem documents naming the field. An
    override is a clinical decision: only a clinician's token gives one. It goes into the audit event."""
    try:
        covered = med.check_dose(drug, dose, unit, override_reason=override_reason, initial=initial)
    except med.DoseOverrideRequired as exc:
        raise ProblemError(
            422, _sentence(str(exc)), errors=[FieldError(field="body.override_reason", message=str(exc))]
        ) from exc
    except ValueError as exc:
        raise ProblemError(422, _sentence(str(exc)), errors=[FieldError(field="body.dose", message=str(exc))]) from exc
    if covered is None:
        return None
    if actor.role != "clinician":
        raise ProblemError(
            403,
            "A dose above the usual maximum is a clinical decision: only a clinician's token may give override_reason.",
        )
    request.state.audit_detail = covered
    return override_reason.strip() if override_reason else None


def _sentence(text: str) -> str:
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _public(row: MedicationOrderRecord) -> MedicationOrderPublic:
    return MedicationOrderPublic.model_validate(row, from_attributes=True)


def _order(session: Session, order_id: str) -> MedicationOrderRecord:
    row = session.get(MedicationOrderRecord, order_id)
    done_reading(session)
    if row is None:
        raise ProblemError(404, f"No medication order has the id {order_id!r}.")
    return row


CALENDAR_HORIZON = timedelta(days=366)  # the order's first year; POST .../closed-days adds later changes


def _closed_days(session: Session, program_id: str, site: str, start: date) -> frozenset[date]:
    """The days the participant's site is closed (the program's calendar): no dose is due on them unless a
    take-home supply covers them. The built-in program is open every day."""
    stored = current_program(session, program_id)
    done_reading(session)  # no transaction stays open while the order's workflow writes its records
    if stored is None or site not in stored[0].sites:
        return frozenset()
    return calendar_closed_days(stored[0].sites[site], start, start + CALENDAR_HORIZON)


@router.post(
    "/participants/{participant_id}/medications",
    status_code=201,
    response_model=MedicationOrderPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Start a medication order",
)
@joins_update
async def start_order(
    participant_id: str,
    body: MedicationOrderIn,
    actor: Prescriber,
    session: SessionDep,
    services: ServicesDep,
    request: Request,
    attempt: Idempotency,
) -> MedicationOrderPublic:
    """Starts a medication order and its workflow: doses due by schedule, missed-dose holds, take-home eligibility
    under the order's rule set. A dose above the usual maximum needs override_reason."""
    # 42 CFR 8.12(h)(3)(ii) limits the first day's methadone dose: it applies when the prescriber says
    # this order starts treatment (treatment_start equal to start_date). Without treatment_start the
    # program cannot tell an induction from a transfer, and the usual maximum applies.
    initial = body.treatment_start is not None and body.treatment_start == body.start_date
    override = _dose_override(request, actor, body.drug, body.dose, body.unit, body.override_reason, initial=initial)
    participant = await run_in_threadpool(active_participant, session, participant_id, "start a medication order")
    closed = await run_in_threadpool(_closed_days, session, participant.program, participant.site, body.start_date)
    rules = body.rules or takehome_rules.default_rule_set(services.settings.takehome_rules)
    if rules not in RULE_SETS:
        raise ProblemError(422, f"Unknown take-home rule set {rules!r}; known: {', '.join(RULE_SETS)}.")
    try:
        order = med.MedicationOrder(
            # Named after its participant: no two participants' orders (nor their workflows) can share an id.
            order_id=f"m-{participant_id.removeprefix('p-')}-{secrets.token_hex(4)}",
            participant_id=participant_id,
            drug=body.drug,
            dose=body.dose,
            unit=body.unit,
            route=body.route,
            schedule=med.Schedule(
                kind=body.schedule.kind,
                observed_weekdays=tuple(body.schedule.observed_weekdays),
                every_days=body.schedule.every_days,
                grace_days=body.schedule.grace_days,
            ),
            start_date=body.start_date.isoformat(),
            stop_date=body.stop_date.isoformat() if body.stop_date else None,
            prescriber=body.prescriber,
            dose_override_reason=override or None,
        )
    except ValueError as exc:
        raise ProblemError(422, f"The order is not valid: {exc}.") from exc
    start = MedicationStart(
        order=order,
        rules=rules,
        treatment_start=body.treatment_start.isoformat() if body.treatment_start else None,
        closed_days=sorted(day.isoformat() for day in closed),
    )
    async with workflow_call("participant"):
        order_id = await services.temporal.get_workflow_handle(participant_workflow_id(participant_id)).execute_update(
            ParticipantWorkflow.start_medication, start, id=attempt.update_id(participant_id) if attempt else None
        )
    return _public(await run_in_threadpool(_order, session, order_id))


@router.get(
    "/participants/{participant_id}/medications",
    response_model=Page[MedicationOrderPublic],
    responses=responses(401, 403, 404, 422),
)
def list_orders(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    status: Annotated[
        str | None, Query(max_length=16, description="Only orders with this status: active, held or stopped")
    ] = None,
) -> Page[MedicationOrderPublic]:
    """Every medication order of one participant, oldest first."""
    participant_or_404(session, participant_id)
    query = select(MedicationOrderRecord).where(MedicationOrderRecord.participant_id == participant_id)
    if status:
        query = query.where(MedicationOrderRecord.status == status)
    return pages.rows(session, query, (col(MedicationOrderRecord.created_at), col(MedicationOrderRecord.id)), _public)


@router.get(
    "/medications/{order_id}",
    response_model=MedicationDetail,
    responses=responses(401, 403, 404, 503),
    summary="An order with its live state: next due, adherence, take-home eligibility with reasons",
)
async def get_order(order_id: str, actor: Reader, session: SessionDep, services: ServicesDep) -> MedicationDetail:
    """One order with the live state of its workflow: next dose due, adherence, take-home eligibility with the
    reasons."""
    row = await run_in_threadpool(_order, session, order_id)
    handle = services.temporal.get_workflow_handle(medication_workflow_id(order_id))
    async with workflow_call("medication order"):
        state = await handle.query(MedicationWorkflow.status)
    return MedicationDetail(
        **_public(row).model_dump(), workflow_id=handle.id, workflow=MedicationStatePublic.of(state)
    )


async def _update(
    services: ServicesDep, session: Session, order_id: str, update, argument, attempt: Attempt | None
) -> MedicationStatePublic:
    row = await run_in_threadpool(_order, session, order_id)
    if row.status == "stopped" and not (attempt and attempt.retry):
        raise ProblemError(409, f"Order {order_id} is stopped; nothing more can be recorded against it.")
    async with workflow_call("medication order"):
        return MedicationStatePublic.of(
            await services.temporal.get_workflow_handle(medication_workflow_id(order_id)).execute_update(
                update, argument, id=attempt.update_id(order_id) if attempt else None
            )
        )


@router.post(
    "/medications/{order_id}/dispenses",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Record a dose, take-home, refusal, hold or injection",
)
@joins_update
async def dispense(
    order_id: str, body: DispenseIn, actor: Dispenser, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Records one event at the dosing window: an observed dose, take-homes supplied, a refusal, a hold, or an
    injection."""
    record = DispenseRecord(actor=actor.token_id, **body.model_dump())
    return await _update(services, session, order_id, MedicationWorkflow.dispense, record, attempt)


@router.post(
    "/medications/{order_id}/reassessment",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def reassess(
    order_id: str,
    body: ReassessmentIn,
    actor: Clinician,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> MedicationStatePublic:
    """A clinician's reassessment after missed doses: resume, keep holding, or hold."""
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.reassess,
        Reassessment(body.decision, body.note, actor.token_id),
        attempt,
    )


@router.post(
    "/medications/{order_id}/dose-change",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def change_dose(
    order_id: str,
    body: DoseChangeIn,
    actor: Prescriber,
    session: SessionDep,
    services: ServicesDep,
    request: Request,
    attempt: Idempotency,
) -> MedicationStatePublic:
    """Changes the dose from now on; a dose above the usual maximum needs override_reason."""
    row = await run_in_threadpool(_order, session, order_id)
    override = _dose_override(request, actor, row.drug, body.dose, body.unit, body.override_reason)
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.change_dose,
        DoseChange(body.dose, body.unit, body.reason, actor.token_id, override),
        attempt,
    )


@router.post(
    "/medications/{order_id}/stop",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def stop(
    order_id: str, body: StopIn, actor: Prescriber, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Stops the order; no further doses are due."""
    return await _update(
        services, session, order_id, MedicationWorkflow.stop, OrderStop(body.reason, actor.token_id), attempt
    )


@router.post(
    "/medications/{order_id}/pill-counts",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="A bottle return or callback pill count",
)
@joins_update
async def pill_count(
    order_id: str, body: PillCountIn, actor: Dispenser, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Records a take-home bottle counted on return or at a callback; a short count or a broken seal counts against
    take-home eligibility."""
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.record_pill_count,
        PillCountRecord(actor=actor.token_id, **body.model_dump()),
        attempt,
    )


@router.post(
    "/medications/{order_id}/storage-attestation",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def storage(
    order_id: str, body: StorageIn, actor: Prescriber, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Records the participant's attestation of safe storage of take-home doses."""
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.attest_storage,
        StorageAttestation(body.attested, body.note, actor.token_id),
        attempt,
    )


@router.post(
    "/medications/{order_id}/bottle-returns",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Bottles brought back, checked against the bottle ids dispensed on this order",
)
@joins_update
async def bottle_returns(
    order_id: str,
    body: BottleReturnIn,
    actor: Dispenser,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> MedicationStatePublic:
    """Records empty take-home bottles returned, checked against the bottles dispensed on this order."""
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.return_bottles,
        BottleReturn(body.bottle_ids, actor.token_id, body.note),
        attempt,
    )


@router.post(
    "/medications/{order_id}/callbacks",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Schedule a random callback: the participant brings every bottle within the set time",
)
@joins_update
async def callbacks(
    order_id: str, body: CallbackIn, actor: Dispenser, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Schedules a random callback: the participant must bring every take-home bottle within the time set."""
    return await _update(
        services,
        session,
        order_id,
        MedicationWorkflow.schedule_callback,
        CallbackPolicy(body.window_days, body.respond_hours, actor.token_id),
        attempt,
    )


@router.post(
    "/medications/{order_id}/guest-dosing",
    response_model=MedicationOrderPublic,
    status_code=201,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Guest dosing at another site: a time-limited copy of the order",
)
@joins_update
async def guest_dosing(
    order_id: str, body: GuestIn, actor: Prescriber, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationOrderPublic:
    """Lets the participant dose at another site for a while (a time-limited copy of the order)."""
    row = await run_in_threadpool(_order, session, order_id)
    if row.status == "stopped":
        raise ProblemError(409, f"Order {order_id} is stopped; start a new order instead.")
    async with workflow_call("medication order"):
        guest_id = await services.temporal.get_workflow_handle(medication_workflow_id(order_id)).execute_update(
            MedicationWorkflow.start_guest,
            GuestRequest(body.site, body.first_day.isoformat(), body.last_day.isoformat(), actor.token_id),
            id=attempt.update_id(order_id) if attempt else None,
        )
    return _public(await run_in_threadpool(_order, session, guest_id))


@router.post(
    "/medications/{order_id}/closed-days",
    response_model=MedicationStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Clinic-closed days for this order (until the program calendar supplies them)",
)
@joins_update
async def closed_days(
    order_id: str, body: ClosedDaysIn, actor: Admin, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> MedicationStatePublic:
    """Sets the clinic-closed days of this order: no dose is due on them unless take-homes cover them."""
    return await _update(
        services, session, order_id, MedicationWorkflow.set_closed_days, [day.isoformat() for day in body.days], attempt
    )


class BandPublic(BaseModel):
    """A time-in-treatment band: from day to day of treatment, at most so many take-home days at a time."""

    from_day: int = Field(description="First treatment day of the band (day 1 is the first day of treatment)")
    to_day: int | None = Field(description="Last treatment day of the band; null: no end")
    max_days: int = Field(description="At most this many take-home days at a time")


class DrugBandsPublic(BaseModel):
    """A drug with bands of its own."""

    drug: str = Field(description="The drug")
    bands: list[BandPublic] = Field(description="Its bands")


class CitationPublic(BaseModel):
    """A rule's primary source."""

    cite: str = Field(description="The citation, e.g. '42 CFR 8.12(i)(3)'")
    text: str = Field(default="", description="What it says, as read")


class RuleSetPublic(BaseModel):
    """A take-home rule set in force, with its citations and what is uncertain in it."""

    name: str = Field(description="The rule set's name (an order's rules field)")
    version: str = Field(description="Its version")
    source: str = Field(description="Where the rules come from")
    jurisdiction: str = Field(description="Whose rules: federal, a state code (US-WI), or program")
    basis: str = Field(description="How eligibility decisions name it")
    applies_to: list[str] = Field(description="The drugs its bands cap")
    bands: list[BandPublic] = Field(description="Time-in-treatment bands")
    bands_by_drug: list[DrugBandsPublic] = Field(description="Drugs with bands of their own")
    max_days_for_uncapped_drugs: int = Field(description="Take-home days for drugs the bands do not cap")
    attendance_threshold: float = Field(description="Regular attendance: the share of expected visits kept")
    require_attendance_record: bool = Field(description="No take-homes without an attendance record")
    screen_lookback_days: int = Field(description="Days of screening results weighed")
    bad_screen_results: list[str] = Field(description="Screen results that reduce take-homes")
    positive_screen_reduces_to: int = Field(description="Take-home days after such a result")
    min_clean_screens_for_reinstatement: int = Field(description="Clean screens needed to reinstate take-homes")
    reinstatement_min_spacing_days: int = Field(description="Days between those clean screens, at least")
    diversion_lookback_days: int = Field(description="Days in which a diversion concern counts as recent")
    missed_dose_run_limit: int = Field(description="Missed doses in a row that need a clinician's reassessment")
    citations: list[CitationPublic] = Field(description="The primary sources")
    uncertain: list[str] = Field(description="What is not settled in it, in words")


@router.get(
    "/takehome-rule-sets",
    response_model=Page[RuleSetPublic],
    responses=responses(401, 403, 422),
    summary="The take-home rule sets in force, with their citations and what is uncertain",
)
def takehome_rule_sets(actor: Reader, pages: PagingDep) -> Page[RuleSetPublic]:
    """The take-home rule sets in force, by name, each with its citations and what is uncertain in it."""
    files = takehome_rules.load_rule_files()
    out = []
    for name, rules in sorted(RULE_SETS.items()):
        jurisdiction, _ = files.get(name, ("program", None))
        values = rules_to_dict(rules)
        values["bands_by_drug"] = [{"drug": drug, "bands": bands} for drug, bands in values["bands_by_drug"]]
        out.append(
            RuleSetPublic.model_validate(
                {
                    **values,
                    "jurisdiction": jurisdiction,
                    "basis": rules.basis,
                    "citations": [
                        {"cite": str(c.get("cite", "")), "text": str(c.get("text", ""))}
                        for c in takehome_rules.citations(name)
                    ],
                    "uncertain": [str(u) for u in takehome_rules.uncertain(name)],
                }
            )
        )
    return pages.cut(out)


@router.get(
    "/dispensing/today",
    response_model=Page[DueToday],
    responses=responses(401, 403, 422),
    summary="Who is due for a dose or injection today, and who has been dosed",
)
def dispensing_today(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    pages: PagingDep,
    site: Annotated[str | None, Query(max_length=64, description="Only this site's orders")] = None,
    dosed: Annotated[
        bool | None, Query(description="true: only orders dosed today; false: only those not dosed yet")
    ] = None,
) -> Page[DueToday]:
    """For a site: who is due for a dose or injection today, and who has already been dosed, by site and order."""
    query = (
        select(MedicationOrderRecord, Participant).join(Participant).where(MedicationOrderRecord.status != "stopped")
    )
    if site:
        query = query.where(MedicationOrderRecord.site == site)
    items = []
    now = datetime.now(UTC)
    ordered = query.order_by(col(MedicationOrderRecord.site), col(MedicationOrderRecord.id))
    for row, participant in session.exec(ordered):
        today = local_date(now, participant.timezone)
        order = typed(med.MedicationOrder, row.order)
        last_injection = session.exec(
            select(func.max(DispenseRow.day)).where(DispenseRow.order_id == row.id, DispenseRow.kind == "injection")
        ).one()
        recorded = session.exec(
            select(DispenseRow.kind).where(DispenseRow.order_id == row.id, DispenseRow.day == today)
        ).all()
        expected = med.expected_on(order, today, last_injection)
        items.append(
            DueToday(
                order_id=row.id,
                participant_id=row.participant_id,
                site=row.site,
                drug=row.drug,
                dose=order.dose,
                unit=order.unit,
                status=row.status,
                expected=expected.kind,
                reason=expected.reason,
                dosed_today=bool({med.OBSERVED_DOSE, med.DispenseKind.INJECTION} & set(recorded)),
                recorded_today=list(recorded),
            )
        )
    if dosed is not None:
        items = [item for item in items if item.dosed_today == dosed]
    page = pages.cut(items)
    shown.extend(item.participant_id for item in page.items)
    return page
