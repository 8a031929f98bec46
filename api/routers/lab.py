"""Lab results in (HL7 v2 and JSON), the quarantine, the analyte code table, clinician review."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import RPCError
from temporalio.service import RPCStatusCode

from api.deps import ServicesDep, SessionDep, done_reading, require
from api.idempotency import Idempotency, IdempotentRoute, joins_update
from api.inputs import ProgramMoment, RequestModel
from api.pages import Page, PagingDep, containing
from api.problems import ProblemError, responses
from api.public import ScreeningStatePublic
from api.tokens import Actor
from api.workflow_calls import screening_call, workflow_call
from domain.analytes import ANALYTES
from domain.cutoffs import AnalysisMethod
from domain.hl7 import Identifier, Observation, Order, OruMessage, PatientIds
from domain.program import DEFAULT_LAB_TURNAROUND_HOURS
from domain.vocab import QuarantineAction, ResultStatus, ReviewDecision, ScreeningStatus
from ingest.lab import QUARANTINE_REASONS, LabIngest, LabSender, Quarantined, lab_sender, told_lab
from iop.reopen import reopen_screening
from iop.temporal import not_available_now
from store.models import (
    AnalyteDefinition,
    CodeMapping,
    LabMessage,
    LabResult,
    Participant,
    QuarantineItem,
    Screening,
)
from store.programs import current_program
from workflows.contracts.results import Review
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["lab"], responses=responses(422))

# A lab result's method as a lab or a code mapping states it (a point-of-care cup is recorded at collection).
ScreenOrConfirm = Literal[AnalysisMethod.SCREEN, AnalysisMethod.CONFIRM]

Lab = Annotated[Actor, Depends(require("admin", "lab"))]
Staff = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
Admin = Annotated[Actor, Depends(require("admin"))]
Clinician = Annotated[Actor, Depends(require("admin", "clinician"))]

HL7_TYPES = ("text/plain", "application/hl7-v2", "x-application/hl7-v2+er7")
# One synthetic ORU^R01 (HL7 v2.5.1, segments ended by CR) for the API documentation.
HL7_EXAMPLE = (
    "\r".join(
        [
            "MSH|^~\\&|ACMELAB|ACME REFERENCE LAB|IOPW|NORTH|20261201143000||ORU^R01^ORU_R01|ACM-20261201-0042|P|2.5.1",
            "PID|1||p-3f9a1c27b4^^^IOP^PI||Example^Jordan||19900412|F",
            "ORC|RE|S-7Q2M9K|ACM-77001",
            "OBR|1|S-7Q2M9K|ACM-77001|TOXU^Urine drug panel^L|||20261201093000|||||||20261201143000|||||||||||F",
            "OBX|1|NM|3393-6^Benzoylecgonine^LN||12|ng/mL|<150|N|||F",
            "OBX|2|NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N|||F",
            "SPM|1|S-7Q2M9K||UR^Urine^HL70487|||||||||||||20261201093000",
        ]
    )
    + "\r"
)


def ingest(services: ServicesDep) -> LabIngest:
    return services.lab


def _sender_of(actor: Actor) -> LabSender:
    return lab_sender(actor.token_id, actor.role, actor.sender_application, actor.sender_facility)


# --- HL7 ------------------------------------------------------------------------------------


@router.post(
    "/lab/hl7",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}},
            "description": "HL7 ACK(s), one per message: MSA AA, AE or AR with ERR segments saying why",
        },
        **responses(401, 403, 413),
    },
    # The example under text/plain only: the media types are alike, and test clients serialize text/plain.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string"}, **({"example": HL7_EXAMPLE} if t == "text/plain" else {})}
                for t in HL7_TYPES
            },
        }
    },
    summary="Receive HL7 v2 ORU^R01 result message(s); answers with HL7 ACKs",
)
async def receive_hl7(request: Request, actor: Lab, services: ServicesDep) -> Response:
    """Takes one or more HL7 v2.5.1 ORU^R01 messages (MLLP framing optional) from a lab token whose registered
    sender matches MSH-3/MSH-4. Answers with one ACK per message: AA filed, AE held in quarantine (ERR says why), AR
    refused. A message sent again answers its first ACK."""
    body = await request.body()
    text = body.decode("utf-8", errors="replace")
    receipts = await services.lab.receive_hl7(text, "http", _sender_of(actor))
    return Response("\r".join(r.ack for r in receipts) + "\r", media_type="text/plain")


# --- JSON -----------------------------------------------------------------------------------


class JsonAnalyte(RequestModel):
    """One analyte result in a JSON result message."""

    code: str = Field(min_length=1, max_length=80, description="LOINC code, or the lab's own code")
    system: str = Field(default="LN", max_length=40, description="'LN' for LOINC, or anything for local codes")
    label: str | None = Field(default=None, max_length=200, description="The lab's name for the test")
    value: float | None = Field(default=None, description="Numeric result (ng/mL for drugs)")
    qualitative: str | None = Field(default=None, max_length=40, description="POS / NEG / ...")
    units: str | None = Field(default=None, max_length=40, description="Units of value, e.g. 'ng/mL'")
    cutoff: float | None = Field(default=None, ge=0, description="The lab's cutoff for this result")
    method: ScreenOrConfirm | None = Field(
        default=None,
        description="screen (immunoassay) or confirm (GC-MS / LC-MS/MS); inferred from the code when omitted",
    )


class JsonResults(RequestModel):
    """A lab's results for one specimen, for labs that send JSON instead of HL7 v2."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lab_id": "ACME REFERENCE LAB",
                    "message_id": "ACME-20261201-0042",
                    "specimen_id": "S-7Q2M9K",
                    "result_status": "F",
                    "participant_id": "p-3f9a1c27b4",
                    "collected_at": "2026-12-01T09:30:00-05:00",
                    "results": [
                        {
                            "code": "3393-6",
                            "system": "LN",
                            "label": "Benzoylecgonine",
                            "value": 12.0,
                            "qualitative": "NEG",
                            "units": "ng/mL",
                            "cutoff": 150,
                            "method": "screen",
                        }
                    ],
                }
            ]
        }
    )

    lab_id: str = Field(
        min_length=1, max_length=120, description="The sending lab (must match the lab token's registered facility)"
    )
    message_id: str = Field(min_length=1, max_length=200, description="Unique per message from this lab")
    specimen_id: str = Field(min_length=1, max_length=120, description="The specimen id we issued")
    result_status: Literal[ResultStatus.PRELIMINARY, ResultStatus.FINAL, ResultStatus.CORRECTED] = Field(
        description="P preliminary, F final, C corrected (as HL7 v2 OBR-25)"
    )
    participant_id: str | None = Field(default=None, max_length=40, description="Our participant id, if known")
    birth_date: date | None = Field(
        default=None, description="The donor's date of birth, if the lab has it (used only to check the match)"
    )
    collected_at: ProgramMoment | None = Field(default=None, description="When the specimen was collected, per the lab")
    results: list[JsonAnalyte] = Field(min_length=1, max_length=200, description="The analyte results")
    notes: list[str] = Field(default_factory=list, max_length=50, description="The lab's free-text remarks")


