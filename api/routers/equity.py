"""Optional demographics (kept apart from the clinical record) and the equity report built on them.

All Rise, Adult Treatment Court Best Practice Standards, Standard II (Equity and Inclusion): see
domain/equity.py for what is computed and why. The demographic answers are read here and nowhere
else: no workflow, activity, disclosure or export sees them.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, overload

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, require
from api.inputs import RequestModel
from api.problems import ProblemError, responses
from api.tokens import Actor
from domain.consent import DisclosureCategory
from domain.demographics import AgeBand, Demographics, Ethnicity, Payer, Race, Sex
from domain.equity import EquityReport, ParticipantMonth, equity_report
from store.models import Disclosure, Participant, ParticipantDemographics, Screening, SelectionDraw, utcnow

router = APIRouter(tags=["equity"], responses=responses(422))

Recorder = Annotated[Actor, Depends(require("admin", "staff"))]
Reader = Annotated[Actor, Depends(require("admin", "clinician", "auditor"))]

PERIOD = re.compile(r"(\d{4})-(\d{2})")
# Reports that can lead to a sanction: a missed test, a refusal, a positive result (42 CFR 2.35 recipients
# act on these). Other categories (attendance, phase changes, adherence summaries) are not counted.
SANCTION_CATEGORIES = (DisclosureCategory.MISSED_TESTS, DisclosureCategory.REFUSALS)


class DemographicsBody(RequestModel):
    """A participant's answers for the equity report, given with their consent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "consented": True,
                    "race": "declined",
                    "ethnicity": "not-hispanic-or-latino",
                    "sex": "female",
                    "age_band": "35-44",
                    "payer": "medicaid",
                }
            ]
        }
    )

    consented: bool = Field(
        description="The participant agreed to give these answers for the equity report. "
        "false withdraws: every answer is erased."
    )
    race: Race | None = Field(default=None, description="As the participant answered (OMB categories)")
    ethnicity: Ethnicity | None = Field(default=None, description="As the participant answered (OMB categories)")
    sex: Sex | None = Field(default=None, description="As the participant answered")
    age_band: AgeBand | None = Field(default=None, description="Age band")
    payer: Payer | None = Field(default=None, description="Who pays for treatment")


class RatePublic(BaseModel):
    """One metric's rate over everyone, with its 95% Wilson score interval."""

    model_config = ConfigDict(from_attributes=True)

    metric: str = Field(description="The metric's key (see metrics)")
    count: int = Field(description="How many counted")
    of: int = Field(description="Out of how many")
    rate: float | None = Field(description="count / of; null when of is 0")
    ci_low: float | None = Field(description="The interval's lower bound")
    ci_high: float | None = Field(description="The interval's upper bound")


class ComparisonPublic(RatePublic):
    """A group's rate against everyone else's, as a rate ratio with its 95% (Katz) interval."""

    others_rate: float | None = Field(description="The rate of all other participants")
    ratio: float | None = Field(description="rate / others_rate")
    ratio_ci_low: float | None = Field(description="The ratio interval's lower bound")
    ratio_ci_high: float | None = Field(description="The ratio interval's upper bound")
    flag: str | None = Field(description="higher or lower when the ratio passes a threshold; null otherwise")
    interval_excludes_one: bool = Field(description="The ratio's interval does not include 1")


class GroupRowPublic(BaseModel):
    """One demographic group's comparisons (or suppressed, when the group or its complement is small)."""

    model_config = ConfigDict(from_attributes=True)

    dimension: str = Field(description="race, ethnicity, sex, age_band or payer")
    group: str = Field(description="The group's answer")
    suppressed: bool = Field(description="Too few participants in the group or outside it to show")
    participants: int | None = Field(description="Participants in the group; null when suppressed")
    rates: list[ComparisonPublic] = Field(description="The group's rate for each metric against everyone else")


class MetricInfoPublic(BaseModel):
    """What a metric counts."""

    model_config = ConfigDict(from_attributes=True)

    key: str = Field(description="The metric's key")
    section: str = Field(description="The report section it belongs to (see sections)")
    label: str = Field(description="Its name for people")
    per: str = Field(description="What it is counted per")


