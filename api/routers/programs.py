"""Programs as data: sites and their calendars, collection windows, phases. Admins edit (each edit is a
new version, kept); staff read. The audit trail records every request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from api.deps import SessionDep, require
from api.idempotency import IdempotentRoute
from api.inputs import RequestModel
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.tokens import Actor
from domain.calendar import calendar_to_dict, hours_on, parse_ics, with_closed
from domain.checks import parse_day
from domain.clock import local_date
from domain.program import (
    DEFAULT_LAB_TURNAROUND_HOURS,
    DEFAULT_WINDOWS,
    MAX_LAB_TURNAROUND_HOURS,
    Program,
    ProgramMode,
    SpecimenType,
    program_from_dict,
    program_to_dict,
)
from store.colours import stored_colours
from store.models import ProgramRecord, ProgramVersion
from store.programs import current_program, save_version

router = APIRouter(route_class=IdempotentRoute, tags=["programs"], responses=responses(422))

Admin = Annotated[Actor, Depends(require("admin"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]

MAX_ICS_BYTES = 256_000


class SiteIn(RequestModel):
    """A clinic site: its time zone, opening hours and closed days."""

    timezone: str = Field(max_length=64, description="IANA time zone, e.g. America/Chicago")
    hours: dict[str, tuple[str, str]] = Field(
        max_length=7,
        description='Weekday -> ["opens", "closes"], e.g. {"mon": ["07:00", "19:00"]}; weekdays left out are closed',
    )
    closed: dict[str, str] = Field(
        default_factory=dict, max_length=1000, description='Closed days (holidays): {"2026-12-25": "Christmas Day"}'
    )


class PhaseIn(RequestModel):
    """A program phase: how often participants in it are tested and what it takes to move on."""

    name: str = Field(min_length=1, max_length=32, description="The phase's name, e.g. 'orientation'")
    tests_per_week: float = Field(gt=0, le=7, description="Average random tests per week in this phase")
    min_per_rolling_week: int = Field(ge=0, le=7, description="Floor per rolling 7 days")
    max_per_rolling_week: int = Field(ge=0, le=7, description="Ceiling per rolling 7 days")
    specimen_types: list[SpecimenType] = Field(
        default_factory=lambda: [SpecimenType.URINE],
        min_length=1,
        max_length=len(SpecimenType),
        description="Specimens collected in this phase",
    )
    check_in_required: bool = Field(
        default=False, description="Participants must check in every program day to learn whether they test"
    )
    missed_check_in_reportable: bool = Field(
        default=False, description="A missed check-in is reported like a missed test"
    )
    criteria: str = Field(default="", max_length=2000, description="What it takes to move on, in plain words")


class ColourIn(RequestModel):
    """A colour (group code) of a colour-mode program, and how often it is called."""

    name: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9-]+$",
        description="Lower-case letters, digits and -, e.g. 'red' or 'group-b'",
    )
    tests_per_week: float = Field(gt=0, le=7, description="How many days a week, on average, this colour is called")
    min_per_rolling_week: int = Field(
        default=0, ge=0, le=7, description="Floor: called at least this often in every rolling 7 days"
    )
    max_per_rolling_week: int = Field(
        default=7, ge=0, le=7, description="Ceiling: called at most this often in every rolling 7 days"
    )


class ProgramIn(RequestModel):
    """A program's whole definition: its sites, phases and collection windows. Each save is a new version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "program_id": "county-court",
                    "name": "County treatment court",
                    "sites": {
                        "north": {
                            "timezone": "America/Chicago",
                            "hours": {d: ["07:00", "19:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                            "closed": {"2026-12-25": "Christmas Day"},
                        }
                    },
                    "phases": [
                        {
                            "name": "orientation",
                            "tests_per_week": 3,
                            "min_per_rolling_week": 1,
                            "max_per_rolling_week": 5,
                            "specimen_types": ["urine"],
                            "check_in_required": True,
                            "criteria": "first 30 days",
                        },
                        {
                            "name": "stabilisation",
                            "tests_per_week": 2,
                            "min_per_rolling_week": 1,
                            "max_per_rolling_week": 4,
                        },
                    ],
                    "collection_windows": {SpecimenType.URINE: 8, SpecimenType.ORAL_FLUID: 4},
                    "make_up_hours": 24,
                    "mode": "individual",
                    "reminder_hours_before_close": 2,
                    "lab_turnaround_hours": 48,
                    "note": "initial version",
                }
            ]
        }
    )

    program_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="A short id of letters, digits, - and _; participants are enrolled into it",
    )
    name: str = Field(min_length=1, max_length=200, description="The program's name as staff see it")
    sites: dict[str, SiteIn] = Field(min_length=1, max_length=50, description="Site code -> the site")
    phases: list[PhaseIn] = Field(
        min_length=1, max_length=20, description="The phases, in the order participants go through them"
    )
    collection_windows: dict[SpecimenType, float] = Field(
        default_factory=lambda: {SpecimenType(kind): hours for kind, hours in DEFAULT_WINDOWS.items()},
        description="Hours from notice to the end of collection, per specimen type (ends at closing time)",
    )
    make_up_hours: float = Field(
        default=24.0, ge=0, le=168, description="Hours staff have to order a make-up test for a lost one"
    )
    reminder_hours_before_close: float = Field(
        default=0,
        ge=0,
        le=23,
        description="Remind a participant who was told to test and is not collected yet this "
        "many hours before the collection window closes (by SMS, like the "
        "notice); 0: no reminders",
    )
    mode: ProgramMode = Field(
        default=ProgramMode.INDIVIDUAL,
        description="individual: each participant is drawn on their own; colour: a daily colour group is drawn",
    )
    forensic_default: bool = Field(
        default=True,
        description="Screenings are forensic (observed, chain of custody, "
        "reportable under consent) unless staff make one "
        "clinical; false: clinical by default",
    )
    report_presumptive: bool = Field(
        default=False,
        description="A positive resting on a screen alone is reported "
        "(worded as presumptive) instead of waiting for the "
        "laboratory's confirmation",
    )
    breath_alcohol_cutoff: float = Field(
        default=0.02, gt=0, le=0.4, description="Breath alcohol at or above this (g/210 L) is positive"
    )
    lab_turnaround_hours: float = Field(
        default=DEFAULT_LAB_TURNAROUND_HOURS,
        ge=1,
        le=MAX_LAB_TURNAROUND_HOURS,
        description="The labs' target, hours from collection to the final result: the lab turnaround report "
        "(GET /reports/lab-turnaround) counts a participant's results over it as over target",
    )
    colours: list[ColourIn] = Field(
        default_factory=list,
        max_length=26,
        description="colour mode: the colours participants are assigned, each called "
        "at random on open days at its own rate",
    )
    note: str | None = Field(default=None, max_length=500, description="Why this version (kept with it)")


