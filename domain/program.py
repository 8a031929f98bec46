"""A program as data: its sites' calendars, collection windows per specimen type, the make-up period
and its phases. Stored versioned; a participant's daily plan is derived from one version.

The defaults reproduce the built-in plans (domain/plan.py): every day 07:00-19:00, urine within
8 h and oral fluid within 4 h of notice (All Rise (NADCP) Adult Treatment Court Best Practice
Standards, Standard VII, drug and alcohol testing), a 24 h make-up period.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from domain.calendar import WEEKDAY_NAMES, SiteCalendar, calendar_from_dict, calendar_to_dict, tightest_week
from domain.checks import is_finite_number, is_int, require_text
from domain.colours import MAX_COLOURS, ColourGroup, check_colour_name
from domain.plan import PHASES, TestingPlan, default_plan
from domain.vocab import Vocabulary


class SpecimenType(Vocabulary):
    """What is collected at a screening."""

    URINE = "urine"
    ORAL_FLUID = "oral-fluid"
    BREATH = "breath"


class ProgramMode(Vocabulary):
    """How participants learn they are selected: each one individually, or by calling for the day's colours."""

    INDIVIDUAL = "individual"
    COLOUR = "colour"


SPECIMEN_TYPES = tuple(SpecimenType)
DEFAULT_WINDOWS: dict[str, float] = {SpecimenType.URINE: 8.0, SpecimenType.ORAL_FLUID: 4.0, SpecimenType.BREATH: 4.0}
MODES = tuple(ProgramMode)
DEFAULT_PROGRAM_ID = "iop"
# Hours from collection to a final laboratory result that a program holds its labs to: the lab turnaround report
# judges each result against its participant's program. A program setting; 48 h unless the program says otherwise.
DEFAULT_LAB_TURNAROUND_HOURS = 48.0
MAX_LAB_TURNAROUND_HOURS = 720.0  # 30 days


@dataclass(frozen=True, kw_only=True)
class PhaseDefinition:
    name: str
    tests_per_week: float
    min_per_rolling_week: int
    max_per_rolling_week: int
    specimen_types: tuple[str, ...] = ("urine",)
    check_in_required: bool = False
    missed_check_in_reportable: bool = False
    criteria: str = ""


@dataclass(frozen=True, kw_only=True)
class Program:
    program_id: str
    name: str
    sites: Mapping[str, SiteCalendar]
    phases: tuple[PhaseDefinition, ...]
    collection_windows: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))
    make_up_hours: float = 24.0
    # Hours before a collection window closes to remind a participant who was told to test and has not been
    # collected yet, through the SMS gateway like the notice itself; 0 turns reminders off.
    reminder_hours_before_close: float = 0.0
    mode: str = ProgramMode.INDIVIDUAL  # colour: participants call for the day's colours
    colours: tuple[ColourGroup, ...] = ()  # colour mode: the colours (group codes) and how often each is drawn
    # Screenings are forensic (observed, chain of custody, reportable to a court or employer) unless the
    # program or staff, per screening with a reason, make them clinical (treatment only, never disclosed):
    # All Rise Adult Treatment Court Best Practice Standards (2023 revision), Standard VII.
    forensic_default: bool = True
    # A positive resting on an immunoassay screen alone is reported (worded as presumptive) only when the
    # program allows it; otherwise the report waits for the laboratory's confirmation.
    report_presumptive: bool = False
    breath_alcohol_cutoff: float = 0.02  # g/210 L
    lab_turnaround_hours: float = DEFAULT_LAB_TURNAROUND_HOURS  # collection to final result, the labs' target

    def phase(self, name: str) -> PhaseDefinition:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise ValueError(
            f"program {self.program_id} has no phase {name!r}; its phases are {', '.join(p.name for p in self.phases)}"
        )


