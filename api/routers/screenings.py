"""Screenings: today's list, one screening's live state, collection, excuse, refusal, for-cause
tests, check-ins, pauses, and the record of every daily draw."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, col, select
from temporalio.client import RPCError
from temporalio.service import RPCStatusCode

from api.deps import ServicesDep, SessionDep, ShownDep, done_reading, require
from api.idempotency import Attempt, Idempotency, IdempotentRoute, joins_update
from api.inputs import ProgramDay, ProgramMoment, RequestModel
from api.lookups import active_participant, participant_or_404, screening_or_404
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.public import CheckInAnswerPublic, ParticipantProgramPublic, ScreeningRefPublic, ScreeningStatePublic
from api.routers.channel import _record_told
from api.tokens import Actor
from api.workflow_calls import screening_call, workflow_call
from domain.consent import DisclosureCategory
from domain.program import SpecimenType
from domain.report_facts import ReportFacts
from domain.vocab import CheckInMethod, PointOfCareResult, RefusalKind
from iop.reopen import reopen_screening
from iop.temporal import not_available_now
from store.models import Screening, SelectionDraw, utcnow
from store.shapes import typed
from workflows.contracts.disclosure import DisclosureEvent
from workflows.contracts.participant import CheckIn, ForCause, Pause
from workflows.contracts.screening import (
    EXCUSED,
    MISSED,
    NOT_NOTIFIED,
    TAKES_COLLECTION,
    WINDOW_LOST,
    Admission,
    Collection,
    Excuse,
    PocReading,
    Refusal,
    ScreeningState,
    already_message,
)
from workflows.disclosure import DiscloseEventWorkflow
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["screenings"], responses=responses(422))

Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
Collector = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
FrontDesk = Annotated[Actor, Depends(require("admin", "staff"))]


class ScreeningPublic(BaseModel):
    """A screening (one drug test) as staff see it."""

    id: str = Field(description="The screening's id")
    participant_id: str = Field(description="The participant it is for")
    site: str = Field(description="Clinic site code where the specimen is collected")
    day: date = Field(description="The program day the test was selected for")
    reason: str = Field(description="Why it was selected: random (the daily draw) or for-cause")
    status: str = Field(
        description="Where the screening is: scheduled, awaiting-collection, awaiting-result, "
        "completed, missed, excused, refused or cancelled"
    )
    selected_at: datetime = Field(description="When the test was selected")
    notified_at: datetime | None = Field(description="When the participant was told; null until then")
    window_closes_at: datetime | None = Field(
        description="When the collection window closes; null before the participant is told"
    )
    specimen_id: str | None = Field(description="The specimen id issued at collection (the lab reports against it)")
    specimen_type: str | None = Field(description="urine, oral-fluid or breath")
    late_collection: bool = Field(description="The specimen was collected after the window closed")
    collected_at: datetime | None = Field(description="When the specimen was collected; null until then")
    result_due_at: datetime | None = Field(description="When the lab's final result is due")
    result_overdue: bool = Field(description="The result is past result_due_at and not yet final")
    updated_at: datetime = Field(description="When the record last changed")


class ScreeningDetail(ScreeningPublic):
    """A screening with the live state of its workflow."""

    workflow_id: str = Field(description="The Temporal workflow id of the screening")
    workflow: ScreeningStatePublic | None = Field(
        description="The screening as it stands: window, collection, results, reviews and outcome"
    )


class DrawPublic(BaseModel):
    """One day's random draw for a participant, selected or not, and why."""

    day: date = Field(description="The program day drawn for")
    phase: str = Field(description="The participant's phase that day")
    weekday: int = Field(description="0 = Monday ... 6 = Sunday")
    probability: float = Field(description="The chance of selection that day (from the phase's plan)")
    roll: float = Field(
        description="The uniform draw in [0, 1); selected when below probability (unless a rule decided)"
    )
    time_roll: float = Field(description="The uniform draw in [0, 1) that placed the notice within the day")
    selected: bool = Field(description="A test was selected that day")
    reason: str = Field(description="selected, not-selected, paused, clinic-closed, ceiling-reached or floor-required")
    detail: str = Field(description="The draw explained in words")
    screening_id: str | None = Field(description="The screening it made, if selected")
    program_id: str | None = Field(default=None, description="The program whose definition decided the draw")
    program_version: int | None = Field(default=None, description="The version of that program's definition")


