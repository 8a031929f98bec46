"""Lab results in (HL7 v2 and JSON), the quarantine, the analyte code table, clinician review."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, done_reading, require
from api.idempotency import Idempotency, IdempotentRoute, joins_update
from api.problems import ProblemError, responses
from api.tokens import Actor
from api.workflow_calls import workflow_call
from domain.analytes import ANALYTES
from domain.hl7 import Identifier, Observation, Order, OruMessage, PatientIds
from ingest.lab import LabIngest, Quarantined
from store.models import CodeMapping, QuarantineItem, Screening
from workflows.contracts import Review, ScreeningState
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["lab"], responses=responses(422))

Lab = Annotated[Actor, Depends(require("admin", "lab"))]
Staff = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
Admin = Annotated[Actor, Depends(require("admin"))]
Clinician = Annotated[Actor, Depends(require("admin", "clinician"))]

HL7_TYPES = ("text/plain", "application/hl7-v2", "x-application/hl7-v2+er7")


def ingest(services: ServicesDep) -> LabIngest:
    return services.lab


# --- HL7 ------------------------------------------------------------------------------------


@router.post(
    "/lab/hl7",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "HL7 ACK(s), one per message: MSA AA, AE or AR "
                                                                  "with ERR segments saying why"},
               **responses(401, 403)},
    openapi_extra={"requestBody": {"required": True, "content": {t: {"schema": {"type": "string"}} for t in HL7_TYPES}}},
    summary="Receive HL7 v2 ORU^R01 result message(s); answers with HL7 ACKs",
)
async def receive_hl7(request: Request, actor: Lab, services: ServicesDep) -> Response:
    body = await request.body()
    text = body.decode("utf-8", errors="replace")
    receipts = await services.lab.receive_hl7(text, "http")
    return Response("\r".join(r.ack for r in receipts) + "\r", media_type="text/plain")


# --- JSON -----------------------------------------------------------------------------------


class JsonAnalyte(BaseModel):
    code: str = Field(min_length=1, max_length=80, description="LOINC code, or the lab's own code")
    system: str = Field(default="LN", max_length=40, description="'LN' for LOINC, or anything for local codes")
    label: str | None = Field(default=None, max_length=200)
    value: float | None = Field(default=None, description="Numeric result (ng/mL for drugs)")
    qualitative: str | None = Field(default=None, max_length=40, description="POS / NEG / ...")
    units: str | None = Field(default=None, max_length=40)
    cutoff: float | None = Field(default=None, ge=0, description="The lab's cutoff for this result")
    method: Literal["screen", "confirm"] | None = Field(default=None)


class JsonResults(BaseModel):
    lab_id: str = Field(min_length=1, max_length=120)
    message_id: str = Field(min_length=1, max_length=200, description="Unique per message from this lab")
    specimen_id: str = Field(min_length=1, max_length=120, description="The specimen id we issued")
    result_status: Literal["P", "F", "C"]
    participant_id: str | None = Field(default=None, max_length=40, description="Our participant id, if known")
    birth_date: date | None = None
    collected_at: datetime | None = None
    results: list[JsonAnalyte] = Field(min_length=1, max_length=200)
    notes: list[str] = Field(default_factory=list, max_length=50)


class OutcomePublic(BaseModel):
    result_id: str
    state: str
    screening_id: str | None
    reason_code: str | None
    reason: str | None


class ReceiptPublic(BaseModel):
    ack_code: str = Field(description="AA accepted and filed; AE held in quarantine (see reasons)")
    message_id: int
    replayed: bool
    outcomes: list[OutcomePublic]


def _as_oru(body: JsonResults) -> OruMessage:
    observations = tuple(
        Observation(set_id=str(i + 1), value_type="NM" if a.value is not None else "ST", code=a.code,
                    coding_system=a.system, label=a.label, value_raw=None, value_numeric=a.value,
                    value_text=(a.qualitative or "").upper() or None, comparator=None, units=a.units,
                    reference_range=None, cutoff=a.cutoff, abnormal_flag=None, shifted_fields=False, status=None,
                    notes=("confirmation",) if a.method == "confirm" else ())
        for i, a in enumerate(body.results))
    order = Order(placer_order_number=body.specimen_id, filler_order_number=None, specimen_id=None,
                  universal_service_id=None, collected_at=body.collected_at.isoformat() if body.collected_at else None,
                  result_status=body.result_status, observations=observations, notes=tuple(body.notes))
    identifiers = (Identifier(body.participant_id, "IOP", "PI"),) if body.participant_id else ()
    return OruMessage(sending_application="json", sending_facility=body.lab_id, receiving_application=None,
                      receiving_facility=None, message_control_id=body.message_id, message_datetime=None,
                      version="json", message_type="ORU^R01",
                      patient=PatientIds(identifiers, None, None, body.birth_date.isoformat() if body.birth_date else None),
                      orders=(order,))


@router.post("/lab/results", response_model=ReceiptPublic, responses=responses(401, 403, 422),
             summary="Receive one specimen's results as JSON (for labs with REST interfaces)")
async def receive_json(body: JsonResults, actor: Lab, services: ServicesDep) -> ReceiptPublic:
    receipt = await services.lab.receive_parsed(_as_oru(body), body.model_dump_json(), "json")
    if receipt.replayed:
        stored = await run_in_threadpool(_stored_outcomes, services, receipt.message_id)
        return ReceiptPublic(ack_code=receipt.ack_code, message_id=receipt.message_id, replayed=True, outcomes=stored)
    return ReceiptPublic(ack_code=receipt.ack_code, message_id=receipt.message_id, replayed=False,
                         outcomes=_public_outcomes(receipt.outcomes))


def _public_outcomes(outcomes) -> list[OutcomePublic]:
    return [OutcomePublic(result_id=o.result_id, state=o.state, screening_id=o.screening_id,
                          reason_code=o.reason_code, reason=o.reason) for o in outcomes]


def _stored_outcomes(services: ServicesDep, message_id: int) -> list[OutcomePublic]:
    from store.models import LabResult

    with Session(services.engine) as session:
        results = session.exec(select(LabResult).where(LabResult.lab_message_id == message_id)
                               .order_by(col(LabResult.order_index))).all()
        items = {q.lab_result_id: q for q in session.exec(
            select(QuarantineItem).where(QuarantineItem.lab_message_id == message_id)).all()}
    return [OutcomePublic(result_id=r.id, state=r.state, screening_id=r.screening_id,
                          reason_code=items[r.id].reason_code if r.id in items else None,
                          reason=items[r.id].reason if r.id in items else None) for r in results]


# --- quarantine -----------------------------------------------------------------------------


class QuarantinePublic(BaseModel):
    id: int
    lab_message_id: int
    lab_result_id: str | None
    reason_code: str
    reason: str
    created_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    resolved_by: str | None
    resolution_note: str | None
    screening_id: str | None


class QuarantinePage(BaseModel):
    items: list[QuarantinePublic]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ResolveRequest(BaseModel):
    action: Literal["attach", "reject"]
    screening_id: str | None = Field(default=None, description="Required to attach")
    note: str = Field(min_length=1, max_length=2000, description="What staff verified or why it is rejected")


@router.get("/lab/quarantine", response_model=QuarantinePage, responses=responses(401, 403, 422))
def list_quarantine(
    actor: Reader,
    session: SessionDep,
    resolved: bool = False,
    reason_code: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # past this, SQL integers overflow
) -> QuarantinePage:
    query = select(QuarantineItem).where(
        QuarantineItem.resolved_at.is_not(None) if resolved else QuarantineItem.resolved_at.is_(None))
    if reason_code:
        query = query.where(QuarantineItem.reason_code == reason_code)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(QuarantineItem.id)).offset(offset).limit(limit)).all()
    return QuarantinePage(items=[QuarantinePublic.model_validate(r, from_attributes=True) for r in rows],
                          total=total, limit=limit, offset=offset,
                          next_offset=offset + limit if offset + limit < total else None)


@router.post("/lab/quarantine/{item_id}/resolve", response_model=QuarantinePublic,
             responses=responses(401, 403, 404, 409, 422, 503))
async def resolve_quarantine(item_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: ResolveRequest, actor: Staff,
                             services: ServicesDep) -> QuarantinePublic:
    try:
        if body.action == "attach":
            if not body.screening_id:
                raise ProblemError(422, "To attach a result, name the screening_id it belongs to.")
            async with workflow_call("screening"):
                item = await services.lab.attach(item_id, body.screening_id, actor.token_id, body.note)
        else:
            item = await services.lab.reject(item_id, actor.token_id, body.note)
    except LookupError as exc:
        raise ProblemError(404, str(exc)[0].upper() + str(exc)[1:] + ".") from exc
    except Quarantined as exc:
        raise ProblemError(409, exc.reason[0].upper() + exc.reason[1:] + ".") from exc
    return QuarantinePublic.model_validate(item, from_attributes=True)


# --- code table -----------------------------------------------------------------------------


class CodeMappingIn(BaseModel):
    lab_id: str = Field(min_length=1, max_length=120, description="As derived from MSH-4 (or the JSON lab_id)")
    code: str = Field(min_length=1, max_length=80)
    analyte: str = Field(description="An analyte key, e.g. 'buprenorphine' (GET /lab/analytes lists them)")
    method: Literal["screen", "confirm"] = "screen"
    note: str | None = Field(default=None, max_length=400)


class CodeMappingPublic(CodeMappingIn):
    id: int
    created_by: str
    created_at: datetime


class AnalytePublic(BaseModel):
    key: str
    label: str
    drug_class: str


@router.get("/lab/analytes", response_model=list[AnalytePublic], responses=responses(401, 403))
def analytes(actor: Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor", "lab"))]) -> list[AnalytePublic]:
    return [AnalytePublic(key=k, label=a.label, drug_class=a.drug_class) for k, a in sorted(ANALYTES.items())]


@router.get("/lab/code-mappings", response_model=list[CodeMappingPublic], responses=responses(401, 403))
def list_mappings(actor: Reader, session: SessionDep, lab_id: str | None = None) -> list[CodeMappingPublic]:
    query = select(CodeMapping)
    if lab_id:
        query = query.where(CodeMapping.lab_id == lab_id)
    rows = session.exec(query.order_by(col(CodeMapping.lab_id), col(CodeMapping.code))).all()
    return [CodeMappingPublic.model_validate(r, from_attributes=True) for r in rows]


@router.post("/lab/code-mappings", status_code=201, response_model=CodeMappingPublic,
             responses=responses(401, 403, 409, 422))
def add_mapping(body: CodeMappingIn, actor: Admin, session: SessionDep) -> CodeMappingPublic:
    if body.analyte not in ANALYTES:
        raise ProblemError(422, f"Unknown analyte {body.analyte!r}; GET /lab/analytes lists the known keys.")
    row = CodeMapping(**body.model_dump(), created_by=actor.token_id)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ProblemError(409, f"Lab {body.lab_id!r} already maps code {body.code!r}; delete that mapping first.")
    return CodeMappingPublic.model_validate(row, from_attributes=True)


@router.delete("/lab/code-mappings/{mapping_id}", status_code=204, responses=responses(401, 403, 404, 422))
def delete_mapping(mapping_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Admin, session: SessionDep) -> Response:
    row = session.get(CodeMapping, mapping_id)
    if row is None:
        raise ProblemError(404, f"No code mapping has the id {mapping_id}.")
    session.delete(row)
    session.commit()
    return Response(status_code=204)


# --- review ---------------------------------------------------------------------------------


class ReviewRequest(BaseModel):
    decision: Literal["confirm", "excuse", "request-confirmation", "request-retest"]
    explanation: str = Field(min_length=1, max_length=2000,
                             description="What was checked, e.g. a valid prescription for the substance found")


def _exists(session: Session, screening_id: str) -> Screening | None:
    row = session.get(Screening, screening_id)
    done_reading(session)
    return row


@router.post("/screenings/{screening_id}/review", response_model=ScreeningState,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Clinician / MRO review of a result")
@joins_update
async def review(screening_id: str, body: ReviewRequest, actor: Clinician, session: SessionDep,
                 services: ServicesDep, attempt: Idempotency) -> ScreeningState:
    if await run_in_threadpool(_exists, session, screening_id) is None:
        raise ProblemError(404, f"No screening has the id {screening_id!r}.")
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    async with workflow_call("screening"):
        return await handle.execute_update(ScreeningWorkflow.review,
                                           Review(body.decision, body.explanation, actor.token_id),
                                           id=attempt.update_id(screening_id) if attempt else None)
