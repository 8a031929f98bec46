"""Take-home eligibility: how many days of medication a participant may take home (42 CFR 8.12(i)).

Rules are jurisdiction data: a TakeHomeRules is a named, versioned rule set citing its source,
and every decision names the rule set it was made under and lists every criterion weighed, met
or not, in words a clinician can sign. The caps count take-home days beyond the doses for days
the clinic is closed, which come on top (42 CFR 8.12(i)).

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. `today` comes in
with the facts, never from the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta
from itertools import pairwise
from typing import Any, TypeVar

from domain.checks import is_finite_number as _is_finite_number
from domain.checks import is_int as _is_int
from domain.checks import parse_day as _parse_day
from domain.checks import require_text as _require_text
from domain.medication import DEFAULT_MISSED_DOSE_RULES, DRUGS, INJECTION_DRUGS, Drug
from domain.vocab import Vocabulary


class ScreenResult(Vocabulary):
    """A screen's result as the take-home rules weigh it."""

    NEGATIVE = "negative"
    POSITIVE = "positive"
    EXPECTED_ABSENT = "expected-absent"
    MISSED = "missed"
    REFUSED = "refused"
    INVALID = "invalid"


NEGATIVE = ScreenResult.NEGATIVE
POSITIVE = ScreenResult.POSITIVE
EXPECTED_ABSENT = ScreenResult.EXPECTED_ABSENT
MISSED = ScreenResult.MISSED
REFUSED = ScreenResult.REFUSED
INVALID = ScreenResult.INVALID
SCREEN_RESULTS: tuple[str, ...] = (NEGATIVE, POSITIVE, EXPECTED_ABSENT, MISSED, REFUSED, INVALID)
# A screen negative for the dispensed medication reduces take-homes like a positive one in
# several states (project rule, docs/rules.md); a missed or refused screen is treated as positive, as
# treatment courts do. An invalid specimen is neither clean nor bad: it is recollected.
DEFAULT_BAD_SCREEN_RESULTS: frozenset[str] = frozenset({POSITIVE, EXPECTED_ABSENT, MISSED, REFUSED})


class Criterion(Vocabulary):
    """Take-home criterion codes (42 CFR 8.12(i)(2)), in the order they are weighed and reported."""

    TIME_IN_TREATMENT = "time-in-treatment"
    ATTENDANCE = "attendance"
    SCREENS = "screens"
    DIVERSION = "diversion"
    SAFE_STORAGE = "safe-storage"
    CLINICIAN_HOLD = "clinician-hold"
    MISSED_DOSES = "missed-doses"


TIME_IN_TREATMENT = Criterion.TIME_IN_TREATMENT
ATTENDANCE = Criterion.ATTENDANCE
SCREENS = Criterion.SCREENS
DIVERSION = Criterion.DIVERSION
SAFE_STORAGE = Criterion.SAFE_STORAGE
CLINICIAN_HOLD = Criterion.CLINICIAN_HOLD
MISSED_DOSES = Criterion.MISSED_DOSES
CRITERIA: tuple[str, ...] = (
    TIME_IN_TREATMENT,
    ATTENDANCE,
    SCREENS,
    DIVERSION,
    SAFE_STORAGE,
    CLINICIAN_HOLD,
    MISSED_DOSES,
)


# --- small checks ----------------------------------------------------------------------------


def _frozen_choices(label: str, values: Any, choices: tuple[str, ...]) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, (set, frozenset, tuple, list)):
        raise ValueError(f"{label} must be a collection of names, not {values!r}")
    unknown = sorted(set(values) - set(choices))
    if unknown:
        raise ValueError(f"{label}: unknown value(s) {', '.join(unknown)}; known values are {', '.join(choices)}")
    return frozenset(values)