class EquityReportPublic(BaseModel):
    """Testing, results and sanctions-relevant reports by demographic group for one month."""

    model_config = ConfigDict(from_attributes=True)

    period: str = Field(description="The month, YYYY-MM")
    period_start: date = Field(description="Its first day")
    period_end: date = Field(description="Its last day")
    participants: int = Field(description="Participants enrolled during the month")
    min_group_size: int = Field(description="Groups (or complements) smaller than this are suppressed")
    ratio_high: float = Field(description="A ratio at or above this is flagged higher")
    ratio_low: float = Field(description="A ratio at or below this is flagged lower")
    metrics: list[MetricInfoPublic] = Field(description="The metrics, with their labels")
    overall: list[RatePublic] = Field(description="Each metric over everyone")
    groups: list[GroupRowPublic] = Field(description="Each group's comparisons")
    flagged: int = Field(description="How many comparisons are flagged")
    sections: dict[str, str] = Field(description="Section key -> title")
    method: str = Field(description="How the rates and intervals are computed")


class DemographicsPublic(BaseModel):
    """A participant's answers for the equity report."""

    participant_id: str = Field(description="Whose answers")
    consented: bool = Field(description="The participant agreed to give them")
    race: Race | None = Field(description="As answered")
    ethnicity: Ethnicity | None = Field(description="As answered")
    sex: Sex | None = Field(description="As answered")
    age_band: AgeBand | None = Field(description="Age band")
    payer: Payer | None = Field(description="Who pays for treatment")
    recorded_by: str = Field(description="The token that recorded them")
    recorded_at: datetime = Field(description="When")


ANSWERS = ("race", "ethnicity", "sex", "age_band", "payer")


@router.put(
    "/participants/{participant_id}/demographics",
    response_model=DemographicsPublic,
    responses=responses(401, 403, 404, 422),
    summary="Record (or withdraw) the participant's optional demographic answers, given with consent",
)
def put_demographics(
    participant_id: str, body: DemographicsBody, actor: Recorder, session: SessionDep
) -> DemographicsPublic:
    """Records the participant's optional demographic answers for the equity report, given with their consent;
    consented=false withdraws and erases them."""
    if session.get(Participant, participant_id) is None:
        raise ProblemError(404, f"No participant has the id {participant_id!r}.")
    given = {name: getattr(body, name) for name in ANSWERS if getattr(body, name) is not None}
    if not body.consented and given:
        raise ProblemError(
            422,
            "Demographic answers are kept only with the participant's consent: send "
            "consented=true with the answers, or consented=false alone to withdraw and erase them.",
        )
    row = session.get(ParticipantDemographics, participant_id) or ParticipantDemographics(
        participant_id=participant_id, recorded_by=actor.token_id
    )
    row.consented = body.consented
    for name in ANSWERS:
        setattr(row, name, str(given[name]) if name in given else None)
    row.recorded_by, row.recorded_at = actor.token_id, utcnow()
    session.add(row)
    session.commit()
    return DemographicsPublic.model_validate(row, from_attributes=True)


@router.get(
    "/participants/{participant_id}/demographics",
    response_model=DemographicsPublic,
    responses=responses(401, 403, 404),
    summary="The participant's optional demographic answers",
)
def get_demographics(participant_id: str, actor: Recorder, session: SessionDep) -> DemographicsPublic:
    """The participant's optional demographic answers, if any."""
    row = session.get(ParticipantDemographics, participant_id)
    if row is None:
        if session.get(Participant, participant_id) is None:
            raise ProblemError(404, f"No participant has the id {participant_id!r}.")
        raise ProblemError(
            404,
            "No demographic answers are recorded for this participant; PUT them (with consented=true) to record them.",
        )
    return DemographicsPublic.model_validate(row, from_attributes=True)


# --- the report -------------------------------------------------------------------------------------


def parse_period(period: str) -> tuple[date, date]:
    match = PERIOD.fullmatch(period or "")
    month = int(match.group(2)) if match else 0
    if not match or not 1 <= month <= 12 or int(match.group(1)) < 2000:
        raise ProblemError(422, f"period must be a month as YYYY-MM (e.g. 2026-11), not {period!r}.")
    year = int(match.group(1))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


