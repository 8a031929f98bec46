"""Plausibility bounds on doses: a dose above the usual maximum needs a clinician's override with a
reason; an implausible dose is refused whatever the reason; zero, negative, NaN and infinity never pass."""

from __future__ import annotations

import math

import pytest

from domain import medication as med
from tests.domain.test_medication import START, injection_order, methadone_order, through_temporal


@pytest.mark.parametrize("dose", [1e308, 2000.0, float("inf"), 0.0, -60.0, float("nan")])
def test_implausible_methadone_doses_are_refused_even_with_an_override(dose):
    with pytest.raises(ValueError, match="dose"):
        methadone_order(dose=dose, dose_override_reason="patient on 180 mg at the previous OTP")


def test_a_dose_above_the_usual_maximum_needs_a_reason():
    with pytest.raises(med.DoseOverrideRequired, match="override_reason") as info:
        methadone_order(dose=150.0)
    assert "120" in str(info.value) and "methadone" in str(info.value)
    with pytest.raises(med.DoseOverrideRequired):
        methadone_order(dose=150.0, dose_override_reason="   ")
    order = methadone_order(dose=150.0, dose_override_reason="rapid metaboliser; trough level documented")
    assert order.dose_override_reason.startswith("rapid metaboliser")
    assert through_temporal(order) == order


@pytest.mark.parametrize(
    ("drug", "dose", "unit", "needs_override"),
    [
        ("methadone", 120.0, "mg", False),
        ("methadone", 121.0, "mg", True),
        ("methadone", 12.0, "mL", False),  # 10 mg/mL concentrate: 120 mg
        ("methadone", 13.0, "mL", True),
        ("buprenorphine", 24.0, "mg", False),
        ("buprenorphine", 24000.0, "mcg", False),
        ("buprenorphine", 28.0, "mg", True),
        ("buprenorphine-naloxone", 32.0, "mg", True),
        ("naltrexone-oral", 50.0, "mg", False),
        ("naltrexone-oral", 150.0, "mg", False),
        ("naltrexone-oral", 200.0, "mg", True),
        ("naltrexone-er-injection", 380.0, "mg", False),
        ("naltrexone-er-injection", 400.0, "mg", True),
        ("other", 500.0, "mg", False),
    ],
)
def test_usual_maximum_per_drug(drug, dose, unit, needs_override):
    if needs_override:
        with pytest.raises(med.DoseOverrideRequired):
            med.check_dose(drug, dose, unit)
        assert med.check_dose(drug, dose, unit, override_reason="documented") is not None
    else:
        assert med.check_dose(drug, dose, unit) is None


@pytest.mark.parametrize(
    ("drug", "dose", "unit"),
    [
        ("methadone", 1001.0, "mg"),
        ("methadone", 101.0, "mL"),
        ("buprenorphine", 65.0, "mg"),
        ("naltrexone-er-injection", 761.0, "mg"),
        ("other", 1e12, "mg"),
        ("other", 1e12, "mcg"),
    ],
)
def test_ceiling_refuses_with_or_without_a_reason(drug, dose, unit):
    with pytest.raises(ValueError, match="no override") as info:
        med.check_dose(drug, dose, unit, override_reason="documented")
    assert not isinstance(info.value, med.DoseOverrideRequired)


def test_initial_methadone_dose_over_50_mg_needs_documentation():
    # 42 CFR 8.12(h)(3)(ii): the first day's dose above 50 mg needs documented clinical need.
    assert med.check_dose("methadone", 50.0, "mg", initial=True) is None
    with pytest.raises(med.DoseOverrideRequired, match="first day"):
        med.check_dose("methadone", 60.0, "mg", initial=True)
    assert med.check_dose("methadone", 60.0, "mg") is None


def test_every_drug_has_limits_with_a_source():
    assert set(med.DOSE_LIMITS) == set(med.DRUGS)
    for limit in med.DOSE_LIMITS.values():
        assert limit.source.strip()
        assert math.isfinite(limit.ceiling_mg)
        assert limit.usual_max_mg is None or limit.usual_max_mg < limit.ceiling_mg


def test_a_dispense_of_an_implausible_dose_is_refused_before_matching():
    order = injection_order()
    huge = med.Dispense(
        kind="injection", day=START.isoformat(), dose=1e308, unit="mg", lot="L1", site="deltoid", actor="rn-1"
    )
    with pytest.raises(med.DispenseRefused) as info:
        med.validate_dispense(order, "active", START, huge, False, 0)
    assert info.value.code == med.INVALID and "dose" in info.value.reason and "no override" in info.value.reason
    with pytest.raises(ValueError, match="dose must be a positive number"):
        med.Dispense(kind="observed-dose", day=START.isoformat(), dose=float("inf"), unit="mg", actor="rn-1")
    assert methadone_order().dose_override_reason is None