class ProgramOut(BaseModel):
    """A program's current definition and the list of its versions."""

    program_id: str = Field(description="The program's id")
    version: int = Field(description="The current version's number (1 for the first)")
    definition: dict[str, Any] = Field(description="The current definition: sites, phases, collection windows")
    versions: list[dict[str, Any]] = Field(
        description="Every version, oldest first: version, note, created_by (a token id) and created_at"
    )


class ProgramSummary(BaseModel):
    """A program in the list of programs."""

    program_id: str = Field(description="The program's id")
    name: str = Field(description="The program's name")
    current_version: int = Field(description="The number of its current version")
    updated_at: datetime = Field(description="When its current version was saved")


class ClosedDaysIn(RequestModel):
    """Closed days (holidays, closures) to add to one site's calendar."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"closed": {"2026-12-25": "Christmas Day", "2027-01-01": "New Year's Day"}, "note": "2026-27 holidays"}
            ]
        }
    )

    closed: dict[str, str] = Field(min_length=1, max_length=1000, description='{"2026-12-25": "Christmas Day"}')
    note: str | None = Field(default=None, max_length=500, description="Why this version (kept with it)")


def _program(body: ProgramIn) -> Program:
    data = body.model_dump(exclude={"note"})
    try:
        return program_from_dict(data)
    except ValueError as error:
        raise ProblemError(422, f"The program is not valid: {error}.") from None


def _out(session, program_id: str) -> ProgramOut:
    found = current_program(session, program_id)
    if found is None:
        raise ProblemError(404, f"No program has the id {program_id!r}; GET /programs lists them.")
    versions = session.exec(
        select(ProgramVersion).where(ProgramVersion.program_id == program_id).order_by(col(ProgramVersion.version))
    ).all()
    return ProgramOut(
        program_id=program_id,
        version=found[1],
        definition=program_to_dict(found[0]),
        versions=[
            {"version": v.version, "note": v.note, "created_by": v.created_by, "created_at": v.created_at.isoformat()}
            for v in versions
        ],
    )


@router.post(
    "/programs",
    status_code=201,
    response_model=ProgramOut,
    responses=responses(401, 403, 409, 422),
    summary="Create a program",
)
def create_program(body: ProgramIn, request: Request, actor: Admin, session: SessionDep) -> ProgramOut:
    """Creates a program (version 1). It is checked as a whole: a floor of tests per week that the site's open days
    cannot hold, for example, is refused (422) with the reason."""
    request.state.audit_subject = ("program", body.program_id)
    program = _program(body)
    if session.get(ProgramRecord, program.program_id) is not None:
        raise ProblemError(
            409, f"Program {program.program_id} exists; PUT /programs/{program.program_id} makes a new version of it."
        )
    version = save_version(session, program, actor.token_id, body.note)
    session.commit()
    request.state.audit_detail = f"version {version} saved"
    return _out(session, program.program_id)


@router.put("/programs/{program_id}", response_model=ProgramOut, responses=responses(401, 403, 404, 422))
def new_version(program_id: str, body: ProgramIn, request: Request, actor: Admin, session: SessionDep) -> ProgramOut:
    """A new version; participants take it from their next program day (a running day keeps its version)."""
    if body.program_id != program_id:
        raise ProblemError(422, f"The body names program {body.program_id!r} but the path {program_id!r}.")
    if session.get(ProgramRecord, program_id) is None:
        raise ProblemError(404, f"No program has the id {program_id!r}; POST /programs creates it.")
    version = save_version(session, _program(body), actor.token_id, body.note)
    session.commit()
    request.state.audit_detail = f"version {version} saved"
    return _out(session, program_id)


@router.get(
    "/programs", response_model=Page[ProgramSummary], responses=responses(401, 403, 422), summary="List programs"
)
def list_programs(actor: Reader, session: SessionDep, pages: PagingDep) -> Page[ProgramSummary]:
    """Every program with its current version, by id."""
    return pages.rows(
        session,
        select(ProgramRecord),
        (col(ProgramRecord.id),),
        lambda r: ProgramSummary(
            program_id=r.id, name=r.name, current_version=r.current_version, updated_at=r.updated_at
        ),
    )


@router.get(
    "/programs/{program_id}", response_model=ProgramOut, responses=responses(401, 403, 404), summary="One program"
)
def get_program(program_id: str, actor: Reader, session: SessionDep) -> ProgramOut:
    """A program's current definition and its versions."""
    return _out(session, program_id)


