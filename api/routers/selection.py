"""Verifiable random selection (domain/verifiable.py): each period's published commitment, its beacon and,
once the period has ended and the seed is revealed, the seed. Readable by every role: a commitment is
meant to be public, and a seed is shown only after every draw it decided has been made.

An admin may open a period ahead (its commitment published and sent to subscribing recipients before its first
draw) and then enter its public beacon: the drand quicknet round the commitment names. The notices sent to
recipients are listed with their delivery."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, overload

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from activities.selection import ensure_period_workflow
from api.deps import ServicesDep, SessionDep, require
from api.idempotency import IdempotentRoute
from api.inputs import RequestModel
from api.pages import Page, PagingDep
from api.problems import FieldError, ProblemError, responses
from api.tokens import ROLES, Actor
from domain import verifiable
from iop.codec import encryption_codec
from store import selection
from store.models import SelectionPeriod
from store.selection import SelectionConflict, SelectionError, periods

router = APIRouter(route_class=IdempotentRoute, tags=["selection"])

AnyRole = Annotated[Actor, Depends(require(*ROLES))]
Admin = Annotated[Actor, Depends(require("admin"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
MAX_AHEAD_DAYS = 400  # a period is opened at most about a year ahead
PERIOD_PATTERN = r"^2[0-9]{3}-(0[1-9]|1[0-2])$"  # a month of this millennium


class CommitmentPublic(BaseModel):
    """One program period's commitment to its random-selection seed, and the seed once the period is over."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "program": "county-court",
                    "period": "2026-11",
                    "commitment": "5f0c6f1c9d7e0f4c1b6c0a8e3f3d2b1a9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f",
                    "published_at": "2026-10-25T14:00:00Z",
                    "beacon_round": 25900000,
                    "beacon_round_url": "https://api.drand.sh/52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
                    "/public/25900000",
                    "beacon": None,
                    "beacon_entered_at": None,
                    "reveal_on": "2026-12-02",
                    "revealed_at": None,
                    "seed": None,
                }
            ]
        }
    )

    program: str = Field(description="The program whose daily draws the seed decides")
    period: str = Field(description="YYYY-MM")
    commitment: str = Field(description="hex SHA-256(seed | '|' | program | '|' | period), published at period start")
    published_at: datetime = Field(description="When the commitment was published (before the period's first draw)")
    beacon_round: int = Field(
        description="The only drand quicknet round that may become this period's beacon: the "
        "first produced 5 minutes after published_at"
    )
    beacon_round_url: str = Field(description="Where drand serves that round's randomness and signature")
    beacon: str | None = Field(
        None,
        description="public randomness mixed into every roll of the period, if any: "
        "drand:quicknet:<round>:<randomness hex>",
    )
    beacon_entered_at: datetime | None = Field(None, description="When an admin entered the beacon")
    reveal_on: date = Field(
        description="The day (UTC) the seed is revealed, automatically: two days after the period's last day"
    )
    revealed_at: datetime | None = Field(None, description="When the seed was revealed; null until then")
    seed: str | None = Field(None, description="hex 256-bit seed; null until the period has ended and it is revealed")


@overload
def _utc(moment: datetime) -> datetime: ...


@overload
def _utc(moment: datetime | None) -> datetime | None: ...


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _public(row: SelectionPeriod) -> CommitmentPublic:
    the_round = verifiable.beacon_round(_utc(row.published_at))
    return CommitmentPublic(
        program=row.program,
        period=row.period,
        commitment=row.commitment,
        published_at=_utc(row.published_at),
        beacon_round=the_round,
        beacon_round_url=verifiable.round_url(the_round),
        beacon=row.beacon,
        beacon_entered_at=_utc(row.beacon_entered_at),
        reveal_on=verifiable.reveal_on(row.period),
        revealed_at=_utc(row.revealed_at),
        seed=row.seed_revealed,
    )


@router.get(
    "/selection/commitments",
    response_model=Page[CommitmentPublic],
    responses=responses(401, 403, 422),
    summary="Every period's commitment, beacon and, once revealed, seed",
)
def commitments(
    actor: AnyRole,
    session: SessionDep,
    pages: PagingDep,
    program: Annotated[str | None, Query(max_length=64, description="Only this program")] = None,
) -> Page[CommitmentPublic]:
    """Every period's commitment, and its seed once revealed: recompute the draws with docs/verify_selection.py."""
    return pages.cut([_public(p) for p in periods(session, program)])