class OutcomePublic(BaseModel):
    """What became of one result in a message."""

    result_id: str = Field(description="The result's id")
    state: str = Field(description="filed, held (in quarantine) or rejected")
    screening_id: str | None = Field(description="The screening it was filed against")
    reason_code: str | None = Field(description="Why it was held (a quarantine reason code); null when filed")
    reason: str | None = Field(description="Why it was held, in words")


class ReceiptPublic(BaseModel):
    """The answer to a lab message."""

    ack_code: str = Field(description="AA accepted and filed; AE held in quarantine (see reasons)")
    message_id: int = Field(description="Our id of the stored message")
    replayed: bool = Field(
        description="The message was received before (same sender and message id); this is the first answer again"
    )
    outcomes: list[OutcomePublic] = Field(description="What became of each result in it")


def _as_oru(body: JsonResults) -> OruMessage:
    observations = tuple(
        Observation(
            set_id=str(i + 1),
            value_type="NM" if a.value is not None else "ST",
            code=a.code,
            coding_system=a.system,
            label=a.label,
            value_raw=None,
            value_numeric=a.value,
            value_text=(a.qualitative or "").upper() or None,
            comparator=None,
            units=a.units,
            reference_range=None,
            cutoff=a.cutoff,
            abnormal_flag=None,
            shifted_fields=False,
            status=None,
            notes=("confirmation",) if a.method == "confirm" else (),
        )
        for i, a in enumerate(body.results)
    )
    order = Order(
        placer_order_number=body.specimen_id,
        filler_order_number=None,
        specimen_id=None,
        universal_service_id=None,
        collected_at=body.collected_at.isoformat() if body.collected_at else None,
        result_status=body.result_status,
        observations=observations,
        notes=tuple(body.notes),
    )
    identifiers = (Identifier(body.participant_id, "IOP", "PI"),) if body.participant_id else ()
    return OruMessage(
        sending_application="json",
        sending_facility=body.lab_id,
        receiving_application=None,
        receiving_facility=None,
        message_control_id=body.message_id,
        message_datetime=None,
        version="json",
        message_type="ORU^R01",
        patient=PatientIds(identifiers, None, None, body.birth_date.isoformat() if body.birth_date else None),
        orders=(order,),
    )