class ForCauseRequest(RequestModel):
    """Ask for a test now, outside the random draw."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Observed signs of impairment at group"}]})

    reason: str = Field(min_length=1, max_length=500, description="Why staff want a test now")


class PocReadingIn(RequestModel):
    """One point-of-care cup or strip reading."""

    analyte: str = Field(min_length=1, max_length=40, description="What the strip tests for, e.g. 'fentanyl'")
    result: PointOfCareResult = Field(description="positive, negative or invalid")


class CollectionRequest(RequestModel):
    """A specimen collected for a screening."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "specimen_type": "urine",
                    "observed": True,
                    "collector": "JD",
                    "collected_at": "2026-12-01T09:30:00-05:00",
                    "temperature_in_range": True,
                    "temperature_f": 96.4,
                    "poc_readings": [{"analyte": "fentanyl", "result": "negative"}],
                    "custody_notes": "Sealed in donor's view",
                }
            ]
        }
    )

    specimen_type: SpecimenType = Field(description="urine, oral-fluid or breath")
    observed: bool = Field(description="The collection was directly observed")
    collector: str = Field(min_length=1, max_length=80, description="Staff id or initials of the collector")
    collected_at: ProgramMoment | None = Field(default=None, description="Defaults to now")
    temperature_in_range: bool | None = Field(default=None, description="Urine 90-100 °F within 4 minutes")
    temperature_f: float | None = Field(default=None, ge=50, le=120, description="Urine temperature read, °F")
    poc_readings: list[PocReadingIn] = Field(
        default_factory=list, max_length=30, description="Point-of-care readings taken at collection"
    )
    breath_alcohol: float | None = Field(
        default=None, ge=0, le=1, description="g/210 L, breath tests: the screening test"
    )
    breath_confirmation: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="g/210 L: the evidential confirmation test, taken at least 15 minutes "
        "after the screening test (49 CFR 40.251); without it a result at or above the cutoff is presumptive",
    )
    breath_confirmation_at: ProgramMoment | None = Field(default=None, description="When the confirmation was taken")
    breath_device_id: str | None = Field(default=None, max_length=80, description="The evidential breath device")
    custody_notes: str | None = Field(default=None, max_length=2000, description="Chain-of-custody remarks")
    late: bool = Field(default=False, description="Collected after the window closed")
    late_reason: str | None = Field(
        default=None, max_length=500, description="Why the specimen was collected late (with late=true)"
    )

    @field_validator("collected_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("collected_at needs a time zone offset, e.g. 2026-11-23T09:30:00-05:00")
        return value


class ExcuseRequest(RequestModel):
    """Excuse a selected test (it is not counted as missed)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Hospitalised; discharge papers on file"}]})

    reason: str = Field(min_length=1, max_length=500, description="Why, e.g. 'hospitalised; discharge papers on file'")


class AdmissionRequest(RequestModel):
    """The participant's documented admission of use, in place of a specimen not yet collected."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "substances": ["cocaine"],
                    "witnessed_by": "J. Rivera, CADC",
                    "statement": "Told the counsellor before the test that they used cocaine on Friday night",
                    "admitted_at": "2026-12-01T09:10:00-05:00",
                }
            ]
        }
    )

    substances: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9 -]{1,59}$")]] = Field(
        min_length=1,
        max_length=10,
        description="What the participant admitted using, lower case, e.g. 'cocaine', "
        "'alcohol' (reported as positive_for)",
    )
    witnessed_by: str = Field(
        min_length=2,
        max_length=80,
        description="The staff member who witnessed the admission (reported with it, as admission_witnessed_by)",
    )
    statement: str = Field(
        min_length=1,
        max_length=1000,
        description="What the participant said, as documented; kept in the record, never reported",
    )
    admitted_at: ProgramMoment | None = Field(default=None, description="When the admission was made; defaults to now")

    @field_validator("admitted_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("admitted_at needs a time zone offset, e.g. 2026-11-23T09:30:00-05:00")
        return value


class MakeUpRequest(RequestModel):
    """A make-up test in place of one the participant was never told about, or whose window was lost."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "Notice not delivered; clinic closed early"}]})

    reason: str = Field(min_length=1, max_length=500, description="Why a make-up test instead of the lost one")


class RefusalRequest(RequestModel):
    """The participant refused the test or the specimen cannot be used."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "refused-observation",
                    "detail": "Declined an observed collection",
                }
            ]
        }
    )

    kind: RefusalKind = Field(description="What happened (see the enumeration)")
    detail: str = Field(min_length=1, max_length=1000, description="What staff saw")


