"""Specimen validity: was the urine dilute, substituted, adulterated or invalid?
(HHS Mandatory Guidelines (urine) validity criteria; 49 CFR 40.93, 40.95, 40.96)

Every threshold is a field of ValidityRules with its default and source, so a program can adopt
an older or a stricter rule without touching code (e.g. the older pH < 3 adulteration rule).

Order of precedence when several criteria are met, strongest first:
  substituted > adulterated > invalid > dilute > valid.
Substituted and adulterated mean tampering and count as a refusal to test once verified, so they
win; invalid means no valid drug result could be obtained, which outweighs a mere dilution. Every
criterion met is still listed in the reasons.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from itertools import pairwise
from typing import Any

from domain.checks import is_finite_number as _is_finite_number
from domain.vocab import Vocabulary


class ValidityStatus(Vocabulary):
    """What specimen validity testing says of a specimen."""

    VALID = "valid"
    DILUTE = "dilute"
    SUBSTITUTED = "substituted"
    ADULTERATED = "adulterated"
    INVALID = "invalid"


VALID = ValidityStatus.VALID
DILUTE = ValidityStatus.DILUTE
SUBSTITUTED = ValidityStatus.SUBSTITUTED
ADULTERATED = ValidityStatus.ADULTERATED
INVALID = ValidityStatus.INVALID
VALIDITY_STATUSES: tuple[str, ...] = tuple(ValidityStatus)


class RefusalGround(Vocabulary):
    """Refusals recorded by the collector during a collection (49 CFR 40.191(a)). Not appearing in time is a
    refusal too, but it leaves no specimen to interpret: the scheduler records it."""

    LEFT_BEFORE_COMPLETION = "left-before-completion"
    REFUSED_OBSERVATION = "refused-observation"
    INSUFFICIENT_SPECIMEN_UNEXPLAINED = "insufficient-specimen-unexplained"
    ADMITTED_TAMPERING = "admitted-tampering"


REFUSAL_GROUNDS: dict[str, str] = {
    RefusalGround.LEFT_BEFORE_COMPLETION: "left the collection site before the collection was complete",
    RefusalGround.REFUSED_OBSERVATION: "refused a directly observed collection",
    RefusalGround.INSUFFICIENT_SPECIMEN_UNEXPLAINED: "insufficient specimen without a medical explanation",
    RefusalGround.ADMITTED_TAMPERING: "admitted adulterating or substituting the specimen",
}

_SOURCE = (
    "HHS Mandatory Guidelines (urine) validity criteria and 49 CFR 40.93/40.95/40.96; "
    "negative-dilute recollection at creatinine 2-5 mg/dL (49 CFR 40.197); "
    "collection temperature 90-100 °F within 4 minutes (49 CFR 40.65)"
)


def _require_order(label: str, *values: float) -> None:
    if any(low > high for low, high in pairwise(values)):
        raise ValueError(f"validity rules: {label} must be in increasing order, got {values}")


@dataclass(frozen=True)
class SpecimenChecks:
    """Validity measurements of one specimen. None means "not measured"."""

    creatinine_mg_dl: float | None = None
    specific_gravity: float | None = None
    ph: float | None = None
    nitrite_ug_ml: float | None = None
    oxidant_detected: bool | None = None
    surfactant_detected: bool | None = None
    # Read by the collector within 4 minutes of the void: a reading, or the cup strip's verdict.
    temperature_f: float | None = None
    temperature_in_range: bool | None = None
    # The lab reports an interfering substance that prevents a valid drug result.
    interference_detected: bool | None = None
    # A refusal the collector recorded during this collection, one of REFUSAL_GROUNDS.
    refusal_ground: str | None = None

    def __post_init__(self) -> None:
        if self.refusal_ground is not None and self.refusal_ground not in REFUSAL_GROUNDS:
            raise ValueError(
                f"unknown refusal ground {self.refusal_ground!r}; known grounds are {', '.join(REFUSAL_GROUNDS)}"
            )


@dataclass(frozen=True)
class ValidityRules:
    """Validity thresholds. Each name says which side of the threshold is included."""

    version: str = "HHS-2025"
    source: str = _SOURCE
    # Dilute: creatinine >= 2 and < 20 mg/dL, with specific gravity > 1.0010 and < 1.0030.
    dilute_creatinine_min_mg_dl: float = 2.0
    dilute_creatinine_below_mg_dl: float = 20.0
    dilute_sg_above: float = 1.0010
    dilute_sg_below: float = 1.0030
    # Substituted: creatinine < 2 mg/dL with specific gravity <= 1.0010 or >= 1.0200. The same
    # thresholds define "creatinine and specific gravity inconsistent" (invalid): creatinine < 2
    # with SG between them, or SG <= 1.0010 with creatinine >= 2 (HHS).
    substituted_creatinine_below_mg_dl: float = 2.0
    substituted_sg_at_most: float = 1.0010
    substituted_sg_at_least: float = 1.0200
    # Adulterated: nitrite >= 500 µg/mL; pH < 4 (the older rule and the NRC say < 3) or >= 11.
    adulterated_nitrite_at_least_ug_ml: float = 500.0
    adulterated_ph_below: float = 4.0
    adulterated_ph_at_least: float = 11.0
    # Invalid: pH from the adulteration threshold up to < 4.5, or >= 9 and < 11; nitrite >= 200
    # and < 500 µg/mL.
    invalid_ph_low_below: float = 4.5
    invalid_ph_high_at_least: float = 9.0
    invalid_nitrite_at_least_ug_ml: float = 200.0
    # A negative-dilute specimen with creatinine 2-5 mg/dL is recollected at once, observed.
    observed_recollection_creatinine_at_most_mg_dl: float = 5.0
    # Collection-site temperature range, inclusive.
    temperature_min_f: float = 90.0
    temperature_max_f: float = 100.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and not _is_finite_number(value):
                raise ValueError(f"validity rule {f.name} must be a finite number, got {value!r}")
        _require_order(
            "pH thresholds",
            self.adulterated_ph_below,
            self.invalid_ph_low_below,
            self.invalid_ph_high_at_least,
            self.adulterated_ph_at_least,
        )
        _require_order(
            "nitrite thresholds", self.invalid_nitrite_at_least_ug_ml, self.adulterated_nitrite_at_least_ug_ml
        )
        _require_order("dilute creatinine range", self.dilute_creatinine_min_mg_dl, self.dilute_creatinine_below_mg_dl)
        _require_order("dilute specific gravity range", self.dilute_sg_above, self.dilute_sg_below)
        _require_order("substituted specific gravity", self.substituted_sg_at_most, self.substituted_sg_at_least)
        _require_order("temperature range", self.temperature_min_f, self.temperature_max_f)


DEFAULT_VALIDITY_RULES = ValidityRules()

# The rule before the current guidelines, still named by the NRC: adulterated only below pH 3,
# so pH 3 to < 4.5 is invalid rather than adulterated.
OLDER_PH_VALIDITY_RULES = replace(
    DEFAULT_VALIDITY_RULES,
    version="older-pH-3",
    source=_SOURCE + "; adulterated pH below 3 (older rule and NRC; check)",
    adulterated_ph_below=3.0,
)


@dataclass(frozen=True)
class ValidityFinding:
    status: str  # one of VALIDITY_STATUSES
    reasons: tuple[str, ...]
    recollect_observed: bool
    # Substituted, adulterated, or a collector-recorded refusal: a refusal to test once the reviewer
    # has verified it.
    counts_as_refusal: bool
    # Dilute with creatinine 2-5 mg/dL: if the drug result is negative, recollect observed at once
    # (see apply_drug_result).
    low_creatinine_dilute: bool = False
    # Some check was unreadable, or creatinine came without the specific gravity it needs.
    incomplete: bool = False
    rules_version: str = DEFAULT_VALIDITY_RULES.version


def classify_validity(checks: SpecimenChecks | None, rules: ValidityRules = DEFAULT_VALIDITY_RULES) -> ValidityFinding:
    """Classify a specimen from its validity checks. Missing checks are not held against it."""
    checks = checks or SpecimenChecks()
    notes: list[str] = []
    creatinine = _reading("creatinine", checks.creatinine_mg_dl, notes)
    gravity = _reading("specific gravity", checks.specific_gravity, notes)
    ph = _reading("pH", checks.ph, notes)
    nitrite = _reading("nitrite", checks.nitrite_ug_ml, notes)

    substituted = _substitution_reasons(creatinine, gravity, rules)
    adulterated = _adulteration_reasons(checks, ph, nitrite, rules)
    invalid = _invalidity_reasons(checks, creatinine, gravity, ph, nitrite, rules)
    dilute = _dilution_reasons(creatinine, gravity, rules)
    notes.extend(_missing_gravity_notes(creatinine, gravity, rules))
    temperature = _temperature_reasons(checks, rules)
    refusal = _collector_refusal_reasons(checks)

    status = _strongest_status(substituted, adulterated, invalid, dilute)
    recollection_limit = rules.observed_recollection_creatinine_at_most_mg_dl
    low_creatinine = bool(dilute) and creatinine is not None and creatinine <= recollection_limit
    return ValidityFinding(
        status=status,
        reasons=tuple(substituted + adulterated + invalid + dilute + notes + temperature + refusal),
        recollect_observed=bool(temperature),
        counts_as_refusal=status in (SUBSTITUTED, ADULTERATED) or bool(refusal),
        low_creatinine_dilute=low_creatinine,
        incomplete=bool(notes) or _missing_gravity(creatinine, gravity, rules),
        rules_version=rules.version,
    )


def apply_drug_result(finding: ValidityFinding, all_negative: bool) -> ValidityFinding:
    """Add what depends on the drug result: a negative-dilute specimen with creatinine 2-5 mg/dL
    is recollected immediately under direct observation."""
    if not (all_negative and finding.status == DILUTE and finding.low_creatinine_dilute):
        return finding
    reason = "negative-dilute with creatinine 2-5 mg/dL: immediate recollection under direct observation"
    if reason in finding.reasons:
        return finding
    return replace(finding, recollect_observed=True, reasons=finding.reasons + (reason,))


# --- the criteria ----------------------------------------------------------------------------


def _substitution_reasons(creatinine: float | None, gravity: float | None, rules: ValidityRules) -> list[str]:
    if creatinine is None or gravity is None or creatinine >= rules.substituted_creatinine_below_mg_dl:
        return []
    if gravity <= rules.substituted_sg_at_most or gravity >= rules.substituted_sg_at_least:
        return [
            f"substituted: creatinine {creatinine:g} mg/dL < {rules.substituted_creatinine_below_mg_dl:g} "
            f"with specific gravity {gravity:.4f} "
            f"(<= {rules.substituted_sg_at_most:.4f} or >= {rules.substituted_sg_at_least:.4f})"
        ]
    return []


def _adulteration_reasons(
    checks: SpecimenChecks, ph: float | None, nitrite: float | None, rules: ValidityRules
) -> list[str]:
    reasons = []
    if nitrite is not None and nitrite >= rules.adulterated_nitrite_at_least_ug_ml:
        reasons.append(f"adulterated: nitrite {nitrite:g} µg/mL >= {rules.adulterated_nitrite_at_least_ug_ml:g}")
    if ph is not None and ph < rules.adulterated_ph_below:
        reasons.append(f"adulterated: pH {ph:g} < {rules.adulterated_ph_below:g}")
    if ph is not None and ph >= rules.adulterated_ph_at_least:
        reasons.append(f"adulterated: pH {ph:g} >= {rules.adulterated_ph_at_least:g}")
    if checks.oxidant_detected is True:
        reasons.append("adulterated: exogenous oxidant detected")
    if checks.surfactant_detected is True:
        reasons.append("adulterated: surfactant detected")
    return reasons


def _invalidity_reasons(
    checks: SpecimenChecks,
    creatinine: float | None,
    gravity: float | None,
    ph: float | None,
    nitrite: float | None,
    rules: ValidityRules,
) -> list[str]:
    reasons = []
    if ph is not None and rules.adulterated_ph_below <= ph < rules.invalid_ph_low_below:
        reasons.append(f"invalid: pH {ph:g} in [{rules.adulterated_ph_below:g}, {rules.invalid_ph_low_below:g})")
    if ph is not None and rules.invalid_ph_high_at_least <= ph < rules.adulterated_ph_at_least:
        reasons.append(f"invalid: pH {ph:g} in [{rules.invalid_ph_high_at_least:g}, {rules.adulterated_ph_at_least:g})")
    if (
        nitrite is not None
        and rules.invalid_nitrite_at_least_ug_ml <= nitrite < rules.adulterated_nitrite_at_least_ug_ml
    ):
        reasons.append(
            f"invalid: nitrite {nitrite:g} µg/mL in [{rules.invalid_nitrite_at_least_ug_ml:g}, "
            f"{rules.adulterated_nitrite_at_least_ug_ml:g})"
        )
    if creatinine is not None and gravity is not None:
        too_little_creatinine = creatinine < rules.substituted_creatinine_below_mg_dl
        if too_little_creatinine and rules.substituted_sg_at_most < gravity < rules.substituted_sg_at_least:
            reasons.append(
                f"invalid: creatinine {creatinine:g} mg/dL and specific gravity {gravity:.4f} are inconsistent "
                "(creatinine says substituted, specific gravity does not)"
            )
        if not too_little_creatinine and gravity <= rules.substituted_sg_at_most:
            reasons.append(
                f"invalid: creatinine {creatinine:g} mg/dL and specific gravity {gravity:.4f} are inconsistent "
                "(specific gravity says substituted, creatinine does not)"
            )
    if creatinine is not None and gravity is None and creatinine < rules.substituted_creatinine_below_mg_dl:
        # Without specific gravity a substitution cannot be told apart from an invalid specimen.
        reasons.append(
            f"invalid: creatinine {creatinine:g} mg/dL < {rules.substituted_creatinine_below_mg_dl:g} "
            "but no specific gravity to classify it"
        )
    if checks.interference_detected is True:
        reasons.append("invalid: interference reported by the lab")
    return reasons


def _dilution_reasons(creatinine: float | None, gravity: float | None, rules: ValidityRules) -> list[str]:
    if creatinine is None or gravity is None:
        return []
    if (
        rules.dilute_creatinine_min_mg_dl <= creatinine < rules.dilute_creatinine_below_mg_dl
        and rules.dilute_sg_above < gravity < rules.dilute_sg_below
    ):
        return [f"dilute: creatinine {creatinine:g} mg/dL with specific gravity {gravity:.4f}"]
    return []


def _missing_gravity_notes(creatinine: float | None, gravity: float | None, rules: ValidityRules) -> list[str]:
    # Below 2 mg/dL this is already an invalid reason; between 2 and 20 it leaves dilution unknown.
    if gravity is None and creatinine is not None:
        if rules.substituted_creatinine_below_mg_dl <= creatinine < rules.dilute_creatinine_below_mg_dl:
            return [f"not assessed: creatinine {creatinine:g} mg/dL without specific gravity, dilution unknown"]
    return []


def _missing_gravity(creatinine: float | None, gravity: float | None, rules: ValidityRules) -> bool:
    return gravity is None and creatinine is not None and creatinine < rules.dilute_creatinine_below_mg_dl


def _temperature_reasons(checks: SpecimenChecks, rules: ValidityRules) -> list[str]:
    reading = checks.temperature_f
    reasons = []
    if _is_finite_number(reading) and not rules.temperature_min_f <= reading <= rules.temperature_max_f:
        reasons.append(
            f"temperature {reading:g} °F outside {rules.temperature_min_f:g}-{rules.temperature_max_f:g} °F: "
            "recollect under direct observation"
        )
    # A strip saying "out of range" counts even when a reading says otherwise: recollecting costs
    # less than letting a possibly substituted specimen through.
    elif checks.temperature_in_range is False:
        reasons.append("temperature out of range at collection: recollect under direct observation")
    return reasons


def _collector_refusal_reasons(checks: SpecimenChecks) -> list[str]:
    if checks.refusal_ground is None:
        return []
    return [f"refusal recorded at collection: {REFUSAL_GROUNDS[checks.refusal_ground]}"]


def _strongest_status(substituted: list[str], adulterated: list[str], invalid: list[str], dilute: list[str]) -> str:
    ranked = ((SUBSTITUTED, substituted), (ADULTERATED, adulterated), (INVALID, invalid), (DILUTE, dilute))
    for status, reasons in ranked:
        if reasons:
            return status
    return VALID


def _reading(name: str, value: Any, notes: list[str]) -> float | None:
    """A usable measurement, or None. An unreadable one (NaN, infinite) is noted, not guessed at."""
    if value is None:
        return None
    if _is_finite_number(value):
        return float(value)
    notes.append(f"not assessed: {name} value {value!r} is not a finite number")
    return None