@router.post(
    "/lab/results",
    response_model=ReceiptPublic,
    responses=responses(401, 403, 413, 422),
    summary="Receive one specimen's results as JSON (for labs with REST interfaces)",
    description="message_id is the lab's control id: the same message_id with the same body is a resend "
    "(answered as before); with another body it is kept and held as a conflicting control id "
    "(AE). lab_id must be the sender facility the lab token is registered to; any other is "
    "kept and answered 403.",
)
async def receive_json(body: JsonResults, actor: Lab, services: ServicesDep) -> ReceiptPublic:
    receipt = await services.lab.receive_parsed(_as_oru(body), body.model_dump_json(), "json", _sender_of(actor))
    if receipt.ack_code == "AR" and receipt.detail:
        detail = receipt.detail[0].upper() + receipt.detail[1:]
        raise ProblemError(403, f"{detail}. The message was stored (lab message {receipt.message_id}) and not filed.")
    if receipt.replayed:
        stored = await run_in_threadpool(_stored_outcomes, services, receipt.message_id)
        return ReceiptPublic(ack_code=receipt.ack_code, message_id=receipt.message_id, replayed=True, outcomes=stored)
    return ReceiptPublic(
        ack_code=receipt.ack_code,
        message_id=receipt.message_id,
        replayed=False,
        outcomes=_public_outcomes(receipt.outcomes),
    )


def _public_outcomes(outcomes) -> list[OutcomePublic]:
    return [
        OutcomePublic(
            result_id=o.result_id,
            state=o.state,
            screening_id=o.screening_id,
            reason_code=o.reason_code,
            reason=o.reason,
        )
        for o in outcomes
    ]


def _stored_outcomes(services: ServicesDep, message_id: int) -> list[OutcomePublic]:
    from store.models import LabResult

    with Session(services.engine) as session:
        results = session.exec(
            select(LabResult).where(LabResult.lab_message_id == message_id).order_by(col(LabResult.order_index))
        ).all()
        items = {
            q.lab_result_id: q
            for q in session.exec(select(QuarantineItem).where(QuarantineItem.lab_message_id == message_id)).all()
        }
    return [
        OutcomePublic(
            result_id=r.id,
            state=r.state,
            screening_id=r.screening_id,
            reason_code=items[r.id].reason_code if r.id in items else None,
            reason=told_lab(items[r.id].reason_code, items[r.id].reason) if r.id in items else None,
        )
        for r in results
    ]


# --- quarantine -----------------------------------------------------------------------------


class QuarantinePublic(BaseModel):
    """A lab result or message held for staff: it could not be filed as it came."""

    id: int = Field(description="The quarantine item's id")
    lab_message_id: int = Field(description="The stored message it came in")
    lab_result_id: str | None = Field(description="The held result, if one")
    reason_code: str = Field(
        description="Why it is held, e.g. 'unknown-specimen', 'identity-mismatch', 'unmapped-code'"
    )
    reason: str = Field(description="Why it is held, in words")
    created_at: datetime = Field(description="When it was held")
    resolved_at: datetime | None = Field(description="When staff resolved it; null while open")
    resolution: str | None = Field(description="attached, rejected, mapped or not-monitored")
    resolved_by: str | None = Field(description="The token that resolved it")
    resolution_note: str | None = Field(description="What staff verified, or why they rejected it")
    screening_id: str | None = Field(description="The screening it was attached to")
    held_code: str | None = Field(
        default=None, description="A code of a filed result that is not in the code table, as 'CODE (text) from LAB'"
    )
    lab_id: str | None = Field(default=None, description="The lab id to map a code under")
    lab_id_source: str | None = Field(
        default=None, description="Where that id came from: MSH-4, or MSH-3 when MSH-4 was empty, or JSON"
    )


