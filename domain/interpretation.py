"""Interpretation of one urine specimen: each analyte against its cutoff, then the specimen as a
whole against validity rules and the participant's prescribed medications (HHS urine cutoff
and validity criteria, 49 CFR 40.87/40.93-40.96; medication checks: docs/rules.md).

Nothing here makes a result final except a plain negative with no flag: a non-negative result is
not a positive until a clinician or Medical Review Officer has reviewed it, and a presumptive
(immunoassay or cup) positive never reaches a court as positive before confirmation or review.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. Sets are always
sorted before they shape output, because string hashing (and so set order) differs between
processes and a replayed workflow must produce the same payloads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeGuard

from domain.analytes import ANALYTES, NOT_MONITORED_BY_URINE, AddedAnalyte, Analyte, catalogue
from domain.checks import is_finite_number as _is_finite_number
from domain.cutoffs import (
    CLINICAL_DEFAULT,
    CONFIRM,
    HHS_2025,
    INITIAL_METHODS,
    METHODS,
    SCREEN,
    CutoffTable,
    get_table,
    resolve_cutoff,
)
from domain.validity import (
    ADULTERATED,
    DEFAULT_VALIDITY_RULES,
    INVALID,
    SUBSTITUTED,
    VALID,
    SpecimenChecks,
    ValidityFinding,
    ValidityRules,
    apply_drug_result,
    classify_validity,
)
from domain.vocab import Vocabulary

# --- closed vocabularies ---------------------------------------------------------------------


class AnalyteOutcome(Vocabulary):
    """The outcome of one analyte."""

    NEGATIVE = "negative"
    PRESUMPTIVE_POSITIVE = "presumptive-positive"
    CONFIRMED_POSITIVE = "confirmed-positive"
    NOT_INTERPRETABLE = "not-interpretable"


NEGATIVE = AnalyteOutcome.NEGATIVE
PRESUMPTIVE_POSITIVE = AnalyteOutcome.PRESUMPTIVE_POSITIVE
CONFIRMED_POSITIVE = AnalyteOutcome.CONFIRMED_POSITIVE
NOT_INTERPRETABLE = AnalyteOutcome.NOT_INTERPRETABLE
ANALYTE_OUTCOMES: tuple[str, ...] = tuple(AnalyteOutcome)
POSITIVE_OUTCOMES: frozenset[str] = frozenset({PRESUMPTIVE_POSITIVE, CONFIRMED_POSITIVE})


class OverallOutcome(Vocabulary):
    """The overall outcome of a specimen, strongest first."""

    REFUSAL = "refusal"  # adulterated, substituted or a collector-recorded refusal (once verified)
    NON_NEGATIVE = "non-negative"  # at least one analyte at or above its cutoff
    INVALID = "invalid"  # from validity: no valid drug result could be obtained
    INCOMPLETE = "incomplete"  # no drug result, or one that could not be interpreted and nothing positive
    NEGATIVE = "negative"  # every drug result below its cutoff


REFUSAL = OverallOutcome.REFUSAL
NON_NEGATIVE = OverallOutcome.NON_NEGATIVE
INCOMPLETE = OverallOutcome.INCOMPLETE
OVERALL_OUTCOMES: tuple[str, ...] = tuple(OverallOutcome)


class FlagCode(Vocabulary):
    """What an interpretation flags for a reviewer."""

    UNEXPECTED_PRESENT = "unexpected-present"
    EXPECTED_ABSENT = "expected-absent"
    EXPECTED_NOT_TESTED = "expected-not-tested"
    POSSIBLE_SPIKING_BUPRENORPHINE = "possible-spiking-buprenorphine"
    POSSIBLE_SPIKING_METHADONE = "possible-spiking-methadone"
    PRESUMPTIVE_UNCONFIRMED = "presumptive-unconfirmed"
    RESULT_NOT_INTERPRETABLE = "result-not-interpretable"
    SPECIMEN_DILUTE = "specimen-dilute"
    SPECIMEN_INVALID = "specimen-invalid"
    SPECIMEN_SUBSTITUTED = "specimen-substituted"
    SPECIMEN_ADULTERATED = "specimen-adulterated"
    RECOLLECT_OBSERVED = "recollect-observed"
    COLLECTION_REFUSAL = "collection-refusal"
    VALIDITY_INCOMPLETE = "validity-incomplete"


UNEXPECTED_PRESENT = FlagCode.UNEXPECTED_PRESENT
EXPECTED_ABSENT = FlagCode.EXPECTED_ABSENT
EXPECTED_NOT_TESTED = FlagCode.EXPECTED_NOT_TESTED
POSSIBLE_SPIKING_BUPRENORPHINE = FlagCode.POSSIBLE_SPIKING_BUPRENORPHINE
POSSIBLE_SPIKING_METHADONE = FlagCode.POSSIBLE_SPIKING_METHADONE
PRESUMPTIVE_UNCONFIRMED = FlagCode.PRESUMPTIVE_UNCONFIRMED
RESULT_NOT_INTERPRETABLE = FlagCode.RESULT_NOT_INTERPRETABLE
SPECIMEN_DILUTE = FlagCode.SPECIMEN_DILUTE
SPECIMEN_INVALID = FlagCode.SPECIMEN_INVALID
SPECIMEN_SUBSTITUTED = FlagCode.SPECIMEN_SUBSTITUTED
SPECIMEN_ADULTERATED = FlagCode.SPECIMEN_ADULTERATED
RECOLLECT_OBSERVED = FlagCode.RECOLLECT_OBSERVED
COLLECTION_REFUSAL = FlagCode.COLLECTION_REFUSAL
VALIDITY_INCOMPLETE = FlagCode.VALIDITY_INCOMPLETE
FLAG_CODES: tuple[str, ...] = tuple(FlagCode)

LAB_CUTOFF = "lab"
# Analytes by key: the built-in ones (domain.analytes.ANALYTES), with any an administrator added.
Catalogue = Mapping[str, Analyte]
# The cutoff table made of the default cutoffs of analytes an administrator added.
CLINIC_ADDED = "clinic-added"

# Norbuprenorphine/buprenorphine ratios below which spiking is suspected, as found in the
# literature: 0.02 (Warrington et al., J Addict Med 2020), 0.2, and 0.26 (docs/rules.md; a
# more sensitive threshold keeping a broader differential). The default is the least accusatory.
BUP_RATIO_THRESHOLDS_IN_LITERATURE: tuple[float, ...] = (0.02, 0.2, 0.26)
# Sublingual naloxone is poorly absorbed, so urine holds little of it; > 2000 ng/mL was the
# "extreme" band in a 1,223-sample practice review (Addict Sci Clin Pract 2020;15:3) (check).
DEFAULT_HIGH_NALOXONE_NG_ML = 2000.0

# The analytes whose presence shows a medication was taken. Naloxone is left out: the mono
# product has none and a rescue dose brings it without buprenorphine.
_NOT_ADHERENCE_MARKERS = frozenset({"naloxone"})

_POSITIVE_WORDS = frozenset({"POS", "POSITIVE", "DETECTED", "PRESENT"})
_NEGATIVE_WORDS = frozenset({"NEG", "NEGATIVE", "NOT DETECTED", "NONE DETECTED", "ND", "ABSENT"})
# Units that equal ng/mL, the unit of every cutoff table.
_NG_PER_ML = frozenset({"ng/ml", "ug/l", "mcg/l"})


# --- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyteResult:
    """One analyte as a lab or a cup reported it. `analyte` is a key of domain.analytes.ANALYTES."""

    analyte: str
    value: float | None = None
    qualitative: str | None = None  # the lab's own call: "POS", "NEG", ...
    units: str | None = None
    lab_cutoff: float | None = None  # the cutoff the lab reported with this result
    # Unless told otherwise a result is an initial test: it can then never pass for confirmed.
    method: str = SCREEN

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; known methods are {', '.join(METHODS)}")


@dataclass(frozen=True)
class MedicationContext:
    """What the participant is prescribed, as medication keys (domain.analytes.MEDICATIONS)."""

    expected: frozenset[str] = frozenset()
    bup_ratio_threshold: float = BUP_RATIO_THRESHOLDS_IN_LITERATURE[0]
    high_naloxone_ng_ml: float = DEFAULT_HIGH_NALOXONE_NG_ML

    def __post_init__(self) -> None:
        if isinstance(self.expected, str):
            raise ValueError("expected must be a collection of medication keys, not one string")
        object.__setattr__(self, "expected", frozenset(self.expected))
        for name in ("bup_ratio_threshold", "high_naloxone_ng_ml"):
            if not _is_positive_number(getattr(self, name)):
                raise ValueError(f"{name} must be a positive number")


# --- outputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyteFinding:
    analyte: str
    outcome: str  # one of ANALYTE_OUTCOMES
    cutoff_used: float | None
    cutoff_source: str | None  # "lab", a cutoff table's name, or None
    reason: str
    method: str = SCREEN
    value: float | None = None


@dataclass(frozen=True)
class Flag:
    code: str  # one of FLAG_CODES
    detail: str


@dataclass(frozen=True)
class Interpretation:
    overall: str  # one of OVERALL_OUTCOMES
    findings: tuple[AnalyteFinding, ...]
    validity: ValidityFinding
    flags: tuple[Flag, ...]
    needs_review: bool
    # Only a negative with no flag: everything else waits for a clinician or MRO.
    may_finalize_without_review: bool
    summary: str
    cutoff_tables: tuple[str, ...] = ()


# --- one analyte -----------------------------------------------------------------------------


def classify_analyte(
    result: AnalyteResult,
    table: CutoffTable,
    fallback: CutoffTable | None = None,
    *,
    analytes: Catalogue = ANALYTES,
    added_table: CutoffTable | None = None,
) -> AnalyteFinding:
    """Judge one result. The lab's own cutoff wins over `table`, which wins over `fallback`, then
    `added_table` (the defaults of analytes an administrator added, which are in `analytes`)."""
    analyte = analytes.get(result.analyte)
    if analyte is None:
        return _not_interpretable(result, f"unknown analyte {result.analyte!r}: map it before interpreting")
    if analyte.is_validity_check:
        return _not_interpretable(result, f"{analyte.label} is a specimen-validity check, not a drug result")
    call = _qualitative_call(result.qualitative)
    tables = [t for t in (table, fallback, added_table) if t is not None]
    if result.value is None:
        return _from_call_alone(result, call, tables)
    if not _is_finite_number(result.value) or result.value < 0:
        return _not_interpretable(result, f"value {result.value!r} is not a usable concentration")
    return _from_value(result, call, tables)


def _from_value(result: AnalyteResult, call: str | None, tables: Sequence[CutoffTable]) -> AnalyteFinding:
    cutoff, source, problem = _cutoff(result, tables)
    if problem:
        return _not_interpretable(result, problem, cutoff, source)
    if cutoff is None:
        if call in (NEGATIVE, PRESUMPTIVE_POSITIVE):
            reason = f"no cutoff known; the lab called it {result.qualitative}"
            return _finding(result, call == PRESUMPTIVE_POSITIVE, None, None, reason)
        return _not_interpretable(result, f"no cutoff for {result.analyte} ({result.method}) and no usable lab call")
    assert result.value is not None  # interpret() sends only finite values here
    at_or_above = result.value >= cutoff
    comparison = (
        f"{result.value:g} {'>=' if at_or_above else '<'} cutoff {cutoff:g} ({_cutoff_label(source, result.method)})"
    )
    # A lab's call that disagrees with its own number is a messy feed, not something to settle here.
    if call is not None and call != (PRESUMPTIVE_POSITIVE if at_or_above else NEGATIVE):
        return _not_interpretable(result, f"{comparison}, but the lab called it {result.qualitative}", cutoff, source)
    return _finding(result, at_or_above, cutoff, source, comparison)


def _from_call_alone(result: AnalyteResult, call: str | None, tables: Sequence[CutoffTable]) -> AnalyteFinding:
    cutoff, source, _ = _cutoff(result, tables)
    if call is None:
        return _not_interpretable(result, f"no value and no recognisable call ({result.qualitative!r})", cutoff, source)
    return _finding(result, call == PRESUMPTIVE_POSITIVE, cutoff, source, f"the lab called it {result.qualitative}")


def _cutoff(result: AnalyteResult, tables: Sequence[CutoffTable]) -> tuple[float | None, str | None, str | None]:
    """(cutoff, its source, a problem that forbids comparing)."""
    if result.lab_cutoff is not None:
        if not _is_positive_number(result.lab_cutoff):
            # Falling back to a table here would be a guess about what the lab meant.
            return None, None, f"the lab's cutoff {result.lab_cutoff!r} is not a positive number"
        return float(result.lab_cutoff), LAB_CUTOFF, None
    found = resolve_cutoff(tables, result.analyte, result.method)
    if found is None:
        return None, None, None
    if not _is_ng_per_ml(result.units):
        return None, None, f"units {result.units!r} cannot be compared with a cutoff in ng/mL"
    return found[0], found[1], None


def _finding(
    result: AnalyteResult,
    positive: bool,
    cutoff: float | None,
    source: str | None,
    reason: str,
) -> AnalyteFinding:
    if not positive:
        outcome = NEGATIVE
    elif result.method in INITIAL_METHODS:
        outcome = PRESUMPTIVE_POSITIVE
    else:
        outcome = CONFIRMED_POSITIVE
    return AnalyteFinding(result.analyte, outcome, cutoff, source, reason, result.method, _plain_value(result.value))


def _not_interpretable(
    result: AnalyteResult, reason: str, cutoff: float | None = None, source: str | None = None
) -> AnalyteFinding:
    return AnalyteFinding(
        result.analyte, NOT_INTERPRETABLE, cutoff, source, reason, result.method, _plain_value(result.value)
    )


def _qualitative_call(text: str | None) -> str | None:
    """NEGATIVE, PRESUMPTIVE_POSITIVE (meaning "at or above cutoff"), or None when unrecognised."""
    if not isinstance(text, str):
        return None
    word = " ".join(text.upper().split())
    if word in _POSITIVE_WORDS:
        return PRESUMPTIVE_POSITIVE
    if word in _NEGATIVE_WORDS:
        return NEGATIVE
    return None


def _cutoff_label(source: str | None, method: str) -> str:
    if source == LAB_CUTOFF:
        return "lab cutoff"
    return f"{source} {'confirmatory' if method == CONFIRM else 'initial'}"


# --- the specimen ----------------------------------------------------------------------------


def interpret(
    results: Sequence[AnalyteResult],
    checks: SpecimenChecks | None,
    meds: MedicationContext,
    table_name: str = HHS_2025,
    validity_rules: ValidityRules = DEFAULT_VALIDITY_RULES,
    *,
    fallback_table_name: str | None = CLINICAL_DEFAULT,
    tables: Mapping[str, CutoffTable] | None = None,
    added: Sequence[AddedAnalyte] = (),
) -> Interpretation:
    """Interpret one specimen.

    Cutoffs: the lab's own, else `table_name`, else `fallback_table_name` (for medications and
    drugs outside the federal panel), all looked up in `tables` (the built-in ones by default).
    Validity results among `results` (creatinine, pH, ...) fill whatever `checks` leaves empty.
    `added`: analytes an administrator added, interpreted like built-in ones (their class, their
    medication links, and their default cutoffs after every table).
    """
    table = get_table(table_name, tables)
    fallback = (
        get_table(fallback_table_name, tables) if fallback_table_name and fallback_table_name != table_name else None
    )
    drug_results = [r for r in results if not _is_validity_result(r)]
    derived_checks, unusable_checks = checks_from_results(results)

    analytes = catalogue(added) if added else ANALYTES
    added_table = _added_table(added)
    findings = [
        classify_analyte(result, table, fallback, analytes=analytes, added_table=added_table) for result in drug_results
    ] + unusable_checks
    findings = _apply_methamphetamine_rule(findings, table)
    findings = _resolve_screens_by_confirmation(findings, analytes)

    all_negative = bool(findings) and all(f.outcome == NEGATIVE for f in findings)
    validity = apply_drug_result(classify_validity(_merge_checks(checks, derived_checks), validity_rules), all_negative)
    flags = _medication_flags(findings, meds, analytes) + _review_flags(findings, analytes) + _validity_flags(validity)
    overall = _overall(findings, validity)
    needs_review = overall != NEGATIVE or bool(flags)
    used_tables = tuple(t.name for t in (table, fallback) if t is not None)
    return Interpretation(
        overall=overall,
        findings=tuple(findings),
        validity=validity,
        flags=flags,
        needs_review=needs_review,
        may_finalize_without_review=not needs_review,
        summary=_summary(overall, findings, flags, meds, needs_review),
        cutoff_tables=used_tables,
    )


def _added_table(added: Sequence[AddedAnalyte]) -> CutoffTable | None:
    """The default cutoffs of added analytes as a table (never for a built-in key)."""
    kept = [a for a in added if a.key not in ANALYTES]
    initial = {a.key: float(a.initial_cutoff) for a in kept if _is_positive_number(a.initial_cutoff)}
    confirm = {a.key: float(a.confirm_cutoff) for a in kept if _is_positive_number(a.confirm_cutoff)}
    if not (initial or confirm):
        return None
    return CutoffTable(
        CLINIC_ADDED, "clinic", "default cutoffs of analytes added by the clinic's administrator", initial, confirm
    )


def checks_from_results(results: Iterable[AnalyteResult]) -> tuple[SpecimenChecks, list[AnalyteFinding]]:
    """Validity checks reported as results (creatinine, pH, ...), and findings for those that
    cannot be used (wrong units, no value) so that they reach review instead of vanishing."""
    values: dict[str, Any] = {}
    unusable: list[AnalyteFinding] = []
    for result in results:
        if not _is_validity_result(result):
            continue
        reading = _validity_reading(result)
        if isinstance(reading, str):
            unusable.append(_not_interpretable(result, reading))
        else:
            values.setdefault(*reading)
    return SpecimenChecks(**values), unusable


_VALIDITY_FIELDS = {
    "creatinine": ("creatinine_mg_dl", frozenset({"mg/dl"})),
    "specific_gravity": ("specific_gravity", frozenset({"", "1"})),
    "ph": ("ph", frozenset({"", "ph", "[ph]"})),
    "nitrite": ("nitrite_ug_ml", frozenset({"ug/ml", "mcg/ml"})),
}
_DETECTION_FIELDS = {"oxidant": "oxidant_detected", "surfactant": "surfactant_detected"}


def _validity_reading(result: AnalyteResult) -> tuple[str, Any] | str:
    """(SpecimenChecks field, value), or why the result cannot be used."""
    if result.analyte in _DETECTION_FIELDS:
        call = _qualitative_call(result.qualitative)
        if call is None and _is_finite_number(result.value) and _is_positive_number(result.lab_cutoff):
            call = PRESUMPTIVE_POSITIVE if result.value >= result.lab_cutoff else NEGATIVE
        if call is None:
            return f"{result.analyte}: no recognisable call and no value with a lab cutoff"
        return _DETECTION_FIELDS[result.analyte], call == PRESUMPTIVE_POSITIVE
    field_name, accepted_units = _VALIDITY_FIELDS[result.analyte]
    if not _is_finite_number(result.value):
        return f"{result.analyte}: value {result.value!r} is not a number"
    if _normalised_units(result.units) not in accepted_units:
        expected = "/".join(sorted(u for u in accepted_units if u))
        return f"{result.analyte}: units {result.units!r} are not the expected {expected}"
    return field_name, float(result.value)


def _merge_checks(given: SpecimenChecks | None, derived: SpecimenChecks) -> SpecimenChecks:
    if given is None:
        return derived
    missing = {f.name: getattr(derived, f.name) for f in fields(SpecimenChecks) if getattr(given, f.name) is None}
    return replace(given, **missing)


def _is_validity_result(result: AnalyteResult) -> bool:
    analyte = ANALYTES.get(result.analyte)  # an added analyte is never a validity check
    return analyte is not None and analyte.is_validity_check


# --- specimen-level rules --------------------------------------------------------------------


def _apply_methamphetamine_rule(findings: list[AnalyteFinding], table: CutoffTable) -> list[AnalyteFinding]:
    """Methamphetamine is reported positive only if amphetamine reaches the table's threshold in the
    same specimen (HHS and DOT: 100 ng/mL), measured by confirmation."""
    threshold = table.amphetamine_for_methamphetamine
    if threshold is None:
        return findings
    amphetamine = [f for f in findings if f.analyte == "amphetamine" and f.method == CONFIRM]
    measured = [f.value for f in amphetamine if f.value is not None]
    enough = any(value >= threshold for value in measured) or any(
        f.outcome == CONFIRMED_POSITIVE and f.cutoff_used is not None and f.cutoff_used >= threshold
        for f in amphetamine
    )

    def judged(finding: AnalyteFinding) -> AnalyteFinding:
        if finding.analyte != "methamphetamine" or finding.outcome != CONFIRMED_POSITIVE or enough:
            return finding
        if measured:
            return replace(
                finding,
                outcome=NEGATIVE,
                reason=f"{finding.reason}; reported negative: amphetamine {max(measured):g} < {threshold:g} ng/mL "
                f"in the same specimen ({table.name})",
            )
        return replace(
            finding,
            outcome=NOT_INTERPRETABLE,
            reason=f"{finding.reason}; methamphetamine needs amphetamine >= {threshold:g} ng/mL in the same "
            f"specimen ({table.name}), and no confirmed amphetamine value was reported",
        )

    return [judged(f) for f in findings]


def _resolve_screens_by_confirmation(
    findings: list[AnalyteFinding],
    analytes: Catalogue = ANALYTES,
) -> list[AnalyteFinding]:
    """An initial-test positive whose drug class was confirmed and found negative is negative, as a
    lab reports it; one whose class was confirmed positive stays presumptive but is not unconfirmed."""
    negative_classes = _classes_confirmed_negative(findings, analytes)

    def resolved(finding: AnalyteFinding) -> AnalyteFinding:
        if finding.outcome != PRESUMPTIVE_POSITIVE or _drug_class(finding, analytes) not in negative_classes:
            return finding
        return replace(finding, outcome=NEGATIVE, reason=f"{finding.reason}; not confirmed: confirmation negative")

    return [resolved(f) for f in findings]


def _classes_confirmed_negative(findings: Iterable[AnalyteFinding], analytes: Catalogue = ANALYTES) -> frozenset[str]:
    by_class: dict[str, list[str]] = {}
    for finding in findings:
        if finding.method == CONFIRM:
            by_class.setdefault(_drug_class(finding, analytes), []).append(finding.outcome)
    return frozenset(name for name, outcomes in by_class.items() if all(o == NEGATIVE for o in outcomes))


def _classes_confirmed_positive(findings: Iterable[AnalyteFinding], analytes: Catalogue = ANALYTES) -> frozenset[str]:
    return frozenset(_drug_class(f, analytes) for f in findings if f.outcome == CONFIRMED_POSITIVE)


def _drug_class(finding: AnalyteFinding, analytes: Catalogue = ANALYTES) -> str:
    analyte = analytes.get(finding.analyte)
    return analyte.drug_class if analyte is not None else f"unknown:{finding.analyte}"


# --- flags -----------------------------------------------------------------------------------


def _medication_flags(
    findings: list[AnalyteFinding],
    meds: MedicationContext,
    analytes: Catalogue = ANALYTES,
) -> tuple[Flag, ...]:
    return (
        _unexpected_present(findings, meds, analytes)
        + _expected_absent(findings, meds, analytes)
        + _buprenorphine_spiking(findings, meds)
        + _methadone_spiking(findings)
    )


def _unexpected_present(
    findings: list[AnalyteFinding],
    meds: MedicationContext,
    analytes: Catalogue = ANALYTES,
) -> tuple[Flag, ...]:
    unexplained: dict[str, set[str]] = {}
    for finding in _positives(findings):
        analyte = analytes.get(finding.analyte)
        if analyte is not None and not analyte.explained_by(meds.expected):
            unexplained.setdefault(analyte.drug_class, set()).add(analyte.label)
    prescribed = ", ".join(sorted(meds.expected)) or "none"
    return tuple(
        Flag(
            UNEXPECTED_PRESENT,
            f"{drug_class}: {', '.join(sorted(labels))} not explained by the expected medications ({prescribed})",
        )
        for drug_class, labels in sorted(unexplained.items())
    )


def _expected_absent(
    findings: list[AnalyteFinding],
    meds: MedicationContext,
    analytes: Catalogue = ANALYTES,
) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    for medication in sorted(meds.expected):
        markers = adherence_markers(medication, analytes)
        # Naltrexone is tracked by its dose record; other keys without a marker cannot be judged.
        if medication in NOT_MONITORED_BY_URINE or not markers:
            continue
        tested = [f for f in findings if f.analyte in markers]
        names = "/".join(markers)
        if not tested:
            flags.append(Flag(EXPECTED_NOT_TESTED, f"{medication} expected, but the panel has no {names} result"))
        elif any(f.outcome in POSITIVE_OUTCOMES for f in tested):
            continue
        elif all(f.outcome == NEGATIVE for f in tested):
            flags.append(
                Flag(
                    EXPECTED_ABSENT,
                    f"{medication} expected, but {names} not found: possible non-adherence or diversion",
                )
            )
    return tuple(flags)


def adherence_markers(medication: str, analytes: Catalogue = ANALYTES) -> tuple[str, ...]:
    """The analytes whose presence shows the medication was taken (buprenorphine/norbuprenorphine,
    methadone/EDDP, ...); empty for a medication no urine analyte evidences."""
    return tuple(
        key
        for key, analyte in analytes.items()
        if analyte.medication == medication and key not in _NOT_ADHERENCE_MARKERS
    )


def _buprenorphine_spiking(findings: list[AnalyteFinding], meds: MedicationContext) -> tuple[Flag, ...]:
    buprenorphine = _positives(findings, "buprenorphine")
    if not buprenorphine:
        return ()
    reasons: list[str] = []
    norbuprenorphine = [f for f in findings if f.analyte == "norbuprenorphine"]
    if norbuprenorphine and all(f.outcome == NEGATIVE for f in norbuprenorphine):
        reasons.append("buprenorphine present, norbuprenorphine absent")
    ratio = _norbuprenorphine_ratio(findings)
    if ratio is not None and ratio < meds.bup_ratio_threshold:
        reasons.append(f"norbuprenorphine/buprenorphine ratio {ratio:.3g} < {meds.bup_ratio_threshold:g}")
    naloxone = [f.value for f in findings if f.analyte == "naloxone" and f.value is not None]
    high_naloxone = [value for value in naloxone if value >= meds.high_naloxone_ng_ml]
    if high_naloxone:
        reasons.append(
            f"naloxone {max(high_naloxone):g} ng/mL >= {meds.high_naloxone_ng_ml:g}, "
            "though little is absorbed when taken sublingually"
        )
    if not reasons:
        return ()
    return (Flag(POSSIBLE_SPIKING_BUPRENORPHINE, "; ".join(reasons)),)


def _norbuprenorphine_ratio(findings: list[AnalyteFinding]) -> float | None:
    """norbuprenorphine/buprenorphine from positive measured values, confirmations preferred (the
    literature ratios are mass-spectrometry ratios)."""
    buprenorphine = _best_measured(findings, "buprenorphine")
    norbuprenorphine = _best_measured(findings, "norbuprenorphine")
    if buprenorphine is None or norbuprenorphine is None or buprenorphine <= 0:
        return None
    return norbuprenorphine / buprenorphine


def _best_measured(findings: list[AnalyteFinding], analyte: str) -> float | None:
    positives = _positives(findings, analyte)
    confirmed = [f.value for f in positives if f.value is not None and f.method == CONFIRM]
    measured = confirmed or [f.value for f in positives if f.value is not None]
    return max(measured) if measured else None


def _methadone_spiking(findings: list[AnalyteFinding]) -> tuple[Flag, ...]:
    if not _positives(findings, "methadone"):
        return ()
    eddp = [f for f in findings if f.analyte == "eddp"]
    if eddp and all(f.outcome == NEGATIVE for f in eddp):
        return (Flag(POSSIBLE_SPIKING_METHADONE, "methadone present, EDDP (its metabolite) absent"),)
    return ()


def _review_flags(findings: list[AnalyteFinding], analytes: Catalogue = ANALYTES) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    confirmed_classes = _classes_confirmed_positive(findings, analytes)
    for finding in findings:
        if finding.outcome == PRESUMPTIVE_POSITIVE and _drug_class(finding, analytes) not in confirmed_classes:
            flags.append(
                Flag(
                    PRESUMPTIVE_UNCONFIRMED,
                    f"{finding.analyte} ({finding.method}): {finding.reason}; not to be reported as positive "
                    "before mass-spectrometry confirmation or a documented review",
                )
            )
        elif finding.outcome == NOT_INTERPRETABLE:
            flags.append(Flag(RESULT_NOT_INTERPRETABLE, f"{finding.analyte} ({finding.method}): {finding.reason}"))
    return tuple(flags)


def _validity_flags(validity: ValidityFinding) -> tuple[Flag, ...]:
    reasons = "; ".join(validity.reasons)
    flags: list[Flag] = []
    if validity.status != VALID:
        flags.append(Flag(f"specimen-{validity.status}", reasons))
    if validity.recollect_observed:
        flags.append(Flag(RECOLLECT_OBSERVED, "recollect under direct observation: " + reasons))
    # Tampering found by the lab is already flagged by its status; this is the collector's record.
    if validity.counts_as_refusal and validity.status not in (SUBSTITUTED, ADULTERATED):
        flags.append(Flag(COLLECTION_REFUSAL, reasons))
    if validity.incomplete:
        flags.append(Flag(VALIDITY_INCOMPLETE, reasons))
    return tuple(flags)


# --- the verdict -----------------------------------------------------------------------------


def _overall(findings: list[AnalyteFinding], validity: ValidityFinding) -> str:
    # A positive drug found in an invalid specimen stays visible as non-negative; the invalid
    # status is still flagged for the reviewer.
    if validity.counts_as_refusal:
        return REFUSAL
    if _positives(findings):
        return NON_NEGATIVE
    if validity.status == INVALID:
        return INVALID
    if not findings or any(f.outcome == NOT_INTERPRETABLE for f in findings):
        return INCOMPLETE
    return NEGATIVE


def _summary(
    overall: str, findings: list[AnalyteFinding], flags: tuple[Flag, ...], meds: MedicationContext, needs_review: bool
) -> str:
    parts = [_OVERALL_TEXT[overall]]
    positives = [f"{f.analyte} ({f.outcome})" for f in _positives(findings)]
    if positives:
        parts.append("found: " + ", ".join(positives))
    if flags:
        parts.append("flags: " + ", ".join(dict.fromkeys(flag.code for flag in flags)))
    if any(m in NOT_MONITORED_BY_URINE for m in meds.expected):
        parts.append("naltrexone is tracked by dose record, not by this urine test")
    parts.append("needs clinician review before it is final" if needs_review else "final without review")
    return "; ".join(parts) + "."


_OVERALL_TEXT: dict[str, str] = {
    REFUSAL: "Refusal to test once verified (tampering or a refusal recorded at collection)",
    NON_NEGATIVE: "Non-negative: not a positive until reviewed",
    INVALID: "Invalid specimen: no valid drug result",
    INCOMPLETE: "Incomplete: some result could not be interpreted",
    NEGATIVE: "Negative",
}


def _positives(findings: Iterable[AnalyteFinding], analyte: str | None = None) -> list[AnalyteFinding]:
    return [f for f in findings if f.outcome in POSITIVE_OUTCOMES and (analyte is None or f.analyte == analyte)]


# --- small helpers ---------------------------------------------------------------------------


def _is_positive_number(value: object) -> TypeGuard[int | float]:
    return _is_finite_number(value) and value > 0


def _plain_value(value: Any) -> float | None:
    # Only finite numbers travel in findings: NaN and infinities are not valid JSON.
    return float(value) if _is_finite_number(value) else None


def _normalised_units(units: str | None) -> str:
    return (units or "").strip().lower().replace("µ", "u").replace("μ", "u")


def _is_ng_per_ml(units: str | None) -> bool:
    """Whether a value can be compared with a table cutoff: ng/mL or an equal unit, or no unit given."""
    normalised = _normalised_units(units)
    return not normalised or normalised in _NG_PER_ML


# Re-exported so callers can build and read every input and output from this one module.
__all__ = [
    "ANALYTE_OUTCOMES",
    "BUP_RATIO_THRESHOLDS_IN_LITERATURE",
    "FLAG_CODES",
    "OVERALL_OUTCOMES",
    "AnalyteFinding",
    "AnalyteResult",
    "Flag",
    "Interpretation",
    "MedicationContext",
    "SpecimenChecks",
    "adherence_markers",
    "checks_from_results",
    "classify_analyte",
    "interpret",
]