@router.post(
    "/programs/{program_id}/sites/{site}/closed-days",
    response_model=ProgramOut,
    responses=responses(401, 403, 404, 415, 422),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": ClosedDaysIn.model_json_schema()},
                "text/calendar": {"schema": {"type": "string", "description": "An iCalendar file of all-day events"}},
            }
        }
    },
)
async def add_closed_days(
    program_id: str, site: str, request: Request, actor: Admin, session: SessionDep
) -> ProgramOut:
    """Holidays and closures, as JSON or as an iCalendar (.ics) file: a new version of the program."""
    raw = await request.body()
    if len(raw) > MAX_ICS_BYTES:
        raise ProblemError(422, f"The body is larger than {MAX_ICS_BYTES} bytes; import a year at a time.")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    note = None
    try:
        if kind == "text/calendar":
            days = parse_ics(raw.decode("utf-8"))
            note = f"{len(days)} closed day(s) imported from iCalendar"
        elif kind == "application/json":
            body = ClosedDaysIn.model_validate_json(raw)
            days = [(parse_day("closed day", day), label) for day, label in body.closed.items()]
            note = body.note
        else:
            raise ProblemError(
                415,
                'Send application/json ({"closed": {"2026-12-25": "Christmas Day"}}) or text/calendar (an .ics file).',
            )
    except (ValueError, UnicodeDecodeError) as error:
        raise ProblemError(422, f"The closed days cannot be read: {str(error)[:500]}.") from None
    found = current_program(session, program_id)
    if found is None:
        raise ProblemError(404, f"No program has the id {program_id!r}.")
    program = found[0]
    if site not in program.sites:
        raise ProblemError(
            404, f"Program {program_id} has no site {site!r}; its sites are {', '.join(sorted(program.sites))}."
        )
    data = program_to_dict(program)
    data["sites"][site] = calendar_to_dict(with_closed(program.sites[site], days))
    try:
        updated = program_from_dict(data)
    except ValueError as error:
        raise ProblemError(422, f"With these closed days the program is not valid: {error}.") from None
    version = save_version(session, updated, actor.token_id, note or f"{len(days)} closed day(s) added")
    session.commit()
    request.state.audit_detail = f"version {version} saved"
    return _out(session, program_id)