def check_program(program: Program) -> list[str]:
    """Everything wrong with a program, each with the arithmetic behind it; empty when it is sound."""
    problems: list[str] = []
    if not program.program_id or not program.program_id.replace("-", "").replace("_", "").isalnum():
        problems.append("program_id must be letters, digits, '-' or '_'")
    if not program.sites:
        problems.append("a program needs at least one site")
    if not program.phases:
        problems.append("a program needs at least one phase")
    names = [p.name for p in program.phases]
    if len(set(names)) != len(names):
        problems.append(f"phase names must be distinct; got {', '.join(names)}")
    for flag in ("forensic_default", "report_presumptive"):
        if not isinstance(getattr(program, flag), bool):
            problems.append(f"{flag} must be true or false")
    if not is_finite_number(program.breath_alcohol_cutoff) or not 0 < program.breath_alcohol_cutoff <= 0.4:
        problems.append(
            f"breath_alcohol_cutoff must be above 0 and at most 0.4 g/210 L; got {program.breath_alcohol_cutoff!r}"
        )
    target = program.lab_turnaround_hours
    if not is_finite_number(target) or not 1 <= target <= MAX_LAB_TURNAROUND_HOURS:
        problems.append(
            f"lab_turnaround_hours must be 1 to {MAX_LAB_TURNAROUND_HOURS:g} hours from collection to the "
            f"final result; got {target!r}"
        )
    if program.mode not in MODES:
        problems.append(f"mode must be one of {', '.join(MODES)}")
    problems.extend(_check_colours(program))
    for kind, hours in program.collection_windows.items():
        if kind not in SPECIMEN_TYPES:
            problems.append(f"unknown specimen type {kind!r} in collection_windows; use {', '.join(SPECIMEN_TYPES)}")
        elif not is_finite_number(hours) or not 1 <= hours <= 24:
            problems.append(f"the {kind} collection window must be 1 to 24 hours; got {hours!r}")
    if not is_finite_number(program.make_up_hours) or not 0 <= program.make_up_hours <= 168:
        problems.append(f"make_up_hours must be 0 to 168; got {program.make_up_hours!r}")
    reminder = program.reminder_hours_before_close
    if not is_finite_number(reminder) or not 0 <= reminder <= 23:
        problems.append(f"reminder_hours_before_close must be 0 (no reminder) to 23; got {reminder!r}")
    else:
        used = {p.specimen_types[0] for p in program.phases if p.specimen_types}
        shortest = min(
            (h for kind, h in program.collection_windows.items() if kind in used and is_finite_number(h)), default=None
        )
        if reminder and shortest is not None and reminder >= shortest:
            problems.append(
                f"a reminder {reminder} h before the window closes would come before the notice: the "
                f"shortest collection window is {shortest} h ({reminder} >= {shortest})"
            )
    for phase in program.phases:
        problems.extend(_check_phase(program, phase))
    return problems


def _check_colours(program: Program) -> list[str]:
    out: list[str] = []
    if program.mode == "colour" and not program.colours:
        out.append('a program in colour mode needs its colours, e.g. [{"name": "red", "tests_per_week": 2}]')
    if len(program.colours) > MAX_COLOURS:
        out.append(f"at most {MAX_COLOURS} colours; got {len(program.colours)}")
    names = [c.name for c in program.colours]
    if len(set(names)) != len(names):
        out.append(f"colour names must be distinct; got {', '.join(map(str, names))}")
    for colour in program.colours:
        problem = check_colour_name(colour.name)
        if problem:
            out.append(problem)
            continue
        out.extend(
            _check_rates(
                program,
                f"colour {colour.name}",
                colour.tests_per_week,
                colour.min_per_rolling_week,
                colour.max_per_rolling_week,
            )
        )
    return out


def _check_phase(program: Program, phase: PhaseDefinition) -> list[str]:
    if not phase.name or not isinstance(phase.name, str):
        return ["every phase needs a name"]
    out = _check_rates(
        program, f"phase {phase.name}", phase.tests_per_week, phase.min_per_rolling_week, phase.max_per_rolling_week
    )
    if not phase.specimen_types or any(s not in SPECIMEN_TYPES for s in phase.specimen_types):
        out.append(f"phase {phase.name}: specimen_types must be some of {', '.join(SPECIMEN_TYPES)}")
    elif phase.specimen_types[0] not in program.collection_windows:
        out.append(f"phase {phase.name}: no collection window is set for {phase.specimen_types[0]}")
    return out