class ResolveRequest(RequestModel):
    """Resolve a quarantine item."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "action": "attach",
                    "screening_id": "s-5e1d0a9c3b",
                    "note": "Specimen id checked on the CCF",
                }
            ]
        }
    )

    action: QuarantineAction = Field(
        description="attach / reject a held result; for a held code: 'mapped' once a code mapping exists for it, "
        "or 'not-monitored' with the reason in note"
    )
    screening_id: str | None = Field(default=None, description="Required to attach")
    note: str = Field(min_length=1, max_length=2000, description="What staff verified or why it is rejected")


@router.get("/lab/quarantine", response_model=Page[QuarantinePublic], responses=responses(401, 403, 422))
def list_quarantine(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    resolved: Annotated[
        bool, Query(description="true: items staff resolved; false (default): items still held")
    ] = False,
    reason_code: Annotated[
        list[str],
        Query(
            max_length=len(QUARANTINE_REASONS),
            description="Only items held for these reasons (repeat for several): " + ", ".join(QUARANTINE_REASONS),
        ),
    ] = [],  # noqa: B006 - FastAPI copies it
    lab_id: Annotated[str | None, Query(max_length=120, description="Only items from this lab")] = None,
) -> Page[QuarantinePublic]:
    """Lab results and messages held for staff, oldest first, one page at a time."""
    query = select(QuarantineItem).where(
        col(QuarantineItem.resolved_at).is_not(None) if resolved else col(QuarantineItem.resolved_at).is_(None)
    )
    unknown = [r for r in reason_code if r not in QUARANTINE_REASONS]
    if unknown:
        raise ProblemError(
            422,
            f"Unknown reason_code {', '.join(repr(r[:60]) for r in unknown)}; the reasons are: "
            + ", ".join(QUARANTINE_REASONS)
            + ".",
        )
    if reason_code:
        query = query.where(col(QuarantineItem.reason_code).in_(reason_code))
    if lab_id:
        query = query.where(QuarantineItem.lab_id == lab_id)
    return pages.rows(
        session,
        query,
        (col(QuarantineItem.id),),
        lambda row: QuarantinePublic.model_validate(row, from_attributes=True),
    )


@router.post(
    "/lab/quarantine/{item_id}/resolve",
    response_model=QuarantinePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
async def resolve_quarantine(
    item_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: ResolveRequest, actor: Staff, services: ServicesDep
) -> QuarantinePublic:
    """Resolves a held item: attach a held result to a screening, reject it, or close a held code once it is mapped
    or not monitored."""
    try:
        if body.action in (QuarantineAction.MAPPED, QuarantineAction.NOT_MONITORED):
            async with workflow_call("screening"):
                item = await services.lab.settle_held_code(item_id, body.action, actor.token_id, body.note)
        elif body.action == "attach":
            if not body.screening_id:
                raise ProblemError(422, "To attach a result, name the screening_id it belongs to.")
            async with screening_call(services.engine, body.screening_id):
                item = await services.lab.attach(item_id, body.screening_id, actor.token_id, body.note)
        else:
            item = await services.lab.reject(item_id, actor.token_id, body.note)
    except LookupError as exc:
        raise ProblemError(404, str(exc)[0].upper() + str(exc)[1:] + ".") from exc
    except Quarantined as exc:
        raise ProblemError(409, exc.reason[0].upper() + exc.reason[1:] + ".") from exc
    return QuarantinePublic.model_validate(item, from_attributes=True)


# --- code table -----------------------------------------------------------------------------


class CodeMappingIn(RequestModel):
    """A lab's code for an analyte, so its results are filed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lab_id": "ACME REFERENCE LAB",
                    "code": "ACM-BUP",
                    "analyte": "buprenorphine",
                    "method": "confirm",
                    "note": "From the lab's test menu",
                }
            ]
        }
    )

    lab_id: str = Field(min_length=1, max_length=120, description="As derived from MSH-4 (or the JSON lab_id)")
    code: str = Field(
        min_length=1, max_length=80, description="The code as the lab sends it (OBX-3.1 or the JSON code)"
    )
    analyte: str = Field(description="An analyte key, e.g. 'buprenorphine' (GET /lab/analytes lists them)")
    method: ScreenOrConfirm = Field(
        default=AnalysisMethod.SCREEN,
        description="Used only when the code itself names no method (a local or method-less LOINC code)",
    )
    method_override: ScreenOrConfirm | None = Field(
        default=None, description="An explicit choice that wins over the method a LOINC code names; shown in the review"
    )
    note: str | None = Field(default=None, max_length=400, description="Why, or where the mapping comes from")