# --- rule sets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """From treatment day `from_day` to `to_day` (both included; None = no end), at most `max_days`
    take-home days at a time. Day 1 is the first day of treatment."""

    from_day: int
    to_day: int | None
    max_days: int

    def covers(self, treatment_day: int) -> bool:
        return self.from_day <= treatment_day and (self.to_day is None or treatment_day <= self.to_day)

    @property
    def label(self) -> str:
        return f"days {self.from_day}-{self.to_day}" if self.to_day is not None else f"from day {self.from_day}"


@dataclass(frozen=True, kw_only=True)
class TakeHomeRules:
    """A jurisdiction's (or a program's) take-home rules.

    `bands` cap the drugs in `applies_to`; other drugs are "not capped by this rule set" and get
    the program's own `max_days_for_uncapped_drugs`. The other criteria apply to every drug.
    """

    name: str
    version: str
    source: str
    bands: tuple[Band, ...]
    applies_to: frozenset[str]
    # Program choice for drugs the bands do not cover (e.g. buprenorphine under the federal rule):
    # a four-week supply, matching the longest federal methadone supply (check).
    max_days_for_uncapped_drugs: int = 28
    # "Regular attendance" is a federal criterion without a number; 80% is a program default (check).
    attendance_threshold: float = 0.8
    # Without an attendance record regular attendance is not shown, so no take-homes by default.
    require_attendance_record: bool = True
    screen_lookback_days: int = 30
    bad_screen_results: frozenset[str] = DEFAULT_BAD_SCREEN_RESULTS
    positive_screen_reduces_to: int = 0
    # Reinstatement after e.g. 3 consecutive clean tests at least a week apart (project rule, docs/rules.md).
    min_clean_screens_for_reinstatement: int = 3
    reinstatement_min_spacing_days: int = 7
    # "Absence of known recent diversion" is a federal criterion; 30 days as "recent" is a program default (check).
    diversion_lookback_days: int = 30
    # A run long enough to need clinician reassessment before the next dose (project rule, docs/rules.md).
    missed_dose_run_limit: int = DEFAULT_MISSED_DOSE_RULES.reassess_after
    # Drugs with their own bands (e.g. Wisconsin's buprenorphine schedule); others use `bands`.
    bands_by_drug: tuple[tuple[str, tuple[Band, ...]], ...] = ()

    def __post_init__(self) -> None:
        for label in ("name", "version", "source"):
            _require_text(label, getattr(self, label))
        applies_to = _frozen_choices("applies_to", self.applies_to, DRUGS)
        bad_screen_results = _frozen_choices("bad_screen_results", self.bad_screen_results, SCREEN_RESULTS)
        if NEGATIVE in bad_screen_results:
            raise ValueError(
                "bad_screen_results cannot include 'negative': clean screens are what reinstate take-homes"
            )
        object.__setattr__(self, "applies_to", applies_to)
        object.__setattr__(self, "bad_screen_results", bad_screen_results)
        _check_bands(self.name, self.bands)
        for drug, bands in self.bands_by_drug:
            if drug not in applies_to:
                raise ValueError(f"{self.name}: bands_by_drug names {drug!r}, which applies_to does not list")
            _check_bands(f"{self.name} ({drug})", bands)
        _check_limits(self)

    @property
    def basis(self) -> str:
        return f"{self.name} v{self.version}"


def _check_bands(name: str, bands: Any) -> None:
    if not isinstance(bands, tuple) or not bands or any(not isinstance(band, Band) for band in bands):
        raise ValueError(f"{name}: bands must be a non-empty tuple of Band")
    expected_from = 1
    for position, band in enumerate(bands, start=1):
        if not _is_int(band.from_day) or band.from_day != expected_from:
            raise ValueError(
                f"{name}: bands must start on day 1 and follow each other without gap or overlap; "
                f"expected a band from day {expected_from}, got {band.from_day!r}"
            )
        if not _is_int(band.max_days) or band.max_days < 0:
            raise ValueError(
                f"{name}: max_days of {band.label} must be a whole number, 0 or more; got {band.max_days!r}"
            )
        if band.to_day is None:
            if position != len(bands):
                raise ValueError(f"{name}: only the last band may be open-ended ({band.label} is not last)")
            return
        if not _is_int(band.to_day) or band.to_day < band.from_day:
            raise ValueError(
                f"{name}: band from day {band.from_day} must end on or after its start; got {band.to_day!r}"
            )
        expected_from = band.to_day + 1
    raise ValueError(f"{name}: the last band must be open-ended (to_day None) so every treatment day is covered")


def _check_limits(rules: TakeHomeRules) -> None:
    for label in ("max_days_for_uncapped_drugs", "positive_screen_reduces_to", "reinstatement_min_spacing_days"):
        value = getattr(rules, label)
        if not _is_int(value) or value < 0:
            raise ValueError(f"{rules.name}: {label} must be a whole number, 0 or more; got {value!r}")
    for label in (
        "screen_lookback_days",
        "diversion_lookback_days",
        "min_clean_screens_for_reinstatement",
        "missed_dose_run_limit",
    ):
        value = getattr(rules, label)
        if not _is_int(value) or value < 1:
            raise ValueError(f"{rules.name}: {label} must be a whole number, 1 or more; got {value!r}")
    threshold = rules.attendance_threshold
    if not _is_finite_number(threshold) or not 0 <= threshold <= 1:
        raise ValueError(f"{rules.name}: attendance_threshold must be a fraction from 0 to 1; got {threshold!r}")
    if not isinstance(rules.require_attendance_record, bool):
        raise ValueError(f"{rules.name}: require_attendance_record must be true or false")


_FEDERAL_CRITERIA = (
    "criteria weighed per 42 CFR 8.12(i)(2): regular attendance, no active use, no known recent diversion, "
    "safe transport and storage"
)

# The 2024 final rule "Medications for the Treatment of Opioid Use Disorder" (89 FR 7528,
# 2024-02-02; effective 2024-04-02, compliance 2024-10-02) made the pandemic methadone
# flexibilities permanent. Its time-in-treatment limits cover methadone only. Paragraph numbers
# as read in the amended text: (i)(1) clinic-closed days, (i)(2) criteria, (i)(3) limits (check).
FEDERAL_OTP_2024 = TakeHomeRules(
    name="federal-otp-2024",
    version="2024-04-02",
    source=(
        "42 CFR 8.12(i)(3) as amended by 89 FR 7528 (2024-02-02): methadone take-home supply beyond "
        "clinic-closed days up to 7 days in the first 14 days of treatment, up to 14 days from day 15, "
        f"up to 28 days from day 31; these limits do not apply to buprenorphine; {_FEDERAL_CRITERIA}"
    ),
    bands=(Band(1, 14, 7), Band(15, 30, 14), Band(31, None, 28)),
    applies_to=frozenset({"methadone"}),
)

# Illustrative only, not any one state's rule (check): a state-style set stricter than the
# federal one, after the pattern of the pre-2024 federal schedule (1 take-home dose a week in the
# first 90 days, 2 in the next 90, a 6-day supply later in the first year) and of states that allow
# none in the first 30 days (e.g. Wisconsin DHS 75.59(13)(h), which starts methadone take-homes
# on day 31). Weekly limits are written as the largest supply at one time; the observed weekdays
# of the order's schedule keep the weekly rate.
STATE_STRICT_EXAMPLE = TakeHomeRules(
    name="state-strict-example",
    version="1",
    source=(
        "illustrative stricter state-style rule set (check): none in days 1-30, 1 take-home day a week in "
        "days 31-90, 2 a week in days 91-180, a 6-day supply from day 181; modelled on the pre-2024 "
        "42 CFR 8.12(i)(3) schedule and state rules such as Wis. Admin. Code DHS 75.59(13)(h); "
        "applied to methadone and buprenorphine products alike"
    ),
    bands=(Band(1, 30, 0), Band(31, 90, 1), Band(91, 180, 2), Band(181, None, 6)),
    applies_to=frozenset({Drug.METHADONE, Drug.BUPRENORPHINE, Drug.BUPRENORPHINE_NALOXONE}),
)

RULE_SETS: dict[str, TakeHomeRules] = {rules.name: rules for rules in (FEDERAL_OTP_2024, STATE_STRICT_EXAMPLE)}


def get_rules(name: str, rule_sets: Mapping[str, TakeHomeRules] | None = None) -> TakeHomeRules:
    """A rule set by name from `rule_sets` (the built-in RULE_SETS when not given)."""
    registry = RULE_SETS if rule_sets is None else rule_sets
    try:
        return registry[name]
    except KeyError:
        raise ValueError(
            f"unknown take-home rule set {name!r}; known rule sets are {', '.join(sorted(registry))}"
        ) from None


# --- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScreenFact:
    day: str
    result: str  # one of SCREEN_RESULTS

    def __post_init__(self) -> None:
        _parse_day("screen day", self.day)
        if self.result not in SCREEN_RESULTS:
            raise ValueError(f"unknown screen result {self.result!r}; known results are {', '.join(SCREEN_RESULTS)}")


@dataclass(frozen=True, kw_only=True)
class TakeHomeFacts:
    """What is known about the participant on `today`.

    `days_in_treatment` is today's treatment day, 1 on the first day (see treatment_day).
    `attendance_ratio_30d` is the adherence ratio over the last 30 days (domain.medication.adherence),
    None without a record. `recent_screens` oldest first. `diversion_flag_since` is the day of the
    latest diversion finding, None if there is none.
    """

    drug: str
    days_in_treatment: int
    attendance_ratio_30d: float | None
    recent_screens: tuple[ScreenFact, ...] = ()
    diversion_flag_since: str | None = None
    safe_storage_attested: bool
    clinician_hold: bool = False
    missed_dose_run: int = 0
    today: str

    def __post_init__(self) -> None:
        if self.drug not in DRUGS:
            raise ValueError(f"unknown drug {self.drug!r}; known drugs are {', '.join(DRUGS)}")
        if not _is_int(self.days_in_treatment) or self.days_in_treatment < 1:
            raise ValueError(
                f"days_in_treatment is the treatment day, 1 on the first day; got {self.days_in_treatment!r}"
            )
        ratio = self.attendance_ratio_30d
        if ratio is not None and (not _is_finite_number(ratio) or not 0 <= ratio <= 1):
            raise ValueError(f"attendance_ratio_30d must be a fraction from 0 to 1, or empty; got {ratio!r}")
        if not _is_int(self.missed_dose_run) or self.missed_dose_run < 0:
            raise ValueError(f"missed_dose_run must be a whole number, 0 or more; got {self.missed_dose_run!r}")
        for label in ("safe_storage_attested", "clinician_hold"):
            if not isinstance(getattr(self, label), bool):
                raise ValueError(f"{label} must be true or false")
        _check_dates_not_after_today(self)


def _check_dates_not_after_today(facts: TakeHomeFacts) -> None:
    today = _parse_day("today", facts.today)
    screens = facts.recent_screens
    if not isinstance(screens, tuple) or any(not isinstance(screen, ScreenFact) for screen in screens):
        raise ValueError("recent_screens must be a tuple of ScreenFact")
    days = [_parse_day("screen day", screen.day) for screen in screens]
    if any(later < earlier for earlier, later in pairwise(days)):
        raise ValueError("recent_screens must be in chronological order, oldest first")
    if days and days[-1] > today:
        raise ValueError(f"a screen dated {days[-1].isoformat()} is after today {facts.today}")
    flagged = facts.diversion_flag_since
    if flagged is not None and _parse_day("diversion_flag_since", flagged) > today:
        raise ValueError(f"diversion_flag_since {facts.diversion_flag_since} is after today {facts.today}")


def treatment_day(start: date, today: date) -> int:
    """Today's treatment day: 1 on the day treatment started."""
    if today < start:
        raise ValueError(f"treatment starts on {start.isoformat()}, after {today.isoformat()}")
    return (today - start).days + 1