def _check_rates(program: Program, label: str, rate: float, floor: int, ceiling: int) -> list[str]:
    """A rate, floor and ceiling per rolling 7 days against every site's open days, with the arithmetic."""
    out: list[str] = []
    if not is_int(floor) or not is_int(ceiling) or not 0 <= floor <= ceiling <= 7:
        out.append(f"{label}: need 0 <= floor <= ceiling <= 7 per rolling 7 days; got floor {floor}, ceiling {ceiling}")
        return out
    if not is_finite_number(rate) or not 0 < rate <= 7 or not floor <= rate <= ceiling:
        out.append(
            f"{label}: tests_per_week {rate!r} must be above 0 and between the floor {floor} and the ceiling {ceiling}"
        )
    for site, calendar in program.sites.items():
        weekly = sorted(calendar.hours)
        names = ", ".join(WEEKDAY_NAMES[d] for d in weekly)
        if floor > len(weekly):
            out.append(
                f"{label} needs at least {floor} tests in every rolling 7 days, but site {site} is "
                f"open {len(weekly)} day(s) a week ({names}): {floor} > {len(weekly)}"
            )
            continue
        if is_finite_number(rate) and rate > len(weekly):
            out.append(
                f"{label} plans {rate} tests a week, but site {site} is open {len(weekly)} day(s) "
                f"a week ({names}): {rate} > {len(weekly)}"
            )
        tight = tightest_week(calendar)
        if floor > tight.open_days:
            last = tight.start + timedelta(days=6)
            out.append(
                f"{label} needs at least {floor} tests in every rolling 7 days, but at site {site} the 7 "
                f"days {tight.start.isoformat()}..{last.isoformat()} have only {tight.open_days} "
                f"open day(s): {len(weekly)} open weekday(s) minus {len(weekly) - tight.open_days} closed day(s) "
                f"({', '.join(tight.closed_in_it)}) = {tight.open_days} < {floor}"
            )
    return out


def plan_for(program: Program, version: int, site: str, phase_name: str) -> TestingPlan:
    """The daily testing plan of one phase at one site, under one version of the program."""
    if site not in program.sites:
        raise ValueError(
            f"site {site!r} is not a site of program {program.program_id}; its sites are "
            f"{', '.join(sorted(program.sites))}"
        )
    calendar, phase = program.sites[site], program.phase(phase_name)
    weekdays = tuple(sorted(calendar.hours))
    first = calendar.hours[weekdays[0]]
    specimen = phase.specimen_types[0]
    return TestingPlan(
        phase=phase.name,
        tests_per_week=float(phase.tests_per_week),
        min_per_rolling_week=phase.min_per_rolling_week,
        max_per_rolling_week=phase.max_per_rolling_week,
        collection_window_hours=float(program.collection_windows[specimen]),
        collection_weekdays=weekdays,
        opens_at=first[0],
        closes_at=first[1],
        closed_dates=tuple(sorted(calendar.closed)),
        timezone=calendar.timezone,
        weekday_hours=tuple((d, *calendar.hours[d]) for d in weekdays if calendar.hours[d] != first),
        source=f"program {program.program_id} v{version}: {phase.criteria or phase.name}",
        program_id=program.program_id,
        program_version=version,
        specimen_type=specimen,
        check_in_required=phase.check_in_required,
        missed_check_in_reportable=phase.missed_check_in_reportable,
        make_up_hours=float(program.make_up_hours),
        breath_alcohol_cutoff=float(program.breath_alcohol_cutoff),
        reminder_hours_before_close=float(program.reminder_hours_before_close),
        selection_mode=program.mode,
    )


def default_program(site: str = "north", timezone: str = "America/New_York") -> Program:
    """Today's built-in behaviour as a program: every day 07:00-19:00, the cited default phases."""
    every_day = {d: ("07:00", "19:00") for d in range(7)}
    phases = []
    for name in PHASES:
        plan = default_plan(name)
        phases.append(
            PhaseDefinition(
                name=name,
                tests_per_week=plan.tests_per_week,
                min_per_rolling_week=plan.min_per_rolling_week,
                max_per_rolling_week=plan.max_per_rolling_week,
                criteria=plan.source,
            )
        )
    return Program(
        program_id=DEFAULT_PROGRAM_ID,
        name="Intensive outpatient program (defaults)",
        sites={site: SiteCalendar(timezone=timezone, hours=every_day)},
        phases=tuple(phases),
    )


# --- JSON form ----------------------------------------------------------------------------------

_PROGRAM_KEYS = {
    "program_id",
    "name",
    "sites",
    "phases",
    "collection_windows",
    "make_up_hours",
    "mode",
    "reminder_hours_before_close",
    "colours",
    "forensic_default",
    "report_presumptive",
    "breath_alcohol_cutoff",
    "lab_turnaround_hours",
}
_COLOUR_KEYS = {"name", "tests_per_week", "min_per_rolling_week", "max_per_rolling_week"}
_PHASE_KEYS = {
    "name",
    "tests_per_week",
    "min_per_rolling_week",
    "max_per_rolling_week",
    "specimen_types",
    "check_in_required",
    "missed_check_in_reportable",
    "criteria",
}