class CodeMappingPublic(CodeMappingIn):
    """A lab code mapped to an analyte."""

    id: int = Field(description="The mapping's id")
    created_by: str = Field(description="The token that made it")
    created_at: datetime = Field(description="When it was made")


class AnalytePublic(BaseModel):
    """An analyte the program monitors."""

    key: str = Field(description="Its key, e.g. 'buprenorphine'")
    label: str = Field(description="Its name for people")
    drug_class: str = Field(description="Its drug class, e.g. 'opioid'")


@router.get("/lab/analytes", response_model=Page[AnalytePublic], responses=responses(401, 403, 422))
def analytes(
    actor: Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor", "lab"))],
    session: SessionDep,
    pages: PagingDep,
    q: Annotated[str | None, Query(max_length=80, description="Part of the key or the name, any case")] = None,
    drug_class: Annotated[str | None, Query(max_length=60, description="Only this drug class, e.g. 'opioid'")] = None,
) -> Page[AnalytePublic]:
    """The analytes the program monitors, with their drug class, by key."""
    added = [
        AnalytePublic(key=d.key, label=d.label, drug_class=d.drug_class)
        for d in session.exec(select(AnalyteDefinition)).all()
    ]
    every = sorted(
        [AnalytePublic(key=k, label=a.label, drug_class=a.drug_class) for k, a in ANALYTES.items()] + added,
        key=lambda a: a.key,
    )
    wanted = (q or "").strip().casefold()
    return pages.cut(
        [
            a
            for a in every
            if (not wanted or wanted in a.key.casefold() or wanted in a.label.casefold())
            and (not drug_class or a.drug_class == drug_class)
        ]
    )


@router.get("/lab/code-mappings", response_model=Page[CodeMappingPublic], responses=responses(401, 403, 422))
def list_mappings(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    lab_id: Annotated[str | None, Query(max_length=120, description="Only this lab's codes")] = None,
    analyte: Annotated[str | None, Query(max_length=40, description="Only codes mapped to this analyte")] = None,
    q: Annotated[
        str | None, Query(max_length=80, description="Part of the lab's code or of the mapping's note, any case")
    ] = None,
) -> Page[CodeMappingPublic]:
    """The lab code to analyte mappings in force, by lab and code."""
    query = select(CodeMapping)
    if lab_id:
        query = query.where(CodeMapping.lab_id == lab_id)
    if analyte:
        query = query.where(CodeMapping.analyte == analyte)
    if q and q.strip():
        like = containing(q.strip())
        query = query.where(
            or_(col(CodeMapping.code).ilike(like, escape="\\"), col(CodeMapping.note).ilike(like, escape="\\"))
        )
    return pages.rows(
        session,
        query,
        (col(CodeMapping.lab_id), col(CodeMapping.code)),
        lambda row: CodeMappingPublic.model_validate(row, from_attributes=True),
    )


@router.post(
    "/lab/code-mappings", status_code=201, response_model=CodeMappingPublic, responses=responses(401, 403, 409, 422)
)
def add_mapping(body: CodeMappingIn, actor: Admin, session: SessionDep) -> CodeMappingPublic:
    """Maps a lab's code to an analyte so its results are filed rather than held."""
    if body.analyte not in ANALYTES and session.get(AnalyteDefinition, body.analyte) is None:
        raise ProblemError(422, f"Unknown analyte {body.analyte!r}; GET /lab/analytes lists the known keys.")
    row = CodeMapping(**body.model_dump(), created_by=actor.token_id)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ProblemError(
            409, f"Lab {body.lab_id!r} already maps code {body.code!r}; delete that mapping first."
        ) from None
    return CodeMappingPublic.model_validate(row, from_attributes=True)


@router.delete("/lab/code-mappings/{mapping_id}", status_code=204, responses=responses(401, 403, 404, 422))
def delete_mapping(mapping_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Admin, session: SessionDep) -> Response:
    """Removes a code mapping; later results with that code are held again."""
    row = session.get(CodeMapping, mapping_id)
    if row is None:
        raise ProblemError(404, f"No code mapping has the id {mapping_id}.")
    session.delete(row)
    session.commit()
    return Response(status_code=204)


# --- review ---------------------------------------------------------------------------------