class ColourDrawOut(BaseModel):
    """One colour's draw on the day."""

    colour: str = Field(description="The colour (group code)")
    called: bool = Field(description="Whether it was called: everyone of this colour tests that day")
    probability: float = Field(
        description="The probability it was drawn with (1: forced by its floor, 0: ceiling reached or the site closed)"
    )
    reason: str = Field(description="selected, not-selected, floor-required, ceiling-reached or clinic-closed")


class ColoursOut(BaseModel):
    """A colour-mode program's colours called at one site on one day."""

    program_id: str = Field(description="The program")
    site: str = Field(description="The site")
    day: str = Field(description="The program day (the site's local date), YYYY-MM-DD")
    open: bool = Field(description="Whether the site collects that day; a closed day calls no colour")
    drawn: bool = Field(
        description="Whether the day's colours are drawn yet (at opening, with the first participant's daily draw)"
    )
    colours: list[str] = Field(description="The colours called: every participant of these tests that day")
    opens_at: str | None = Field(description="The site's opening time that day (HH:MM), when the colours are called")
    program_version: int | None = Field(description="The program version whose colours were drawn")
    drawn_at: datetime | None = Field(description="When the draw was made")
    draws: list[ColourDrawOut] = Field(description="Each colour's draw, in the program's order")


@router.get(
    "/programs/{program_id}/colours",
    response_model=ColoursOut,
    responses=responses(401, 403, 404, 422),
    summary="Today's colours (colour-mode programs)",
)
def todays_colours(
    program_id: str,
    actor: Reader,
    session: SessionDep,
    site: Annotated[str | None, Query(max_length=64, description="The site (default: the program's first)")] = None,
    day: Annotated[
        str | None, Query(max_length=10, description="A past day, YYYY-MM-DD (default: today at the site)")
    ] = None,
) -> ColoursOut:
    """The colours called at a site today (or on a past day) in a program that publishes daily colours: staff read
    them to answer participants and to expect who comes to test. A future day is refused: nobody learns a draw
    before it is made."""
    found = current_program(session, program_id)
    if found is None:
        raise ProblemError(404, f"No program has the id {program_id!r}; GET /programs lists them.")
    program = found[0]
    if program.mode != "colour":
        raise ProblemError(
            422,
            f"Program {program_id} is not in colour mode (mode {program.mode}): its participants "
            "are drawn one by one; GET /participants/{id}/draws shows each draw.",
        )
    site = site or sorted(program.sites)[0]
    if site not in program.sites:
        raise ProblemError(
            404, f"Program {program_id} has no site {site!r}; its sites are {', '.join(sorted(program.sites))}."
        )
    calendar = program.sites[site]
    today = local_date(datetime.now(UTC), calendar.timezone)
    try:
        wanted = parse_day("day", day) if day else today
    except ValueError as error:
        raise ProblemError(422, f"{error}.") from None
    if wanted > today:
        raise ProblemError(
            422,
            f"{wanted.isoformat()} is after today ({today.isoformat()} at site {site}): colours "
            "are drawn on the day, at opening, and not shown before.",
        )
    hours = hours_on(calendar, wanted)
    row = stored_colours(session, program_id, site, wanted)
    return ColoursOut(
        program_id=program_id,
        site=site,
        day=wanted.isoformat(),
        open=hours is not None,
        drawn=row is not None,
        colours=list(row.colours) if row else [],
        opens_at=hours[0].strftime("%H:%M") if hours else None,
        program_version=row.program_version if row else None,
        drawn_at=row.drawn_at if row else None,
        draws=[
            ColourDrawOut(colour=d["colour"], called=d["selected"], probability=d["probability"], reason=d["reason"])
            for d in row.draws
        ]
        if row
        else [],
    )