@overload
def _day(moment: datetime) -> date: ...
@overload
def _day(moment: datetime | None) -> date | None: ...
def _day(moment: datetime | None) -> date | None:
    if moment is None:
        return None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def participant_months(session: Session, start: date, end: date, today: date) -> list[ParticipantMonth]:
    """Each participant enrolled at some point of the month, with what happened to them in it."""
    last = min(end, today)
    people = session.exec(
        select(Participant).where(Participant.start_date <= end, Participant.status != "enrolling")
    ).all()
    people = [p for p in people if p.discharged_at is None or _day(p.discharged_at) >= start]
    answers = {row.participant_id: row for row in session.exec(select(ParticipantDemographics)).all() if row.consented}
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for draw in session.exec(select(SelectionDraw).where(SelectionDraw.day >= start, SelectionDraw.day <= end)).all():
        counts[draw.participant_id]["draw_days"] += 1
        counts[draw.participant_id]["selected_days"] += int(draw.selected)
    for_cause_days: dict[str, set[date]] = defaultdict(set)
    for row in session.exec(select(Screening).where(Screening.day >= start, Screening.day <= end)).all():
        kind = "for_cause" if row.reason == "for-cause" else "random" if row.reason == "random" else None
        if kind is None:
            continue
        c = counts[row.participant_id]
        if kind == "for_cause":
            for_cause_days[row.participant_id].add(row.day)
        if row.status == "cancelled":
            continue
        c[f"{kind}_scheduled"] += 1
        c[f"{kind}_missed"] += int(row.status == "missed")
        outcome = (row.state or {}).get("final_outcome")
        c[f"{kind}_final"] += int(outcome is not None)
        c[f"{kind}_positive"] += int(outcome == "positive")
    since = datetime.combine(start, time.min)
    until = datetime.combine(end + timedelta(days=1), time.min)
    delivered = session.exec(
        select(Disclosure).where(Disclosure.status == "delivered", col(Disclosure.delivered_at).is_not(None))
    ).all()
    for sent in delivered:
        assert sent.delivered_at is not None  # selected for it
        moment = (
            sent.delivered_at.astimezone(UTC).replace(tzinfo=None) if sent.delivered_at.tzinfo else sent.delivered_at
        )
        if not since <= moment < until:
            continue
        positive = sent.category == "screening-results" and (sent.facts or {}).get("outcome") == "positive"
        if positive or sent.category in SANCTION_CATEGORIES:
            counts[sent.participant_id]["sanction_reports"] += 1
    out = []
    for person in people:
        first = max(person.start_date, start)
        stop = min(_day(person.discharged_at) or last, last)
        answer = answers.get(person.id)
        demographics = Demographics(**{name: getattr(answer, name) for name in ANSWERS}) if answer else Demographics()
        c = counts.get(person.id, {})
        out.append(
            ParticipantMonth(
                participant_id=person.id,
                demographics=demographics,
                days_enrolled=max(0, (stop - first).days + 1),
                for_cause_days=len(for_cause_days.get(person.id, ())),
                **c,
            )
        )
    return out


def build_report(session: Session, services: ServicesDep, period: str) -> EquityReport:
    start, end = parse_period(period)
    settings = services.settings
    months = participant_months(session, start, end, datetime.now(UTC).date())
    return equity_report(
        period,
        start,
        end,
        months,
        min_group_size=settings.equity_min_group_size,
        high=settings.equity_ratio_high,
        low=settings.equity_ratio_low,
    )


PeriodQuery = Annotated[
    str, Query(min_length=7, max_length=7, description="The month, as YYYY-MM", examples=["2026-11"])
]


@router.get(
    "/reports/equity",
    response_model=EquityReportPublic,
    responses=responses(401, 403),
    summary="Testing, results and sanctions-relevant reports by demographic group, with intervals",
)
def equity(period: PeriodQuery, actor: Reader, session: SessionDep, services: ServicesDep) -> EquityReportPublic:
    """Testing, results and sanctions-relevant rates by demographic group, each against everyone else, with
    confidence intervals; small groups are suppressed."""
    return EquityReportPublic.model_validate(build_report(session, services, period), from_attributes=True)


@router.get(
    "/reports/equity.pdf",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
            "description": "The equity report as a PDF",
        },
        **responses(401, 403),
    },
    summary="The equity report as a PDF",
)
def equity_pdf(period: PeriodQuery, actor: Reader, session: SessionDep, services: ServicesDep) -> Response:
    """The equity report as a PDF."""
    from api.equity_pdf import render  # reportlab is loaded only when a PDF is asked for

    report = build_report(session, services, period)
    return Response(
        render(report),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="equity-{report.period}.pdf"'},
    )