class ReviewRequest(RequestModel):
    """A clinician's review of a non-negative result, or the reversal of the review that decided a final one."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "decision": "excuse",
                    "explanation": "Valid buprenorphine prescription verified with the PDMP",
                },
                {
                    "decision": "excuse",
                    "reverses": True,
                    "explanation": (
                        "The prescription was found after the positive was confirmed: PDMP record of 2026-11-18"
                    ),
                },
            ]
        }
    )

    decision: ReviewDecision = Field(
        description="confirm the positive, excuse it (e.g. prescribed), or request a confirmation test or a retest"
    )
    explanation: str = Field(
        min_length=1, max_length=2000, description="What was checked, e.g. a valid prescription for the substance found"
    )
    reverses: bool = Field(
        default=False,
        description=(
            "true: reverse the review that decided this final result (decision confirm or excuse, the other one than "
            "before, with why). The final outcome changes and every recipient told of the result is sent an amendment "
            "(or a retraction) referencing the original report. Taken also after the screening's workflow has closed."
        ),
    )


def _exists(session: Session, screening_id: str) -> Screening | None:
    row = session.get(Screening, screening_id)
    done_reading(session)
    return row


@router.post(
    "/screenings/{screening_id}/review",
    response_model=ScreeningStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Clinician / MRO review of a result",
)
@joins_update
async def review(
    screening_id: str,
    body: ReviewRequest,
    actor: Clinician,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
    request: Request,
) -> ScreeningStatePublic:
    """A clinician's (MRO's) decision on a non-negative result: confirm it, excuse it with an explanation (e.g. a
    valid prescription), or ask for a confirmation test (staff get a worklist item to ask the lab; a program that
    reports presumptive screens reports it meanwhile, worded as presumptive) or a retest. With `reverses: true`,
    the review that decided a final result is reversed: the outcome changes and whoever was told is sent the
    amendment."""
    if await run_in_threadpool(_exists, session, screening_id) is None:
        raise ProblemError(404, f"No screening has the id {screening_id!r}.")
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    review = Review(body.decision, body.explanation, actor.token_id, reverses=body.reverses)
    # The audit trail names the decision, and a reversal as such (the explanation stays in the record).
    request.state.audit_detail = f"{body.decision.value}{' (reverses the deciding review)' if body.reverses else ''}"
    update_id = attempt.update_id(screening_id) if attempt else None
    async with screening_call(services.engine, screening_id):
        try:
            return ScreeningStatePublic.of(await handle.execute_update(ScreeningWorkflow.review, review, id=update_id))
        except RPCError as exc:
            # A final result's workflow closes after its correction period; a reversal reopens it (no time limit).
            if (
                exc.status != RPCStatusCode.NOT_FOUND
                or not_available_now(exc)
                or not body.reverses
                or not await reopen_screening(
                    services.temporal, services.engine, screening_id, services.settings.task_queue
                )
            ):
                raise
        return ScreeningStatePublic.of(await handle.execute_update(ScreeningWorkflow.review, review, id=update_id))


# --- analytes an admin adds; quarantine item detail; turnaround --------------------------------


class AnalyteIn(RequestModel):
    """A new analyte to monitor."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "isotonitazene",
                    "label": "Isotonitazene",
                    "drug_class": "opioid",
                    "initial_cutoff": 0.5,
                    "confirm_cutoff": 0.1,
                }
            ]
        }
    )

    key: str = Field(pattern=r"^[a-z0-9_]{2,40}$", description="snake_case key, e.g. 'isotonitazene'")
    label: str = Field(min_length=1, max_length=120, description="Its name for people")
    drug_class: str = Field(min_length=1, max_length=60, description="Its drug class, e.g. 'opioid'")
    medication: str | None = Field(default=None, max_length=60, description="The prescription it evidences")
    also_explained_by: list[str] = Field(
        default_factory=list, max_length=20, description="Medication keys that explain a positive for it too"
    )
    initial_cutoff: float | None = Field(default=None, gt=0, description="ng/mL, used when the lab sends none")
    confirm_cutoff: float | None = Field(default=None, gt=0, description="ng/mL, used when the lab sends none")


class AddedAnalytePublic(BaseModel):
    """An analyte an administrator added, as it is now monitored."""

    key: str = Field(description="Its key")
    label: str = Field(description="Its name for people")
    drug_class: str = Field(description="Its drug class")
    medication: str | None = Field(description="The prescription it evidences")
    also_explained_by: list[str] = Field(description="Medication keys that explain a positive for it too")
    initial_cutoff: float | None = Field(description="ng/mL, used when the lab sends none")
    confirm_cutoff: float | None = Field(description="ng/mL, used when the lab sends none")