class PeriodIn(RequestModel):
    """A program period to open now, ahead of its first draw."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"program": "county-court", "period": "2026-12"}]})

    program: str = Field(min_length=1, max_length=64, description="The program (the participants' program name)")
    period: str = Field(
        pattern=PERIOD_PATTERN, description="The month, YYYY-MM; this month or a later one, within the next year"
    )


@router.post(
    "/selection/periods",
    status_code=201,
    response_model=CommitmentPublic,
    responses=responses(401, 403, 422, 503),
    summary="Open a period ahead: commit its seed now",
)
async def open_period(body: PeriodIn, actor: Admin, services: ServicesDep) -> CommitmentPublic:
    """Commits a fresh secret seed for the period (or answers the commitment it has), publishes the commitment
    (audit trail, GET /selection/commitments) and starts the period's workflow, which sends the commitment to
    every recipient subscribed to `selection-commitments` and reveals the seed once the period is over. Open a
    period ahead to give it a public beacon: five minutes after `published_at`, enter the round it names with
    PUT /selection/periods/{program}/{period}/beacon, before the period's first draw (the day before it starts)."""
    today = datetime.now(UTC).date()
    if verifiable.period_end(body.period) < today:
        raise ProblemError(
            422,
            f"The period {body.period} is over; only this month or a later one can be opened.",
            errors=[FieldError(field="body.period", message="a period that has not ended yet")],
        )
    if verifiable.period_end(body.period) > today + timedelta(days=MAX_AHEAD_DAYS):
        raise ProblemError(
            422,
            f"The period {body.period} is more than a year ahead; open it closer to its start.",
            errors=[FieldError(field="body.period", message="a month within the next year")],
        )
    keys = encryption_codec(services.temporal.data_converter).keys
    row = await run_in_threadpool(
        selection.open_period, services.engine, keys, body.program, body.period, actor.token_id, actor.role
    )
    # The commitment is recorded; a retry after a 503 here finds it and starts the workflow then.
    await ensure_period_workflow(services.temporal, services.settings.task_queue, body.program, body.period)
    return _public(row)


class BeaconIn(RequestModel):
    """A drand quicknet round, read from drand once it is produced (the period's `beacon_round_url`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"round": 25900000, "randomness": "a8e1b0cf3e1d47f0b4b1d07c6b7d2c0f9e9a4a3c5b2d1e0f9a8b7c6d5e4f3a2b"}
            ]
        }
    )

    round: int = Field(ge=1, lt=10**12, description="The round number: the period's beacon_round")
    randomness: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$", description="The round's randomness, 64 hex digits, as drand serves it"
    )


@router.put(
    "/selection/periods/{program}/{period}/beacon",
    response_model=CommitmentPublic,
    responses=responses(401, 403, 409, 422),
    summary="Enter the period's public beacon (drand round)",
)
async def set_beacon(
    program: str, period: str, body: BeaconIn, actor: Admin, services: ServicesDep
) -> CommitmentPublic:
    """Mixes a public drand quicknet round into every roll of the period, so the clinic, which knows its seed,
    could not have chosen it to favour or target anyone. Only the round the commitment names (`beacon_round`,
    produced after the commitment was published) is taken (422 otherwise); only before the period's first roll,
    and only once (409 otherwise; the same value again changes nothing). Recorded in the audit trail
    (`selection.beacon`), the export and the reveal notice."""
    if len(program) > 64:
        raise ProblemError(422, "A program name has at most 64 characters.")
    try:
        text = verifiable.drand_beacon(body.round, body.randomness).text
        checked = selection.check_period(period)
    except ValueError as exc:
        raise ProblemError(422, f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    try:
        row = await run_in_threadpool(
            selection.set_beacon, services.engine, program, checked, text, actor.token_id, actor.role
        )
    except SelectionConflict as exc:
        raise ProblemError(409, f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    except SelectionError as exc:
        raise ProblemError(
            422,
            f"{str(exc)[:1].upper()}{str(exc)[1:]}.",
            errors=[FieldError(field="body.round", message=str(exc)[:300])],
        ) from None
    return _public(row)


class NoticePublic(BaseModel):
    """One commitment or reveal notice to one subscribing recipient, and its delivery."""

    id: str = Field(description="The notice's id, also its webhook-id (the same on every attempt)")
    program: str = Field(description="The program")
    period: str = Field(description="YYYY-MM")
    kind: str = Field(description="commitment (at the period's start) or reveal (with the seed, after its end)")
    recipient_id: str = Field(description="To whom")
    status: str = Field(description="pending, retrying, delivered, failed or blocked")
    reason: str | None = Field(description="What the last attempt found")
    attempts: int = Field(description="Delivery attempts so far")
    last_status_code: int | None = Field(description="The recipient's last HTTP status (webhooks)")
    delivered_at: datetime | None = Field(description="When the recipient accepted it")
    created_at: datetime = Field(description="When it was planned")
    payload: dict | None = Field(description="The notice as last sent (no participant's information)")


@router.get(
    "/selection/notices",
    response_model=Page[NoticePublic],
    responses=responses(401, 403, 422),
    summary="Commitment and reveal notices sent to subscribing recipients",
)
def list_notices(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    program: Annotated[str | None, Query(max_length=64, description="Only this program")] = None,
    period: Annotated[str | None, Query(pattern=PERIOD_PATTERN, description="Only this month")] = None,
) -> Page[NoticePublic]:
    """Every notice of the selection periods with its delivery: the record that each subscriber was told."""
    return pages.cut(
        [NoticePublic.model_validate(n, from_attributes=True) for n in selection.notices(session, program, period)]
    )