def program_to_dict(program: Program) -> dict[str, Any]:
    return {
        "program_id": program.program_id,
        "name": program.name,
        "mode": program.mode,
        "sites": {site: calendar_to_dict(cal) for site, cal in sorted(program.sites.items())},
        "collection_windows": dict(program.collection_windows),
        "make_up_hours": program.make_up_hours,
        "reminder_hours_before_close": program.reminder_hours_before_close,
        "colours": [
            {
                "name": c.name,
                "tests_per_week": c.tests_per_week,
                "min_per_rolling_week": c.min_per_rolling_week,
                "max_per_rolling_week": c.max_per_rolling_week,
            }
            for c in program.colours
        ],
        "forensic_default": program.forensic_default,
        "report_presumptive": program.report_presumptive,
        "breath_alcohol_cutoff": program.breath_alcohol_cutoff,
        "lab_turnaround_hours": program.lab_turnaround_hours,
        "phases": [
            {
                "name": p.name,
                "tests_per_week": p.tests_per_week,
                "min_per_rolling_week": p.min_per_rolling_week,
                "max_per_rolling_week": p.max_per_rolling_week,
                "specimen_types": list(p.specimen_types),
                "check_in_required": p.check_in_required,
                "missed_check_in_reportable": p.missed_check_in_reportable,
                "criteria": p.criteria,
            }
            for p in program.phases
        ],
    }


def program_from_dict(data: Mapping[str, Any]) -> Program:
    """Inverse of program_to_dict; unknown keys are refused so a misspelt setting is never dropped.
    Raises ValueError listing every problem (check_program) with its arithmetic."""
    if not isinstance(data, Mapping):
        raise ValueError("a program is a JSON object")
    unknown = sorted(set(data) - _PROGRAM_KEYS)
    if unknown:
        raise ValueError(f"unknown program field(s): {', '.join(unknown)}; known: {', '.join(sorted(_PROGRAM_KEYS))}")
    require_text("program_id", data.get("program_id"))
    sites_in = data.get("sites")
    if not isinstance(sites_in, Mapping):
        raise ValueError("sites must map site codes to calendars")
    sites = {}
    for code, calendar in sites_in.items():
        try:
            sites[str(code)] = calendar_from_dict(calendar)
        except ValueError as error:
            raise ValueError(f"site {code}: {error}") from None
    phases = []
    for raw in data.get("phases") or []:
        if not isinstance(raw, Mapping):
            raise ValueError("each phase is an object")
        extra = sorted(set(raw) - _PHASE_KEYS)
        if extra:
            raise ValueError(f"unknown phase field(s): {', '.join(extra)}; known: {', '.join(sorted(_PHASE_KEYS))}")
        values = dict(raw)
        if isinstance(values.get("specimen_types"), list):
            values["specimen_types"] = tuple(values["specimen_types"])
        if is_finite_number(values.get("tests_per_week")):
            values["tests_per_week"] = float(values["tests_per_week"])
        try:
            phases.append(PhaseDefinition(**values))
        except TypeError as error:
            raise ValueError(f"incomplete phase: {error}") from None
    windows = {**DEFAULT_WINDOWS, **dict(data.get("collection_windows") or {})}
    colours = []
    for raw in data.get("colours") or []:
        if not isinstance(raw, Mapping):
            raise ValueError('each colour is an object: {"name": "red", "tests_per_week": 2}')
        extra = sorted(set(raw) - _COLOUR_KEYS)
        if extra:
            raise ValueError(f"unknown colour field(s): {', '.join(extra)}; known: {', '.join(sorted(_COLOUR_KEYS))}")
        values = dict(raw)
        if is_finite_number(values.get("tests_per_week")):
            values["tests_per_week"] = float(values["tests_per_week"])
        try:
            colours.append(ColourGroup(**values))
        except TypeError as error:
            raise ValueError(f"incomplete colour: {error}") from None
    program = Program(
        program_id=str(data["program_id"]),
        name=str(data.get("name") or data["program_id"]),
        sites=sites,
        phases=tuple(phases),
        collection_windows=windows,
        make_up_hours=data.get("make_up_hours", 24.0),
        mode=data.get("mode", ProgramMode.INDIVIDUAL),
        reminder_hours_before_close=data.get("reminder_hours_before_close", 0.0),
        colours=tuple(colours),
        forensic_default=data.get("forensic_default", True),
        report_presumptive=data.get("report_presumptive", False),
        breath_alcohol_cutoff=data.get("breath_alcohol_cutoff", 0.02),
        lab_turnaround_hours=data.get("lab_turnaround_hours", DEFAULT_LAB_TURNAROUND_HOURS),
    )
    problems = check_program(program)
    if problems:
        raise ValueError("; ".join(problems))
    return program