class CheckInRequest(RequestModel):
    """A participant checked in for the day (to learn whether they are selected)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"participant_id": "p-3f9a1c27b4", "method": "kiosk"}]})

    participant_id: str = Field(min_length=1, max_length=40, description="The participant checking in")
    method: CheckInMethod = Field(description="How: kiosk, ivr, sms, app or staff")


class PauseRequest(RequestModel):
    """Days on which no test is drawn (travel, hospital stay, ...)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "start": "2026-12-20",
                    "end": "2026-12-27",
                    "reason": "Inpatient stay",
                }
            ]
        }
    )

    start: ProgramDay = Field(description="First paused day")
    end: ProgramDay = Field(description="Last paused day")
    reason: str = Field(min_length=1, max_length=500, description="Why (kept in the record)")


def _public(row: Screening) -> ScreeningPublic:
    return ScreeningPublic.model_validate(row, from_attributes=True)


SCREENING_ORDER = (col(Screening.day).desc(), col(Screening.id))


@router.get("/screenings", response_model=Page[ScreeningPublic], responses=responses(401, 403, 422))
def list_screenings(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    pages: PagingDep,
    day: Annotated[date | None, Query(alias="date", description="Program day (YYYY-MM-DD)")] = None,
    status: Annotated[str | None, Query(max_length=40, description="Only screenings with this status")] = None,
    participant_id: Annotated[str | None, Query(max_length=40, description="Only this participant's")] = None,
    site: Annotated[str | None, Query(max_length=64, description="Only this site's")] = None,
    reason: Annotated[
        str | None, Query(max_length=40, description="Only random (the daily draw) or only for-cause tests")
    ] = None,
) -> Page[ScreeningPublic]:
    """Screenings, latest day first, one page at a time, filtered by date, status, participant and site: the front
    desk's list of who is to test today."""
    query = select(Screening)
    if day:
        query = query.where(Screening.day == day)
    if status:
        query = query.where(Screening.status == status)
    if participant_id:
        query = query.where(Screening.participant_id == participant_id)
    if site:
        query = query.where(Screening.site == site)
    if reason:
        query = query.where(Screening.reason == reason)
    page = pages.rows(session, query, SCREENING_ORDER, _public)
    shown.extend(item.participant_id for item in page.items)
    return page


@router.get(
    "/participants/{participant_id}/screenings",
    response_model=Page[ScreeningPublic],
    responses=responses(401, 403, 404, 422),
)
def participant_screenings(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    status: Annotated[str | None, Query(max_length=40, description="Only screenings with this status")] = None,
) -> Page[ScreeningPublic]:
    """Every screening of one participant, latest day first."""
    participant_or_404(session, participant_id)
    query = select(Screening).where(Screening.participant_id == participant_id)
    if status:
        query = query.where(Screening.status == status)
    return pages.rows(session, query, SCREENING_ORDER, _public)


@router.get(
    "/participants/{participant_id}/draws", response_model=Page[DrawPublic], responses=responses(401, 403, 404, 422)
)
def participant_draws(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    since: Annotated[date | None, Query(description="From this program day (inclusive)")] = None,
    until: Annotated[date | None, Query(description="To this program day (inclusive)")] = None,
    selected: Annotated[
        bool | None, Query(description="Only the days a test was (true) or was not (false) selected")
    ] = None,
) -> Page[DrawPublic]:
    """Every daily draw made so far, first day first, with its rolls: why each day was or was not selected. A
    draw is recorded when it is made, never before."""
    participant_or_404(session, participant_id)
    query = select(SelectionDraw).where(SelectionDraw.participant_id == participant_id)
    if since:
        query = query.where(SelectionDraw.day >= since)
    if until:
        query = query.where(SelectionDraw.day <= until)
    if selected is not None:
        query = query.where(SelectionDraw.selected == selected)
    return pages.rows(
        session, query, (col(SelectionDraw.day),), lambda row: DrawPublic.model_validate(row, from_attributes=True)
    )