@router.post(
    "/lab/analytes",
    status_code=201,
    response_model=AddedAnalytePublic,
    responses=responses(401, 403, 409, 422),
    summary="Add an analyte (name, class, default cutoffs, medication links) without a code change",
)
def add_analyte(body: AnalyteIn, actor: Admin, session: SessionDep) -> AddedAnalytePublic:
    """Adds an analyte to monitor, with its class, default cutoffs and the medications that explain it."""
    if body.key in ANALYTES or session.get(AnalyteDefinition, body.key) is not None:
        raise ProblemError(409, f"Analyte {body.key!r} already exists; GET /lab/analytes lists them.")
    session.add(AnalyteDefinition(**body.model_dump(), created_by=actor.token_id))
    session.commit()
    return AddedAnalytePublic(**body.model_dump())


class Candidate(BaseModel):
    """A screening a held result may belong to."""

    screening_id: str = Field(description="The screening")
    specimen_id: str | None = Field(description="Its specimen id")
    status: str = Field(description="Its status")
    score: int = Field(description="How well it matches (higher is better)")
    why: list[str] = Field(description="What matches, in words")


class QuarantineDetail(QuarantinePublic):
    """A quarantine item with what the lab claimed and the screenings it may belong to."""

    control_id: str = Field(description="The message control id (MSH-10 or the JSON message_id)")
    sender: str = Field(description="The sending application and facility")
    claimed_participant_ids: list[str] = Field(description="Participant ids the message names")
    claimed_specimen_ids: list[str] = Field(description="Specimen ids the message names")
    held_fields: dict | None = Field(description="The held order's fields as the lab sent them")
    candidates: list[Candidate] = Field(description="Screenings it may belong to, best first")


@router.get("/lab/quarantine/{item_id}", response_model=QuarantineDetail, responses=responses(401, 403, 404, 422))
def quarantine_item(
    item_id: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Reader, session: SessionDep
) -> QuarantineDetail:
    """One held item with what the lab claimed and the screenings it may belong to, best first."""
    item = session.get(QuarantineItem, item_id)
    if item is None:
        raise ProblemError(404, f"No quarantine item has the id {item_id}.")
    message = session.get(LabMessage, item.lab_message_id)
    result = session.get(LabResult, item.lab_result_id) if item.lab_result_id else None
    record = result.report if result else None
    pids = re_pids(message.raw if message else "")
    specimens = [
        s for s in ((record or {}).get("placer"), (record or {}).get("specimen"), (record or {}).get("filler")) if s
    ]
    ranked = []
    awaiting = session.exec(
        select(Screening)
        .where(col(Screening.collected_at).is_not(None))
        .order_by(col(Screening.collected_at).desc())
        .limit(200)
    ).all()
    for screening in awaiting:
        why, score = [], 0
        if screening.specimen_id and screening.specimen_id in specimens:
            why.append("specimen id matches")
            score += 4
        if screening.participant_id in pids:
            why.append("participant id in PID-3 matches")
            score += 3
        if screening.status in (ScreeningStatus.AWAITING_RESULT, ScreeningStatus.PRELIMINARY):
            why.append("awaiting a result")
            score += 1
        if score >= 3:
            ranked.append(
                Candidate(
                    screening_id=screening.id,
                    specimen_id=screening.specimen_id,
                    status=screening.status,
                    score=score,
                    why=why,
                )
            )
    ranked.sort(key=lambda c: -c.score)
    base = QuarantinePublic.model_validate(item, from_attributes=True).model_dump()
    return QuarantineDetail(
        **base,
        control_id=message.control_id if message else "",
        sender=message.sender if message else "",
        claimed_participant_ids=pids,
        claimed_specimen_ids=specimens,
        held_fields=record,
        candidates=ranked[:10],
    )


def re_pids(raw: str) -> list[str]:
    """Participant ids PID-3 claims (first component of each repetition)."""
    for segment in raw.replace("\n", "\r").split("\r"):
        if segment.startswith("PID") and len(segment) > 3:
            fields = segment.split(segment[3])
            if len(fields) > 3:
                return [rep.split("^", 1)[0] for rep in fields[3].split("~") if rep.split("^", 1)[0]]
    return []