# --- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    """At most `max_take_home_days` take-home days now, beyond doses for clinic-closed days.

    `cap` is the time-in-treatment cap before the other criteria; `not_met` the codes of the
    criteria that lowered it; `reasons` one line per criterion, in the order of CRITERIA.
    """

    max_take_home_days: int
    cap: int
    reasons: tuple[str, ...]
    not_met: tuple[str, ...]
    basis: str


@dataclass(frozen=True)
class _Finding:
    code: str
    limit: int | None  # the most take-home days this criterion allows; None when met
    reason: str


def _met(code: str, reason: str) -> _Finding:
    return _Finding(code, None, f"{code.replace('-', ' ')}: {reason}")


def _not_met(code: str, limit: int, reason: str) -> _Finding:
    return _Finding(code, limit, f"{code.replace('-', ' ')}: {reason}")


def eligibility(facts: TakeHomeFacts, rules: TakeHomeRules) -> Eligibility:
    """Weigh every criterion of `rules` against `facts`. The result is the smallest limit found.

    No default rule set: which jurisdiction applies is the program's choice, never an accident.
    """
    today = _parse_day("today", facts.today)
    cap, cap_reason = _time_in_treatment_cap(facts, rules)
    findings = (
        _attendance(facts, rules),
        _screens(facts, rules, today),
        _diversion(facts, rules, today),
        _safe_storage(facts),
        _clinician_hold(facts),
        _missed_doses(facts, rules),
    )
    limits = [finding.limit for finding in findings if finding.limit is not None]
    return Eligibility(
        max_take_home_days=min([cap, *limits]),
        cap=cap,
        reasons=(cap_reason, *(finding.reason for finding in findings)),
        not_met=tuple(finding.code for finding in findings if finding.limit is not None),
        basis=rules.basis,
    )


def _time_in_treatment_cap(facts: TakeHomeFacts, rules: TakeHomeRules) -> tuple[int, str]:
    label = "time in treatment"
    if facts.drug in INJECTION_DRUGS:
        return 0, f"{label}: {facts.drug} is injected at the clinic, so there is no take-home dose"
    if facts.drug not in rules.applies_to:
        capped = ", ".join(sorted(rules.applies_to)) or "no drug"
        return rules.max_days_for_uncapped_drugs, (
            f"{label}: {facts.drug} is not capped by this rule set ({rules.basis} caps {capped}); "
            f"the program allows at most {rules.max_days_for_uncapped_drugs} take-home day(s)"
        )
    day = facts.days_in_treatment
    bands = dict(rules.bands_by_drug).get(facts.drug, rules.bands)
    band = next(band for band in bands if band.covers(day))  # bands cover every day from 1
    return band.max_days, (
        f"{label}: day {day} falls in the band {band.label} of {rules.basis}, "
        f"which allows at most {band.max_days} take-home day(s)"
    )


def _attendance(facts: TakeHomeFacts, rules: TakeHomeRules) -> _Finding:
    ratio, threshold = facts.attendance_ratio_30d, rules.attendance_threshold
    if ratio is None and rules.require_attendance_record:
        return _not_met(
            ATTENDANCE,
            0,
            "no attendance record for the last 30 days, so regular attendance is not shown: no take-home doses",
        )
    if ratio is None:
        return _met(ATTENDANCE, "no attendance record for the last 30 days; this rule set does not require one")
    taken = f"{_percent(ratio)} of expected doses in the last 30 days"
    if ratio < threshold:
        return _not_met(ATTENDANCE, 0, f"{taken}, below the {_percent(threshold)} required: no take-home doses")
    return _met(ATTENDANCE, f"{taken} meets the {_percent(threshold)} required")


def _screens(facts: TakeHomeFacts, rules: TakeHomeRules, today: date) -> _Finding:
    lookback = rules.screen_lookback_days
    bad = [screen for screen in facts.recent_screens if screen.result in rules.bad_screen_results]
    if not bad or _parse_day("screen day", bad[-1].day) < today - timedelta(days=lookback):
        kinds = _joined_with_or([result for result in SCREEN_RESULTS if result in rules.bad_screen_results])
        return _met(SCREENS, f"no {kinds} screen in the last {lookback} days")
    last_bad = bad[-1]  # screens come oldest first
    spacing, needed = rules.reinstatement_min_spacing_days, rules.min_clean_screens_for_reinstatement
    clean = _spaced_clean_screens(facts.recent_screens, _parse_day("screen day", last_bad.day), spacing)
    found = f"{last_bad.result} screen on {last_bad.day} (within the last {lookback} days)"
    if len(clean) >= needed:
        return _met(
            SCREENS,
            f"{found}, then {len(clean)} clean screens at least {spacing} day(s) apart "
            f"({', '.join(clean)}), {needed} needed: reinstated",
        )
    limit = rules.positive_screen_reduces_to
    return _not_met(
        SCREENS,
        limit,
        f"{found}; {len(clean)} of the {needed} clean screens at least {spacing} day(s) "
        f"apart needed since: at most {limit} take-home day(s) until then",
    )


def _spaced_clean_screens(screens: tuple[ScreenFact, ...], after: date, spacing_days: int) -> list[str]:
    """Negative screens after `after`, earliest first, each at least `spacing_days` after the one
    before. Taking the earliest each time finds the longest such series."""
    counted: list[date] = []
    for screen in screens:
        day = _parse_day("screen day", screen.day)
        if screen.result != NEGATIVE or day <= after:
            continue
        if not counted or (day - counted[-1]).days >= spacing_days:
            counted.append(day)
    return [day.isoformat() for day in counted]


def _diversion(facts: TakeHomeFacts, rules: TakeHomeRules, today: date) -> _Finding:
    lookback, flagged = rules.diversion_lookback_days, facts.diversion_flag_since
    if flagged is None:
        return _met(DIVERSION, "no diversion finding on record")
    if _parse_day("diversion_flag_since", flagged) >= today - timedelta(days=lookback):
        return _not_met(DIVERSION, 0, f"diversion found on {flagged}, within {lookback} days: no take-home doses")
    return _met(DIVERSION, f"the last diversion finding ({flagged}) is older than {lookback} days")


def _safe_storage(facts: TakeHomeFacts) -> _Finding:
    if facts.safe_storage_attested:
        return _met(SAFE_STORAGE, "safe transport and storage attested")
    return _not_met(SAFE_STORAGE, 0, "safe transport and storage not attested: no take-home doses")


def _clinician_hold(facts: TakeHomeFacts) -> _Finding:
    if facts.clinician_hold:
        return _not_met(CLINICIAN_HOLD, 0, "a clinician has held take-home doses: none until released")
    return _met(CLINICIAN_HOLD, "none")


def _missed_doses(facts: TakeHomeFacts, rules: TakeHomeRules) -> _Finding:
    run, limit = facts.missed_dose_run, rules.missed_dose_run_limit
    if run >= limit:
        return _not_met(
            MISSED_DOSES,
            0,
            f"{run} consecutive missed dose(s), at or above {limit}: no take-home doses until a clinician reassesses",
        )
    return _met(MISSED_DOSES, f"{run} consecutive missed dose(s), below {limit}")


def _joined_with_or(words: list[str]) -> str:
    return " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"


def _percent(fraction: float) -> str:
    # Four significant digits, so that a ratio just under the threshold never prints as equal to it.
    return f"{fraction * 100:.4g}%"


# --- payloads --------------------------------------------------------------------------------
# Everything below crosses Temporal as JSON: tuples become lists, frozensets sorted lists.
# from_dict rejects unknown keys so a misspelt override is not silently dropped.


# Keys of a rule-set file (domain/rules/takehome/*.yaml) that document it rather than rule.
FILE_DOCUMENTATION_KEYS = ("jurisdiction", "effective", "citations", "uncertain")


def rules_from_file(data: Mapping[str, Any]) -> TakeHomeRules:
    """A rule set from a versioned rule-set file. Every file names its jurisdiction and cites the
    rule text it encodes (`citations`: cite + text); `uncertain` lists what was not verified."""
    if not isinstance(data, Mapping):
        raise ValueError("a take-home rule-set file holds a mapping of fields")
    name = data.get("name", "?")
    _require_text(f"{name}: jurisdiction", data.get("jurisdiction"))
    citations = data.get("citations")
    if (
        not isinstance(citations, list)
        or not citations
        or any(
            not isinstance(c, Mapping) or not str(c.get("cite", "")).strip() or not str(c.get("text", "")).strip()
            for c in citations
        )
    ):
        raise ValueError(f"{name}: citations must list the rule text encoded, each with a cite and its text")
    uncertain = data.get("uncertain", [])
    if not isinstance(uncertain, list) or any(not isinstance(u, str) for u in uncertain):
        raise ValueError(f"{name}: uncertain must be a list of sentences")
    values = {k: v for k, v in data.items() if k not in FILE_DOCUMENTATION_KEYS}
    if isinstance(values.get("bands_by_drug"), Mapping):
        values["bands_by_drug"] = [[drug, bands] for drug, bands in values["bands_by_drug"].items()]
    return rules_from_dict(values)


def rules_to_dict(rules: TakeHomeRules) -> dict[str, Any]:
    values = {f.name: getattr(rules, f.name) for f in fields(rules)}
    values["bands"] = [band_to_dict(band) for band in rules.bands]
    values["bands_by_drug"] = [[drug, [band_to_dict(b) for b in bands]] for drug, bands in rules.bands_by_drug]
    values["applies_to"] = sorted(rules.applies_to)
    values["bad_screen_results"] = sorted(rules.bad_screen_results)
    return values


def rules_from_dict(data: Mapping[str, Any]) -> TakeHomeRules:
    values = _known_fields(TakeHomeRules, data)
    if isinstance(values.get("bands"), list):
        values["bands"] = tuple(band_from_dict(band) for band in values["bands"])
    if isinstance(values.get("bands_by_drug"), list):
        values["bands_by_drug"] = tuple(
            (drug, tuple(band_from_dict(band) for band in bands)) for drug, bands in values["bands_by_drug"]
        )
    for key in ("applies_to", "bad_screen_results"):
        if isinstance(values.get(key), list):
            values[key] = frozenset(values[key])
    # JSON does not distinguish 1 from 1.0.
    if _is_int(values.get("attendance_threshold")):
        values["attendance_threshold"] = float(values["attendance_threshold"])
    return _build(TakeHomeRules, values)


def band_to_dict(band: Band) -> dict[str, Any]:
    return {"from_day": band.from_day, "to_day": band.to_day, "max_days": band.max_days}


def band_from_dict(data: Mapping[str, Any]) -> Band:
    return _build(Band, _known_fields(Band, data))


def _known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"a {cls.__name__} payload must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s): {', '.join(unknown)}; known fields are {', '.join(sorted(known))}"
        )
    return dict(data)


_T = TypeVar("_T")


def _build(cls: type[_T], values: dict[str, Any]) -> _T:
    try:
        return cls(**values)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"incomplete {cls.__name__}: {error}") from None