@router.get("/screenings/{screening_id}", response_model=ScreeningDetail, responses=responses(401, 403, 404, 503))
async def get_screening(
    screening_id: str, actor: Reader, session: SessionDep, services: ServicesDep
) -> ScreeningDetail:
    """One screening with the live state of its workflow: window, collection, results, review."""
    row = await run_in_threadpool(screening_or_404, session, screening_id)
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    async with workflow_call("screening"):
        state = await handle.query(ScreeningWorkflow.status)
    return ScreeningDetail(**_public(row).model_dump(), workflow_id=handle.id, workflow=ScreeningStatePublic.of(state))


def _open_screening(session: Session, screening_id: str) -> Screening:
    """A screening that can still take a fact; a settled one answers 409 with what happened."""
    row = screening_or_404(session, screening_id)
    if row.status not in TAKES_COLLECTION and row.state:
        raise ProblemError(409, _sentence(already_message(typed(ScreeningState, row.state))))
    return row


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


async def _screening_update(
    services: ServicesDep,
    session: Session,
    screening_id: str,
    update,
    argument,
    attempt: Attempt | None,
    reopens: tuple[str, ...] = (),
) -> ScreeningStatePublic:
    """The update on the screening's workflow. When that workflow has closed and the screening's status is one of
    `reopens`, it is reopened from its saved state (iop/reopen.py) and the update goes to the new run."""
    if attempt is None or not attempt.retry:  # a retry may find its own first attempt's effect: it joins it
        await run_in_threadpool(_open_screening, session, screening_id)
    done_reading(session)
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    update_id = attempt.update_id(screening_id) if attempt else None
    async with screening_call(services.engine, screening_id):
        try:
            return ScreeningStatePublic.of(await handle.execute_update(update, argument, id=update_id))
        except RPCError as exc:
            if (
                exc.status != RPCStatusCode.NOT_FOUND
                or not_available_now(exc)
                or not reopens
                or not await reopen_screening(
                    services.temporal, services.engine, screening_id, services.settings.task_queue, reopens
                )
            ):
                raise
        return ScreeningStatePublic.of(await handle.execute_update(update, argument, id=update_id))


