"""What a reported positive rests on: a confirmatory laboratory method, a presumptive screen, a witnessed
admission or an evidential breath test, and how a breath alcohol test is read against the program's cutoff.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox (the screening workflow reads
a breath test with it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from domain.checks import is_finite_number
from domain.cutoffs import INITIAL_METHODS
from domain.interpretation import POSITIVE_OUTCOMES, AnalyteFinding, AnalyteOutcome


class Basis(StrEnum):
    """What a reported positive rests on: one closed vocabulary for every report.

    Forensic testing practice (All Rise Adult Treatment Court Best Practice Standards, 2nd ed. 2023 rev.,
    Standard VII; 49 CFR 40.87 and 40.97 for the federal workplace program): an immunoassay screen is
    presumptive until a second, more specific method (GC-MS, LC-MS/MS) confirms it; an evidential breath
    test confirms a screening breath test taken at least 15 minutes earlier (49 CFR 40.251).
    """

    LABORATORY_CONFIRMED = "laboratory-confirmed"  # a confirmatory method result (GC-MS, LC-MS/MS)
    PRESUMPTIVE_SCREEN = "presumptive-screen"  # immunoassay only: never reported as confirmed
    ADMITTED_USE = "admitted-use"  # the participant's documented admission, with who witnessed it
    BREATH_ALCOHOL_CONFIRMED = "breath-alcohol-confirmed"  # evidential second test after a 15-minute wait


BASES: tuple[str, ...] = tuple(b.value for b in Basis)
# Bases under which a positive is reported as confirmed. An admission is a positive, not a confirmation.
CONFIRMING_BASES: frozenset[str] = frozenset({Basis.LABORATORY_CONFIRMED, Basis.BREATH_ALCOHOL_CONFIRMED})
BREATH_CONFIRMATION_WAIT_S = 15 * 60  # 49 CFR 40.251(a)(1): at least 15 minutes before the confirmation test
DEFAULT_BAC_CUTOFF = 0.02  # g/210 L; 49 CFR 40.23 treats 0.02 and above as a result that has consequences

PRESUMPTIVE_WORDING = (
    "presumptive positive: an immunoassay screen only, not confirmed by a second method; it is not proof of use"
)


def lab_basis(findings: Iterable[AnalyteFinding]) -> Basis:
    """The basis of a positive lab result from its findings (domain.interpretation.Interpretation.findings):
    laboratory-confirmed only when every positive analyte was confirmed by a confirmatory method."""
    positives = [f for f in findings if f.outcome in POSITIVE_OUTCOMES]
    if positives and all(f.outcome == AnalyteOutcome.CONFIRMED_POSITIVE for f in positives):
        return Basis.LABORATORY_CONFIRMED
    return Basis.PRESUMPTIVE_SCREEN


def to_confirm(findings: Iterable[AnalyteFinding]) -> list[str]:
    """The analytes a request for confirmation names: the positives that rest on an initial (screen or
    point-of-care) method; every positive when none does (the clinician asks the lab to confirm anyway)."""
    positives = [f for f in findings if f.outcome in POSITIVE_OUTCOMES]
    presumptive = [f.analyte for f in positives if f.method in INITIAL_METHODS]
    return sorted(set(presumptive or [f.analyte for f in positives]))


def answers_confirmation(findings: Iterable[AnalyteFinding], analytes: Iterable[str]) -> bool:
    """Whether a result answers a request to confirm `analytes`: each was tested by a confirmatory method
    (GC-MS, LC-MS/MS: positive or not); with no analyte named, any confirmatory finding answers it."""
    confirmed = {f.analyte for f in findings if f.method not in INITIAL_METHODS}
    wanted = set(analytes)
    return wanted <= confirmed if wanted else bool(confirmed)


@dataclass(frozen=True)
class BreathResult:
    outcome: str  # negative | positive
    basis: str | None  # breath-alcohol-confirmed, presumptive-screen (no valid confirmation) or None (negative)
    bac: float  # the result that counts: the confirmation test when there is a valid one
    reason: str
    device_id: str | None = None  # the evidential breath testing device (the collection's), when recorded


def breath_alcohol_result(
    screen_bac: float, confirmation_bac: float | None, seconds_between: float | None, cutoff: float = DEFAULT_BAC_CUTOFF
) -> BreathResult:
    """A breath alcohol test read against the program's cutoff. A screen at or above the cutoff needs an
    evidential confirmation test at least 15 minutes later (49 CFR 40.251); the confirmation result counts."""
    for name, value in (("screen_bac", screen_bac), ("cutoff", cutoff)):
        if not is_finite_number(value) or value < 0:
            raise ValueError(f"{name} must be a BAC in g/210 L, 0 or more; got {value!r}")
    if screen_bac < cutoff:
        return BreathResult("negative", None, screen_bac, f"screen {screen_bac:.3f} below the cutoff {cutoff:.3f}")
    if confirmation_bac is None or seconds_between is None or seconds_between < BREATH_CONFIRMATION_WAIT_S:
        why = "no confirmation test" if confirmation_bac is None else "confirmation test taken before 15 minutes"
        return BreathResult("positive", Basis.PRESUMPTIVE_SCREEN, screen_bac, f"screen {screen_bac:.3f}: {why}")
    if confirmation_bac < cutoff:
        return BreathResult(
            "negative", None, confirmation_bac, f"confirmation {confirmation_bac:.3f} below the cutoff {cutoff:.3f}"
        )
    return BreathResult(
        "positive",
        Basis.BREATH_ALCOHOL_CONFIRMED,
        confirmation_bac,
        f"confirmed {confirmation_bac:.3f} at or above the cutoff {cutoff:.3f}",
    )