class LabTurnaround(BaseModel):
    """How fast one lab reports."""

    lab_id: str = Field(description="The lab")
    results: int = Field(description="Final results counted")
    collection_to_received_hours_median: float | None = Field(
        description="Median hours from collection to the first result received"
    )
    received_to_final_hours_median: float | None = Field(
        description="Median hours from the first result received to the final one"
    )
    over_target: int = Field(
        description="Results that took longer than their target from collection to final (to "
        "received, while not final yet)"
    )
    target_hours: float | None = Field(
        description="The target the results were judged against, hours from collection "
        "to final: the target_hours asked for, else the participants' "
        "program's lab_turnaround_hours (48 unless the program sets it); "
        "null when this lab's results span programs with different targets"
    )
    targets: dict[str, float] = Field(
        description="Program id -> its target (hours), for the programs whose "
        "participants' results are counted (empty with target_hours asked)"
    )


@router.get(
    "/reports/lab-turnaround",
    response_model=Page[LabTurnaround],
    responses=responses(401, 403, 422),
    summary="Per lab: collection to received and received to final, against the program's target (hours)",
)
def lab_turnaround(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    target_hours: Annotated[
        float | None,
        Query(
            gt=0,
            le=24 * 60,
            description="Judge every result against this target (hours) instead of its "
            "participant's program's lab_turnaround_hours",
        ),
    ] = None,
    lab_id: Annotated[str | None, Query(max_length=120, description="Only this lab")] = None,
) -> Page[LabTurnaround]:
    """Per lab, median hours from collection to the first result and from there to the final one, and how many
    results missed their target: each result is judged against its participant's program's turnaround target (a
    program setting, `lab_turnaround_hours`, 48 h by default) unless `target_hours` is given."""
    from statistics import median

    per_lab: dict[str, dict[str, list[float]]] = {}
    targets: dict[str, dict[str, float]] = {}
    rows = session.exec(
        select(LabResult, Screening, Participant.program).where(
            LabResult.screening_id == Screening.id,
            Screening.participant_id == Participant.id,
            LabResult.state == "filed",
        )
    ).all()
    program_targets: dict[str, float] = {}
    for result, screening, program_id in rows:
        if lab_id and result.lab_id != lab_id:
            continue
        if program_id not in program_targets:
            program_targets[program_id] = program_turnaround_hours(session, program_id)
        target = target_hours if target_hours is not None else program_targets[program_id]
        lab = per_lab.setdefault(result.lab_id, {"in": [], "final": [], "over": []})
        if target_hours is None:
            targets.setdefault(result.lab_id, {})[program_id] = target
        received = _naive(result.received_at)
        finalized = (screening.state or {}).get("finalized_at")
        final_at = _naive(datetime.fromisoformat(finalized)) if finalized else None
        if final_at:
            lab["final"].append((final_at - received).total_seconds() / 3600)
        if screening.collected_at:
            collected = _naive(screening.collected_at)
            lab["in"].append((received - collected).total_seconds() / 3600)
            if ((final_at or received) - collected).total_seconds() / 3600 > target:
                lab["over"].append(target)

    def judged_against(lab: str) -> float | None:
        if target_hours is not None:
            return target_hours
        distinct = set(targets.get(lab, {}).values())
        return distinct.pop() if len(distinct) == 1 else None

    return pages.cut(
        [
            LabTurnaround(
                lab_id=lab,
                results=len(v["in"]) or len(v["final"]),
                collection_to_received_hours_median=round(median(v["in"]), 2) if v["in"] else None,
                received_to_final_hours_median=round(median(v["final"]), 2) if v["final"] else None,
                over_target=len(v["over"]),
                target_hours=judged_against(lab),
                targets=dict(sorted(targets.get(lab, {}).items())),
            )
            for lab, v in sorted(per_lab.items())
        ]
    )


def program_turnaround_hours(session: Session, program_id: str) -> float:
    """A program's lab turnaround target (its current version); the default for a program that is not stored."""
    found = current_program(session, program_id)
    return float(found[0].lab_turnaround_hours) if found else DEFAULT_LAB_TURNAROUND_HOURS


def _naive(moment: datetime) -> datetime:
    """UTC without tzinfo (SQLite returns naive UTC, PostgreSQL aware)."""
    offset = moment.utcoffset()
    return moment if offset is None else (moment - offset).replace(tzinfo=None)