@router.post(
    "/screenings/{screening_id}/collection",
    response_model=ScreeningStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def record_collection(
    screening_id: str,
    body: CollectionRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningStatePublic:
    """Records the specimen collected for a selected test (chain of custody, temperature, point-of-care readings). A
    collection after the window needs late=true and a late_reason."""
    collection = Collection(
        **body.model_dump(exclude={"poc_readings", "collected_at", "breath_confirmation_at"}),
        collected_at=body.collected_at.isoformat() if body.collected_at else None,
        breath_confirmation_at=body.breath_confirmation_at.isoformat() if body.breath_confirmation_at else None,
        poc_readings=[PocReading(r.analyte, r.result) for r in body.poc_readings],
        actor=actor.token_id,
    )
    return await _screening_update(
        services, session, screening_id, ScreeningWorkflow.record_collection, collection, attempt
    )


@router.post(
    "/screenings/{screening_id}/excuse",
    response_model=ScreeningStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def excuse(
    screening_id: str,
    body: ExcuseRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningStatePublic:
    """Excuses a selected test with a documented reason; it does not count as missed. A miss already reported is
    retracted from every recipient told of it, also after the make-up period (the closed screening is reopened)."""
    return await _screening_update(
        services,
        session,
        screening_id,
        ScreeningWorkflow.excuse,
        Excuse(reason=body.reason, actor=actor.token_id),
        attempt,
        reopens=(MISSED, NOT_NOTIFIED, WINDOW_LOST),
    )


@router.post(
    "/screenings/{screening_id}/admission",
    response_model=ScreeningStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Record the participant's witnessed admission of use in place of the test",
)
@joins_update
async def admission(
    screening_id: str,
    body: AdmissionRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningStatePublic:
    """Records that the participant admitted use, witnessed by a staff member, instead of giving a specimen. The
    screening becomes a final positive whose basis is admitted-use: reported under consent with positive_for and
    admission_witnessed_by, never as confirmed. A screening already collected, excused or refused answers 409."""
    return await _screening_update(
        services,
        session,
        screening_id,
        ScreeningWorkflow.record_admission,
        Admission(
            substances=list(dict.fromkeys(body.substances)),
            witnessed_by=body.witnessed_by.strip(),
            statement=body.statement,
            actor=actor.token_id,
            admitted_at=body.admitted_at.isoformat() if body.admitted_at else None,
        ),
        attempt,
    )


@router.post(
    "/screenings/{screening_id}/refusal",
    response_model=ScreeningStatePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
)
@joins_update
async def refusal(
    screening_id: str,
    body: RefusalRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningStatePublic:
    """Records that the participant refused the test or that the specimen cannot be used; reported as a refusal."""
    return await _screening_update(
        services,
        session,
        screening_id,
        ScreeningWorkflow.refuse,
        Refusal(kind=body.kind, detail=body.detail, actor=actor.token_id),
        attempt,
    )


@router.post(
    "/screenings/{screening_id}/make-up",
    status_code=201,
    response_model=ScreeningRefPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Staff decision on a test not notified or whose window was lost: a make-up test now",
)
@joins_update
async def make_up(
    screening_id: str,
    body: MakeUpRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningRefPublic:
    """Replaces a test the participant was never told about (not-notified) or whose collection window was lost
    (window-lost): the lost test is excused, noting the make-up, and a test is ordered now (the participant is
    told at once). Any other screening is refused (409)."""
    row = await run_in_threadpool(screening_or_404, session, screening_id)
    # A retry whose first attempt got as far as the excuse finds the screening excused: it goes on to the order.
    retried = attempt is not None and attempt.retry and row.status == EXCUSED
    if row.status not in (NOT_NOTIFIED, WINDOW_LOST) and not retried:
        raise ProblemError(
            409,
            f"Screening {screening_id} is {row.status}; a make-up test replaces only one that is "
            f"{NOT_NOTIFIED} or {WINDOW_LOST} (excuse or record it otherwise).",
        )
    if not retried:
        # After the make-up period its workflow has closed: it is reopened for the excuse, as an excuse alone is.
        await _screening_update(
            services,
            session,
            screening_id,
            ScreeningWorkflow.excuse,
            Excuse(reason=f"replaced by a make-up test: {body.reason}", actor=actor.token_id),
            attempt,
            reopens=(NOT_NOTIFIED, WINDOW_LOST),
        )
    return ScreeningRefPublic.of(
        await _participant_update(
            services,
            session,
            row.participant_id,
            ParticipantWorkflow.order_for_cause,
            ForCause(reason=f"make-up for {screening_id}: {body.reason}", actor=actor.token_id),
            "order a make-up test",
            attempt,
        )
    )


async def _participant_update(
    services: ServicesDep, session: Session, participant_id: str, update, argument, what: str, attempt: Attempt | None
) -> Any:
    if attempt is None or not attempt.retry:  # a retry may find its own first attempt's effect: it joins it
        await run_in_threadpool(active_participant, session, participant_id, what)
    handle = services.temporal.get_workflow_handle(participant_workflow_id(participant_id))
    async with workflow_call("participant"):
        return await handle.execute_update(update, argument, id=attempt.update_id(participant_id) if attempt else None)


@router.post(
    "/participants/{participant_id}/screenings",
    status_code=201,
    response_model=ScreeningRefPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Order a for-cause test now",
)
@joins_update
async def order_for_cause(
    participant_id: str,
    body: ForCauseRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ScreeningRefPublic:
    """Orders a test now for a stated reason, outside the random draw; the participant is told at once and the
    collection window opens."""
    return ScreeningRefPublic.of(
        await _participant_update(
            services,
            session,
            participant_id,
            ParticipantWorkflow.order_for_cause,
            ForCause(reason=body.reason, actor=actor.token_id),
            "order a for-cause test",
            attempt,
        )
    )


@router.post(
    "/participants/{participant_id}/pauses",
    response_model=ParticipantProgramPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Suspend random selection for a while",
)
@joins_update
async def pause(
    participant_id: str,
    body: PauseRequest,
    actor: Collector,
    session: SessionDep,
    services: ServicesDep,
    attempt: Idempotency,
) -> ParticipantProgramPublic:
    """Suspends random selection on the days given (inclusive), e.g. travel or a hospital stay; the draws of those
    days record 'paused'."""
    state = await _participant_update(
        services,
        session,
        participant_id,
        ParticipantWorkflow.pause,
        Pause(start=body.start.isoformat(), end=body.end.isoformat(), reason=body.reason, actor=actor.token_id),
        "pause testing",
        attempt,
    )
    # The roll that places the next draw's minute is in the workflow's state: the public model leaves it out.
    return ParticipantProgramPublic.of(state)


@router.post(
    "/check-ins",
    response_model=CheckInAnswerPublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Daily check-in: must the participant test today?",
)
@joins_update
async def check_in(
    body: CheckInRequest, actor: FrontDesk, session: SessionDep, services: ServicesDep, attempt: Idempotency
) -> CheckInAnswerPublic:
    """The participant checks in for the day (kiosk, phone, text, app or staff) and learns whether they must test
    today and by when."""
    answer = await _participant_update(
        services,
        session,
        body.participant_id,
        ParticipantWorkflow.check_in,
        CheckIn(method=body.method, actor=actor.token_id),
        "check in",
        attempt,
    )
    if answer.must_test and answer.screening_id:
        # Told at the desk: a notice in its own right (domain.misses).
        await run_in_threadpool(_record_told, services.engine, body.participant_id, answer.screening_id, body.method)
    return CheckInAnswerPublic.of(answer)


def _set_forensic(session: Session, screening_id: str, body: ForensicRequest, actor: str) -> Screening:
    row = screening_or_404(session, screening_id)
    row.forensic, row.forensic_reason = body.forensic, body.reason.strip()
    row.forensic_set_by, row.forensic_set_at = actor, utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


class ForensicRequest(RequestModel):
    """Whether a screening is forensic (reportable) or clinical (treatment only), and why."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"forensic": False, "reason": "Treatment-planning test ordered by the clinician, not for the court"}
            ]
        }
    )

    forensic: bool = Field(
        description="true: observed, chain of custody, reportable to a court or employer under "
        "consent; false: clinical, never disclosed"
    )
    reason: str = Field(
        min_length=3,
        max_length=500,
        description="Why this screening departs from (or confirms) the program's default; kept with the screening",
    )


class ForensicSetting(BaseModel):
    """A screening's forensic or clinical setting as staff set it."""

    screening_id: str = Field(description="The screening")
    forensic: bool = Field(description="true: forensic, reportable under consent; false: clinical, never disclosed")
    reason: str | None = Field(description="Why staff set it")
    set_by: str | None = Field(description="The token id of who set it")
    set_at: datetime | None = Field(description="When it was set (UTC)")


@router.put(
    "/screenings/{screening_id}/forensic", response_model=ForensicSetting, responses=responses(401, 403, 404, 422)
)
async def set_forensic(
    screening_id: str, body: ForensicRequest, actor: FrontDesk, session: SessionDep, services: ServicesDep
) -> ForensicSetting:
    """Sets one screening forensic or clinical with a reason (the program's default applies otherwise). A clinical
    screening is never disclosed to a court or employer (All Rise Adult Treatment Court Best Practice Standards,
    Standard VII). The change, its reason and who made it are kept with the screening and in the audit trail."""
    if not body.reason.strip():
        raise ProblemError(422, "reason must say why this screening is forensic or clinical.")
    row = await run_in_threadpool(_set_forensic, session, screening_id, body, actor.token_id)
    if not body.forensic:
        # Whatever was already reported about it is withdrawn from every recipient that was told (planned and
        # delivered on the usual schedule; started, not awaited: the request holds the SQLite write lock).
        for category in (DisclosureCategory.SCREENING_RESULTS, DisclosureCategory.MISSED_TESTS):
            event = DisclosureEvent(
                row.participant_id, category, row.id, ReportFacts(retracted=True, retraction_reason="not-reportable")
            )
            async with workflow_call("disclosure"):
                await services.temporal.start_workflow(
                    DiscloseEventWorkflow.run,
                    event,
                    id=f"disclose-{row.id}-clinical-{category}-{uuid4().hex[:8]}",
                    task_queue=services.settings.task_queue,
                )
    assert row.forensic is not None  # set just now
    return ForensicSetting(
        screening_id=row.id,
        forensic=row.forensic,
        reason=row.forensic_reason,
        set_by=row.forensic_set_by,
        set_at=row.forensic_set_at,
    )
