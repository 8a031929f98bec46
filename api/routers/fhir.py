"""A participant's record as a FHIR R4 Bundle with the 42 CFR part 2 security labels (domain/fhir.py).

Read from the records only (the screenings' saved snapshots, lab reports, medication orders and
doses, consents): no Temporal call. Audited like any read: the audit middleware records the
participant id from the path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, overload

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select

from api.deps import SessionDep, require
from api.problems import ProblemError, responses
from api.tokens import Actor
from domain.fhir import ConsentFacts, DoseFacts, ExportFacts, OrderFacts, ScreeningFacts, participant_bundle
from store.models import ConsentRecord, DispenseRow, LabResult, MedicationOrderRecord, Participant, Recipient, Screening

router = APIRouter(tags=["participants"], responses=responses(422))

Clinical = Annotated[Actor, Depends(require("admin", "clinician"))]

FHIR_JSON = "application/fhir+json"


@overload
def _iso(moment: datetime) -> str: ...
@overload
def _iso(moment: datetime | None) -> str | None: ...
def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def export_facts(session: Session, participant: Participant, generated_at: datetime) -> ExportFacts:
    """Everything of this one participant's the Bundle shows, as plain records."""
    pid = participant.id
    screenings = session.exec(select(Screening).where(Screening.participant_id == pid)).all()
    screening_ids = [s.id for s in screenings]
    reports: dict[str, dict[str, dict]] = {}
    if screening_ids:
        for row in session.exec(
            select(LabResult).where(col(LabResult.screening_id).in_(screening_ids), LabResult.state == "filed")
        ).all():
            assert row.screening_id is not None  # selected by screening id
            reports.setdefault(row.screening_id, {})[row.id] = row.report
    orders = session.exec(select(MedicationOrderRecord).where(MedicationOrderRecord.participant_id == pid)).all()
    doses = session.exec(select(DispenseRow).where(DispenseRow.participant_id == pid)).all()
    consents = session.exec(
        select(ConsentRecord, Recipient).where(
            ConsentRecord.participant_id == pid, ConsentRecord.recipient_id == Recipient.id
        )
    ).all()
    return ExportFacts(
        participant_id=pid,
        program=participant.program,
        generated_at=_iso(generated_at),
        screenings=[
            ScreeningFacts(state=s.state or {"screening_id": s.id}, lab_reports=reports.get(s.id, {}))
            for s in screenings
            if s.state
        ],
        orders=[OrderFacts(o.id, o.status, o.order, _iso(o.created_at)) for o in orders],
        doses=[
            DoseFacts(
                d.id,
                d.order_id,
                d.day.isoformat(),
                d.kind,
                d.dose,
                d.unit,
                d.take_home_count,
                d.covered_dates,
                d.lot,
                d.injection_site,
                _iso(d.recorded_at),
            )
            for d in doses
        ],
        consents=[ConsentFacts(c.consent, r.name, _iso(c.revoked_at)) for c, r in consents],
    )


@router.get(
    "/participants/{participant_id}/fhir",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            "description": "A FHIR R4 Bundle (type collection); every resource labelled R, 42CFRPart2, "
            "NORDSCLCD in meta.security",
        },
        **responses(401, 403, 404),
    },
    summary="The participant's record as a FHIR R4 Bundle with 42 CFR part 2 security labels",
)
def fhir_export(participant_id: str, actor: Clinical, session: SessionDep, request: Request) -> JSONResponse:
    """The participant's record as a FHIR R4 Bundle (Patient, Observations, MedicationRequests ...), with 42 CFR
    part 2 security labels."""
    participant = session.get(Participant, participant_id)
    if participant is None:
        raise ProblemError(404, f"No participant has the id {participant_id!r}.")
    bundle = participant_bundle(export_facts(session, participant, datetime.now(UTC)))
    request.state.audit_detail = f"FHIR export: {len(bundle['entry'])} resources"
    return JSONResponse(bundle, media_type=FHIR_JSON)
