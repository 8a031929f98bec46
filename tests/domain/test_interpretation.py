"""Cutoffs (HHS urine guidelines, 49 CFR 40.87), validity (49 CFR 40.93-40.96), medications, LOINC codes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import temporalio.converter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.analytes import (
    ANALYTES,
    DEFAULT_CODE_MAP,
    MEDICATIONS,
    local_code_map,
    local_system,
    map_code,
    unknown_analytes,
)
from domain.cutoffs import (
    CLINICAL_DEFAULT,
    CONFIRM,
    DEFAULT_TABLES,
    DOT_49CFR40,
    HHS_2025,
    POC,
    SCREEN,
    CutoffTable,
    cutoff_for,
    get_table,
    table_from_dict,
    table_to_dict,
)
from domain.interpretation import (
    BUP_RATIO_THRESHOLDS_IN_LITERATURE,
    COLLECTION_REFUSAL,
    CONFIRMED_POSITIVE,
    EXPECTED_ABSENT,
    EXPECTED_NOT_TESTED,
    FLAG_CODES,
    INCOMPLETE,
    NEGATIVE,
    NON_NEGATIVE,
    NOT_INTERPRETABLE,
    OVERALL_OUTCOMES,
    POSSIBLE_SPIKING_BUPRENORPHINE,
    POSSIBLE_SPIKING_METHADONE,
    PRESUMPTIVE_POSITIVE,
    PRESUMPTIVE_UNCONFIRMED,
    RECOLLECT_OBSERVED,
    REFUSAL,
    RESULT_NOT_INTERPRETABLE,
    SPECIMEN_ADULTERATED,
    SPECIMEN_DILUTE,
    SPECIMEN_INVALID,
    SPECIMEN_SUBSTITUTED,
    UNEXPECTED_PRESENT,
    VALIDITY_INCOMPLETE,
    AnalyteResult,
    Interpretation,
    MedicationContext,
    classify_analyte,
    interpret,
)
from domain.validity import (
    ADULTERATED,
    DEFAULT_VALIDITY_RULES,
    DILUTE,
    INVALID,
    OLDER_PH_VALIDITY_RULES,
    REFUSAL_GROUNDS,
    SUBSTITUTED,
    VALID,
    SpecimenChecks,
    ValidityRules,
    apply_drug_result,
    classify_validity,
)
from store.shapes import typed

HHS = get_table(HHS_2025)
DOT = get_table(DOT_49CFR40)
CLINICAL = get_table(CLINICAL_DEFAULT)
NO_MEDS = MedicationContext()
BUP = MedicationContext(frozenset({"buprenorphine"}))
METHADONE = MedicationContext(frozenset({"methadone"}))
NORMAL = SpecimenChecks(creatinine_mg_dl=80.0, specific_gravity=1.015, ph=6.0, nitrite_ug_ml=0.0)


def screen(analyte: str, value: float | None = None, **kw) -> AnalyteResult:
    return AnalyteResult(analyte, value, units="ng/mL", method=SCREEN, **kw)


def confirm(analyte: str, value: float | None = None, **kw) -> AnalyteResult:
    return AnalyteResult(analyte, value, units="ng/mL", method=CONFIRM, **kw)


def codes(interpretation) -> list[str]:
    return [flag.code for flag in interpretation.flags]


def just_below(cutoff: float) -> float:
    return math.nextafter(cutoff, 0.0)


# --- §2 cutoff tables --------------------------------------------------------------------------

# The HHS urine cutoff table, written out again so a typo in either place shows.
HHS_INITIAL_BY_ROW = {
    ("thca",): 50,
    ("benzoylecgonine",): 150,
    ("codeine", "morphine", "opiates"): 2000,
    ("hydrocodone", "hydromorphone"): 300,
    ("oxycodone", "oxymorphone"): 100,
    ("6am",): 10,
    ("pcp",): 25,
    ("fentanyl",): 1,
    ("amphetamine", "methamphetamine", "amphetamines"): 500,
    ("mdma", "mda"): 500,
}
HHS_CONFIRM = {
    "thca": 15,
    "benzoylecgonine": 100,
    "codeine": 2000,
    "morphine": 4000,
    "hydrocodone": 100,
    "hydromorphone": 100,
    "oxycodone": 100,
    "oxymorphone": 100,
    "6am": 10,
    "pcp": 25,
    "fentanyl": 1,
    "norfentanyl": 1,
    "amphetamine": 250,
    "methamphetamine": 250,
    "mdma": 250,
    "mda": 250,
}
HHS_INITIAL = {analyte: cutoff for row, cutoff in HHS_INITIAL_BY_ROW.items() for analyte in row}


def test_hhs_table_holds_the_reference_cutoffs():
    for analyte, cutoff in HHS_INITIAL.items():
        assert cutoff_for(HHS, analyte, SCREEN) == cutoff, analyte
        assert cutoff_for(HHS, analyte, POC) == cutoff, analyte
    assert HHS.confirm == {analyte: float(cutoff) for analyte, cutoff in HHS_CONFIRM.items()}
    assert HHS.version == "2025-07-07" and "HHS" in HHS.source


@pytest.mark.parametrize("method", [SCREEN, POC])
@pytest.mark.parametrize(("analyte", "cutoff"), sorted(HHS_INITIAL.items()))
def test_initial_cutoff_boundaries(analyte, cutoff, method):
    def outcome(value):
        return classify_analyte(AnalyteResult(analyte, value, units="ng/mL", method=method), HHS).outcome

    assert outcome(just_below(cutoff)) == NEGATIVE
    assert outcome(cutoff) == PRESUMPTIVE_POSITIVE
    assert outcome(cutoff + 1) == PRESUMPTIVE_POSITIVE


@pytest.mark.parametrize(("analyte", "cutoff"), sorted(HHS_CONFIRM.items()))
def test_confirmatory_cutoff_boundaries(analyte, cutoff):
    assert classify_analyte(confirm(analyte, just_below(cutoff)), HHS).outcome == NEGATIVE
    at = classify_analyte(confirm(analyte, cutoff), HHS)
    assert (at.outcome, at.cutoff_used, at.cutoff_source) == (CONFIRMED_POSITIVE, cutoff, HHS_2025)
    assert classify_analyte(confirm(analyte, cutoff + 1), HHS).outcome == CONFIRMED_POSITIVE


def test_lab_cutoff_wins_over_the_table():
    # Clinical labs screen opiates at 300; the HHS table says 2000.
    with_lab = classify_analyte(screen("opiates", 300, lab_cutoff=300), HHS)
    assert (with_lab.outcome, with_lab.cutoff_used, with_lab.cutoff_source) == (PRESUMPTIVE_POSITIVE, 300, "lab")
    assert classify_analyte(screen("opiates", 299, lab_cutoff=300), HHS).outcome == NEGATIVE
    assert classify_analyte(screen("opiates", 300), HHS).outcome == NEGATIVE
    # A lab cutoff above the table's counts too.
    assert classify_analyte(confirm("thca", 40, lab_cutoff=50), HHS).outcome == NEGATIVE


def test_unusable_lab_cutoff_is_not_replaced_by_a_guess():
    for bad in (0.0, -5.0, float("nan")):
        assert classify_analyte(screen("opiates", 3000, lab_cutoff=bad), HHS).outcome == NOT_INTERPRETABLE


def test_dot_confirms_morphine_at_2000_and_has_no_fentanyl():
    morphine = confirm("morphine", 2500)
    assert classify_analyte(morphine, HHS).outcome == NEGATIVE
    assert classify_analyte(morphine, DOT).outcome == CONFIRMED_POSITIVE
    assert cutoff_for(DOT, "morphine", CONFIRM) == 2000 and cutoff_for(HHS, "morphine", CONFIRM) == 4000
    assert cutoff_for(DOT, "fentanyl", SCREEN) is None and cutoff_for(DOT, "fentanyl", CONFIRM) is None
    assert classify_analyte(confirm("fentanyl", 3), DOT).outcome == NOT_INTERPRETABLE
    # Behind DOT, the clinical fallback supplies a fentanyl cutoff, and says so.
    fallback = classify_analyte(confirm("fentanyl", 3), DOT, CLINICAL)
    assert (fallback.outcome, fallback.cutoff_source) == (CONFIRMED_POSITIVE, CLINICAL_DEFAULT)


def test_clinical_default_table_marks_its_guesses_and_has_the_reference_examples():
    assert "(check)" in CLINICAL.source
    for analyte, cutoff in {"benzodiazepines": 200, "cocaine": 300, "opiates": 300, "fentanyl": 5}.items():
        assert cutoff_for(CLINICAL, analyte, SCREEN) == cutoff
    for analyte in ("buprenorphine", "norbuprenorphine", "methadone", "eddp"):
        assert cutoff_for(CLINICAL, analyte, SCREEN) and cutoff_for(CLINICAL, analyte, CONFIRM)


def test_table_lookup_copies_and_rejects_unknown_names():
    table = get_table(HHS_2025)
    table.initial["thca"] = 1.0
    assert get_table(HHS_2025).initial["thca"] == 50
    with pytest.raises(ValueError, match="unknown cutoff table"):
        get_table("no-such-table")
    assert table_from_dict(json.loads(json.dumps(table_to_dict(DEFAULT_TABLES[DOT_49CFR40])))) == DOT
    with pytest.raises(ValueError):
        CutoffTable("x", "1", "test", initial={"thca": -1.0}, confirm={})


def test_a_programs_own_table_is_used_by_name():
    lab_table = CutoffTable("acme-2024", "2024", "Acme lab menu", initial={"opiates": 300.0}, confirm={})
    tables = {**DEFAULT_TABLES, lab_table.name: lab_table}
    result = interpret([screen("opiates", 350)], NORMAL, NO_MEDS, "acme-2024", tables=tables)
    assert result.findings[0].cutoff_source == "acme-2024" and result.overall == NON_NEGATIVE


def test_qualitative_calls():
    assert classify_analyte(screen("cocaine", qualitative="POS"), HHS).outcome == PRESUMPTIVE_POSITIVE
    assert classify_analyte(confirm("benzoylecgonine", qualitative="Positive"), HHS).outcome == CONFIRMED_POSITIVE
    assert classify_analyte(screen("cocaine", qualitative="NEG"), HHS).outcome == NEGATIVE
    assert classify_analyte(screen("cocaine", qualitative="not detected"), HHS).outcome == NEGATIVE
    assert classify_analyte(screen("cocaine", qualitative="SEE NOTE"), HHS).outcome == NOT_INTERPRETABLE
    assert classify_analyte(screen("cocaine"), HHS).outcome == NOT_INTERPRETABLE
    # A call that contradicts the number is a messy feed: review, not a guess.
    assert classify_analyte(screen("cocaine", 400, qualitative="NEG"), HHS).outcome == NOT_INTERPRETABLE
    assert classify_analyte(screen("cocaine", 400, qualitative="POS"), HHS).outcome == PRESUMPTIVE_POSITIVE


def test_point_of_care_cup_positive_is_only_presumptive():
    cup = AnalyteResult("cocaine", None, "POS", None, None, POC)
    result = interpret([cup], NORMAL, NO_MEDS)
    assert result.findings[0].outcome == PRESUMPTIVE_POSITIVE
    assert PRESUMPTIVE_UNCONFIRMED in codes(result)
    assert result.needs_review and not result.may_finalize_without_review


def test_units_that_are_not_ng_per_ml_are_not_compared_with_a_table():
    assert classify_analyte(AnalyteResult("thca", 60, units="ug/mL", method=SCREEN), HHS).outcome == NOT_INTERPRETABLE
    assert classify_analyte(AnalyteResult("thca", 60, units="µg/L", method=SCREEN), HHS).outcome == PRESUMPTIVE_POSITIVE
    # With the lab's own cutoff both numbers come from the same report.
    ethanol = AnalyteResult("ethanol", 0.05, units="g/dL", lab_cutoff=0.02)
    assert classify_analyte(ethanol, HHS).outcome == PRESUMPTIVE_POSITIVE


def test_unknown_analyte_and_method():
    assert classify_analyte(screen("kratom", 100), HHS).outcome == NOT_INTERPRETABLE
    with pytest.raises(ValueError):
        AnalyteResult("thca", 10.0, method="guess")


# --- methamphetamine needs amphetamine ---------------------------------------------------------


def test_methamphetamine_positive_only_with_amphetamine_at_least_100():
    below = interpret([confirm("methamphetamine", 600), confirm("amphetamine", 99)], NORMAL, NO_MEDS)
    meth = below.findings[0]
    assert meth.outcome == NEGATIVE and "amphetamine 99 < 100" in meth.reason
    assert below.overall == NEGATIVE

    at = interpret([confirm("methamphetamine", 600), confirm("amphetamine", 100)], NORMAL, NO_MEDS)
    # Amphetamine itself (100 < 250) is negative, yet it is enough for methamphetamine.
    assert [f.outcome for f in at.findings] == [CONFIRMED_POSITIVE, NEGATIVE]
    assert at.overall == NON_NEGATIVE

    above = interpret([confirm("methamphetamine", 600), confirm("amphetamine", 300)], NORMAL, NO_MEDS)
    assert [f.outcome for f in above.findings] == [CONFIRMED_POSITIVE, CONFIRMED_POSITIVE]


def test_methamphetamine_without_an_amphetamine_value_goes_to_review():
    result = interpret([confirm("methamphetamine", 600)], NORMAL, NO_MEDS)
    assert result.findings[0].outcome == NOT_INTERPRETABLE
    assert result.overall == INCOMPLETE and RESULT_NOT_INTERPRETABLE in codes(result)


def test_methamphetamine_rule_applies_to_dot_not_to_a_table_without_it():
    specimen = [confirm("methamphetamine", 600), confirm("amphetamine", 50)]
    assert interpret(specimen, NORMAL, NO_MEDS, DOT_49CFR40).findings[0].outcome == NEGATIVE
    assert (
        interpret(
            specimen,
            NORMAL,
            NO_MEDS,
            CLINICAL_DEFAULT,
            tables={
                **DEFAULT_TABLES,
                CLINICAL_DEFAULT: CutoffTable(
                    "clinical-default", "1", "test", initial={}, confirm={"methamphetamine": 250.0}
                ),
            },
        )
        .findings[0]
        .outcome
        == CONFIRMED_POSITIVE
    )


def test_methamphetamine_screen_is_not_held_to_the_amphetamine_rule():
    result = interpret([screen("methamphetamine", 600)], NORMAL, NO_MEDS)
    assert result.findings[0].outcome == PRESUMPTIVE_POSITIVE


# --- screens and confirmations -----------------------------------------------------------------


def test_screen_positive_confirmed_negative_is_negative():
    result = interpret([screen("opiates", 2500), confirm("morphine", 1200), confirm("codeine", 300)], NORMAL, NO_MEDS)
    assert [f.outcome for f in result.findings] == [NEGATIVE, NEGATIVE, NEGATIVE]
    assert result.overall == NEGATIVE and result.may_finalize_without_review


def test_screen_positive_confirmed_positive_is_not_flagged_unconfirmed():
    result = interpret([screen("opiates", 2500), confirm("morphine", 5000)], NORMAL, NO_MEDS)
    assert result.overall == NON_NEGATIVE
    assert PRESUMPTIVE_UNCONFIRMED not in codes(result)
    assert UNEXPECTED_PRESENT in codes(result)


def test_unconfirmed_presumptive_positive_is_flagged_and_never_final():
    result = interpret([screen("cocaine", 200)], NORMAL, NO_MEDS)
    assert result.overall == NON_NEGATIVE
    assert PRESUMPTIVE_UNCONFIRMED in codes(result)
    assert result.needs_review and not result.may_finalize_without_review


# --- §3 specimen validity ----------------------------------------------------------------------


def status(**checks) -> str:
    return classify_validity(SpecimenChecks(**checks)).status


def test_normal_and_missing_checks_are_valid():
    assert classify_validity(NORMAL) == classify_validity(NORMAL)
    assert status(creatinine_mg_dl=80.0, specific_gravity=1.015, ph=6.0) == VALID
    assert classify_validity(None).status == VALID


@pytest.mark.parametrize(
    ("creatinine", "gravity", "expected"),
    [
        (2.0, 1.0020, DILUTE),  # lowest dilute creatinine
        (19.99, 1.0020, DILUTE),
        (20.0, 1.0020, VALID),  # 20 is no longer dilute
        (10.0, 1.0011, DILUTE),
        (10.0, 1.0029, DILUTE),
        (10.0, 1.0030, VALID),  # SG must be below 1.0030
        (10.0, 1.0010, INVALID),  # SG <= 1.0010 with creatinine >= 2: inconsistent
        (1.99, 1.0010, SUBSTITUTED),
        (1.99, 1.0005, SUBSTITUTED),
        (1.99, 1.0200, SUBSTITUTED),
        (1.99, 1.0250, SUBSTITUTED),
        (1.99, 1.0011, INVALID),  # creatinine < 2 with SG in between: inconsistent
        (1.99, 1.0199, INVALID),
        (2.0, 1.0010, INVALID),
    ],
)
def test_dilute_substituted_and_inconsistent_boundaries(creatinine, gravity, expected):
    assert status(creatinine_mg_dl=creatinine, specific_gravity=gravity) == expected


@pytest.mark.parametrize(
    ("ph", "expected"),
    [
        (3.99, ADULTERATED),
        (4.0, INVALID),
        (4.49, INVALID),
        (4.5, VALID),
        (8.99, VALID),
        (9.0, INVALID),
        (10.99, INVALID),
        (11.0, ADULTERATED),
    ],
)
def test_ph_boundaries(ph, expected):
    assert status(ph=ph) == expected


@pytest.mark.parametrize(
    ("nitrite", "expected"),
    [(199.9, VALID), (200.0, INVALID), (499.9, INVALID), (500.0, ADULTERATED)],
)
def test_nitrite_boundaries(nitrite, expected):
    assert status(nitrite_ug_ml=nitrite) == expected


def test_oxidant_surfactant_and_interference():
    assert status(oxidant_detected=True) == ADULTERATED
    assert status(surfactant_detected=True) == ADULTERATED
    assert status(oxidant_detected=False, surfactant_detected=False) == VALID
    assert status(interference_detected=True) == INVALID


def test_older_ph_rule_is_configurable():
    # Current rule: pH < 4 is adulterated. Older rule and NRC: < 3, with 3 to 4.5 invalid.
    assert classify_validity(SpecimenChecks(ph=3.5)).status == ADULTERATED
    assert classify_validity(SpecimenChecks(ph=3.5), OLDER_PH_VALIDITY_RULES).status == INVALID
    assert classify_validity(SpecimenChecks(ph=3.0), OLDER_PH_VALIDITY_RULES).status == INVALID
    assert classify_validity(SpecimenChecks(ph=2.99), OLDER_PH_VALIDITY_RULES).status == ADULTERATED
    with pytest.raises(ValueError):
        ValidityRules(adulterated_ph_below=5.0)  # above the invalid range's top


def test_precedence_substituted_over_adulterated_over_invalid_over_dilute():
    both = classify_validity(SpecimenChecks(creatinine_mg_dl=1.0, specific_gravity=1.0005, ph=2.0))
    assert both.status == SUBSTITUTED and len(both.reasons) == 2
    assert status(creatinine_mg_dl=10.0, specific_gravity=1.002, nitrite_ug_ml=600.0) == ADULTERATED
    assert status(creatinine_mg_dl=10.0, specific_gravity=1.002, ph=9.5) == INVALID
    assert status(creatinine_mg_dl=10.0, specific_gravity=1.002, ph=12.0, nitrite_ug_ml=300.0) == ADULTERATED


def test_adulterated_and_substituted_count_as_refusal():
    for checks in (
        SpecimenChecks(creatinine_mg_dl=1.0, specific_gravity=1.0),
        SpecimenChecks(nitrite_ug_ml=800.0),
        SpecimenChecks(surfactant_detected=True),
    ):
        finding = classify_validity(checks)
        assert finding.counts_as_refusal
        result = interpret([screen("thca", 0)], checks, NO_MEDS)
        assert result.overall == REFUSAL and result.needs_review
        assert {SPECIMEN_SUBSTITUTED, SPECIMEN_ADULTERATED} & set(codes(result))
    for checks in (SpecimenChecks(ph=9.5), SpecimenChecks(creatinine_mg_dl=10.0, specific_gravity=1.002)):
        assert not classify_validity(checks).counts_as_refusal


def test_invalid_specimen_is_overall_invalid():
    result = interpret([screen("thca", 0)], SpecimenChecks(ph=9.5), NO_MEDS)
    assert result.overall == INVALID and SPECIMEN_INVALID in codes(result)


@pytest.mark.parametrize("ground", sorted(REFUSAL_GROUNDS))
def test_collector_recorded_refusal(ground):
    result = interpret([screen("thca", 0)], SpecimenChecks(refusal_ground=ground), NO_MEDS)
    assert result.overall == REFUSAL and COLLECTION_REFUSAL in codes(result)


def test_unknown_refusal_ground_is_rejected():
    with pytest.raises(ValueError):
        SpecimenChecks(refusal_ground="was rude")


@pytest.mark.parametrize(
    ("creatinine", "recollect"),
    [(2.0, True), (3.5, True), (5.0, True), (5.01, False), (19.0, False)],
)
def test_negative_dilute_with_creatinine_2_to_5_is_recollected_observed(creatinine, recollect):
    checks = SpecimenChecks(creatinine_mg_dl=creatinine, specific_gravity=1.002)
    result = interpret([screen("thca", 10), screen("cocaine", 20)], checks, NO_MEDS)
    assert result.validity.status == DILUTE and result.overall == NEGATIVE
    assert result.validity.recollect_observed is recollect
    assert (RECOLLECT_OBSERVED in codes(result)) is recollect
    # A negative-dilute is never final by itself.
    assert SPECIMEN_DILUTE in codes(result) and result.needs_review


def test_positive_dilute_is_not_recollected_for_dilution():
    checks = SpecimenChecks(creatinine_mg_dl=3.0, specific_gravity=1.002)
    result = interpret([screen("thca", 100)], checks, NO_MEDS)
    assert result.overall == NON_NEGATIVE and not result.validity.recollect_observed
    finding = classify_validity(checks)
    assert apply_drug_result(finding, all_negative=False) == finding
    assert apply_drug_result(finding, all_negative=True).recollect_observed
    assert apply_drug_result(apply_drug_result(finding, True), True) == apply_drug_result(finding, True)


@pytest.mark.parametrize(
    ("checks", "recollect"),
    [
        (SpecimenChecks(temperature_f=89.9), True),
        (SpecimenChecks(temperature_f=90.0), False),
        (SpecimenChecks(temperature_f=100.0), False),
        (SpecimenChecks(temperature_f=100.1), True),
        (SpecimenChecks(temperature_in_range=False), True),
        (SpecimenChecks(temperature_in_range=True), False),
        (SpecimenChecks(temperature_f=95.0, temperature_in_range=False), True),
    ],
)
def test_collection_temperature(checks, recollect):
    finding = classify_validity(checks)
    assert finding.recollect_observed is recollect and finding.status == VALID


def test_missing_specific_gravity_is_not_assumed_normal():
    no_sg_low = classify_validity(SpecimenChecks(creatinine_mg_dl=1.0))
    assert no_sg_low.status == INVALID and no_sg_low.incomplete
    no_sg_dilute_range = interpret([screen("thca", 0)], SpecimenChecks(creatinine_mg_dl=10.0), NO_MEDS)
    assert no_sg_dilute_range.validity.status == VALID
    assert VALIDITY_INCOMPLETE in codes(no_sg_dilute_range) and no_sg_dilute_range.needs_review
    assert classify_validity(SpecimenChecks(ph=float("nan"))).incomplete


def test_validity_reported_as_results_is_used():
    results = [
        screen("thca", 0),
        AnalyteResult("creatinine", 1.0, units="mg/dL"),
        AnalyteResult("specific_gravity", 1.0005),
        AnalyteResult("oxidant", None, "NEG"),
    ]
    result = interpret(results, None, NO_MEDS)
    assert result.validity.status == SUBSTITUTED and result.overall == REFUSAL
    # Given checks win; results only fill what they leave empty.
    kept = interpret(results, SpecimenChecks(creatinine_mg_dl=80.0), NO_MEDS)
    assert kept.validity.status == INVALID  # creatinine 80 with SG 1.0005: inconsistent
    wrong_units = interpret([screen("thca", 0), AnalyteResult("creatinine", 1.0, units="mmol/L")], None, NO_MEDS)
    assert wrong_units.overall == INCOMPLETE and RESULT_NOT_INTERPRETABLE in codes(wrong_units)


# --- §4 medications ----------------------------------------------------------------------------


def bup_panel(bup: float, norbup: float, **extra: float) -> list[AnalyteResult]:
    panel = [confirm("buprenorphine", bup), confirm("norbuprenorphine", norbup)]
    return panel + [confirm(analyte, value) for analyte, value in extra.items()]


def test_expected_buprenorphine_present_and_plausible_has_no_medication_flag():
    result = interpret(bup_panel(200, 400, naloxone=30), NORMAL, BUP)
    assert codes(result) == []
    # Still non-negative: a clinician confirms the prescription explains it.
    assert result.overall == NON_NEGATIVE and result.needs_review


def test_unexpected_present():
    result = interpret(bup_panel(200, 400) + [confirm("fentanyl", 4), confirm("norfentanyl", 9)], NORMAL, BUP)
    unexpected = [flag for flag in result.flags if flag.code == UNEXPECTED_PRESENT]
    assert len(unexpected) == 1 and unexpected[0].detail.startswith("fentanyl:")
    not_prescribed = interpret(bup_panel(200, 400), NORMAL, NO_MEDS)
    assert UNEXPECTED_PRESENT in codes(not_prescribed)
    # Morphine is a codeine metabolite: a codeine prescription explains it.
    codeine = interpret([confirm("morphine", 5000)], NORMAL, MedicationContext(frozenset({"codeine"})))
    assert UNEXPECTED_PRESENT not in codes(codeine)
    # No prescription explains heroin's metabolite.
    heroin = interpret([confirm("6am", 20)], NORMAL, MedicationContext(frozenset(MEDICATIONS)))
    assert UNEXPECTED_PRESENT in codes(heroin)


def test_expected_buprenorphine_absent():
    result = interpret(bup_panel(0, 0, naloxone=50), NORMAL, BUP)
    assert EXPECTED_ABSENT in codes(result) and result.needs_review
    # Naloxone comes with the prescribed combination product; its absence of buprenorphine is what counts.
    assert UNEXPECTED_PRESENT not in codes(result)
    only_screen = interpret([screen("buprenorphine", 1)], NORMAL, BUP)
    assert EXPECTED_ABSENT in codes(only_screen) and only_screen.overall == NEGATIVE
    assert not only_screen.may_finalize_without_review


def test_expected_medication_not_on_the_panel():
    result = interpret([screen("opiates", 0), screen("thca", 0)], NORMAL, BUP)
    assert EXPECTED_NOT_TESTED in codes(result) and EXPECTED_ABSENT not in codes(result)


def test_buprenorphine_present_norbuprenorphine_absent():
    result = interpret(bup_panel(900, 0), NORMAL, BUP)
    spiking = [flag for flag in result.flags if flag.code == POSSIBLE_SPIKING_BUPRENORPHINE]
    assert spiking and "norbuprenorphine absent" in spiking[0].detail


@pytest.mark.parametrize("threshold", BUP_RATIO_THRESHOLDS_IN_LITERATURE)
def test_norbuprenorphine_ratio_below_each_literature_threshold(threshold):
    meds = MedicationContext(frozenset({"buprenorphine"}), bup_ratio_threshold=threshold)
    bup = 1000.0
    below = interpret(bup_panel(bup, just_below(threshold * bup)), NORMAL, meds)
    assert POSSIBLE_SPIKING_BUPRENORPHINE in codes(below)
    at = interpret(bup_panel(bup, threshold * bup), NORMAL, meds)
    assert POSSIBLE_SPIKING_BUPRENORPHINE not in codes(at)


def test_default_ratio_threshold_is_the_literature_0_02():
    assert MedicationContext().bup_ratio_threshold == 0.02
    assert POSSIBLE_SPIKING_BUPRENORPHINE in codes(interpret(bup_panel(1000, 19), NORMAL, BUP))
    assert POSSIBLE_SPIKING_BUPRENORPHINE not in codes(interpret(bup_panel(1000, 20), NORMAL, BUP))


def test_high_naloxone_points_to_spiking():
    assert POSSIBLE_SPIKING_BUPRENORPHINE in codes(interpret(bup_panel(200, 400, naloxone=2000), NORMAL, BUP))
    assert POSSIBLE_SPIKING_BUPRENORPHINE not in codes(interpret(bup_panel(200, 400, naloxone=1999), NORMAL, BUP))
    stricter = MedicationContext(frozenset({"buprenorphine"}), high_naloxone_ng_ml=200.0)
    assert POSSIBLE_SPIKING_BUPRENORPHINE in codes(interpret(bup_panel(200, 400, naloxone=250), NORMAL, stricter))


def test_methadone_present_eddp_absent_is_possible_spiking():
    result = interpret([confirm("methadone", 800), confirm("eddp", 20)], NORMAL, METHADONE)
    assert codes(result) == [POSSIBLE_SPIKING_METHADONE]


def test_methadone_and_eddp_both_absent_is_expected_absent():
    result = interpret([confirm("methadone", 10), confirm("eddp", 10)], NORMAL, METHADONE)
    assert codes(result) == [EXPECTED_ABSENT] and result.overall == NEGATIVE


def test_methadone_and_eddp_present_has_no_medication_flag():
    assert codes(interpret([confirm("methadone", 800), confirm("eddp", 600)], NORMAL, METHADONE)) == []
    # EDDP not on the panel: spiking cannot be judged, and is not alleged.
    assert codes(interpret([confirm("methadone", 800)], NORMAL, METHADONE)) == []


def test_naltrexone_is_not_judged_by_urine():
    meds = MedicationContext(frozenset({"naltrexone"}))
    result = interpret([screen("opiates", 0), screen("thca", 0)], NORMAL, meds)
    assert result.overall == NEGATIVE and codes(result) == []
    assert result.may_finalize_without_review and "naltrexone" in result.summary


def test_plain_negative_is_final_by_itself():
    result = interpret(
        [screen(analyte, 0) for analyte in ("thca", "cocaine", "opiates", "amphetamines")], NORMAL, NO_MEDS
    )
    assert result.overall == NEGATIVE and result.flags == ()
    assert result.may_finalize_without_review and not result.needs_review


def test_nothing_to_interpret_is_incomplete():
    assert interpret([], NORMAL, NO_MEDS).overall == INCOMPLETE


def test_output_does_not_depend_on_set_order():
    first = interpret(
        bup_panel(0, 0) + [confirm("fentanyl", 3)], NORMAL, MedicationContext(["buprenorphine", "methadone"])
    )
    second = interpret(
        bup_panel(0, 0) + [confirm("fentanyl", 3)], NORMAL, MedicationContext(["methadone", "buprenorphine"])
    )
    assert first == second
    medication_codes = [f.code for f in first.flags if f.code in (EXPECTED_ABSENT, EXPECTED_NOT_TESTED)]
    assert medication_codes == [EXPECTED_ABSENT, EXPECTED_NOT_TESTED]  # buprenorphine, then methadone


def test_output_is_the_same_under_any_string_hash_seed():
    # Workflow replay runs in another process, where sets of strings iterate in another order.
    program = (
        "import json\n"
        "from dataclasses import asdict\n"
        "from domain.interpretation import *\n"
        "meds = MedicationContext(frozenset(['methadone', 'buprenorphine', 'codeine', 'amphetamine']))\n"
        "results = [AnalyteResult(a, 5000.0, method='confirm')\n"
        "           for a in ('fentanyl', 'mdma', 'pcp', 'thca', 'cocaine')]\n"
        "print(json.dumps(asdict(interpret(results, None, meds))))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


# --- §7 code mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "analyte"),
    [
        ("3414-0", "buprenorphine"),
        ("49751-1", "norbuprenorphine"),
        ("3773-9", "methadone"),
        ("41858-2", "eddp"),
        ("11235-9", "fentanyl"),
        ("43199-9", "norfentanyl"),
        ("3393-6", "benzoylecgonine"),
        ("3427-2", "cannabinoids"),
        ("3349-8", "amphetamines"),
        ("2161-8", "creatinine"),
        ("2965-2", "specific_gravity"),
        ("2756-5", "ph"),
        ("19659-2", "pcp"),
    ],
)
def test_reference_loinc_codes(code, analyte):
    assert map_code(DEFAULT_CODE_MAP, None, "LN", code) == analyte


def test_19659_2_is_phencyclidine_never_a_generic_drug_screen():
    assert map_code(DEFAULT_CODE_MAP, "any-lab", "LN", "19659-2") == "pcp"
    assert ANALYTES["pcp"].label.startswith("Phencyclidine")


def test_unmapped_code_returns_none():
    assert map_code(DEFAULT_CODE_MAP, None, "LN", "99999-9") is None
    assert map_code(DEFAULT_CODE_MAP, "acme", "L", "BUPU") is None
    assert map_code(DEFAULT_CODE_MAP, "acme", "LN", "  ") is None
    # A LOINC-looking code under another coding system is not guessed to be LOINC.
    assert map_code(DEFAULT_CODE_MAP, None, "99LAB", "3773-9") is None


def test_lab_local_codes_come_first():
    code_map = {
        **DEFAULT_CODE_MAP,
        **local_code_map("acme", {"BUPU": "buprenorphine", "19659-2": "opiates"}),
    }
    assert local_system("acme") == "L:acme"
    assert map_code(code_map, "acme", "L", "BUPU") == "buprenorphine"
    # Acme misuses 19659-2; its own entry corrects it for Acme alone.
    assert map_code(code_map, "acme", "LN", "19659-2") == "opiates"
    assert map_code(code_map, "other-lab", "LN", "19659-2") == "pcp"
    assert map_code(code_map, "other-lab", "L", "BUPU") is None
    # A message cannot name another lab's table as its coding system.
    assert map_code(code_map, "other-lab", "L:acme", "BUPU") is None


def test_loinc_system_aliases():
    for system in ("LN", "ln", "LOINC", "2.16.840.1.113883.6.1", "http://loinc.org"):
        assert map_code(DEFAULT_CODE_MAP, None, system, "3773-9") == "methadone"


def test_every_mapped_analyte_is_registered():
    assert unknown_analytes(DEFAULT_CODE_MAP) == ()
    assert unknown_analytes({("LN", "1-1"): "unobtainium"}) == ("unobtainium",)
    for analyte in ANALYTES.values():
        assert analyte.medication is None or analyte.medication in MEDICATIONS
        assert all(name in MEDICATIONS for name in analyte.also_explained_by)


# --- payloads ----------------------------------------------------------------------------------


PAYLOADS = temporalio.converter.DataConverter.default.payload_converter


def _no_constant(name: str) -> None:
    raise AssertionError(f"{name} in a payload: not valid JSON")


def through_temporal(value: Any) -> Any:
    """The value as a workflow or an activity receives it: encoded and decoded by Temporal's JSON converter."""
    [payload] = PAYLOADS.to_payloads([value])
    json.loads(payload.data, parse_constant=_no_constant)
    [decoded] = PAYLOADS.from_payloads([payload], [type(value)])
    return decoded


def test_payloads_round_trip_through_temporal():
    meds = MedicationContext(frozenset({"buprenorphine", "naltrexone"}), bup_ratio_threshold=0.26)
    results = bup_panel(900, 0) + [screen("cocaine", 200), AnalyteResult("creatinine", 3.0, units="mg/dL")]
    interpretation = interpret(results, SpecimenChecks(specific_gravity=1.002, temperature_f=95.0), meds)
    assert through_temporal(interpretation) == interpretation
    assert through_temporal(meds) == meds
    for result in results:
        assert through_temporal(result) == result


def test_an_interpretation_saved_by_an_older_version_still_decodes():
    """Histories and saved snapshots hold the interpretation as the dict it used to cross Temporal as
    (interpretation_to_dict, before issue 14): the same keys, so it decodes; a key no longer known is ignored,
    and a key added since takes its default."""
    older = {
        "overall": "non-negative",
        "summary": "Non-negative",
        "needs_review": True,
        "may_finalize_without_review": False,
        "cutoff_tables": ["HHS-2025"],
        "findings": [
            {
                "analyte": "benzoylecgonine",
                "outcome": "presumptive-positive",
                "cutoff_used": 150.0,
                "cutoff_source": "HHS-2025",
                "reason": "300 >= cutoff 150",
                "method": "screen",
                "value": 300.0,
                "retired": "a key no longer known",
            }
        ],
        "flags": [{"code": "presumptive-unconfirmed", "detail": "not confirmed"}],
        "validity": {"status": "valid", "reasons": [], "recollect_observed": False, "counts_as_refusal": False},
    }
    decoded = typed(Interpretation, older)
    assert decoded.findings[0].value == 300.0 and decoded.findings[0].outcome == PRESUMPTIVE_POSITIVE
    assert decoded.validity.incomplete is False and decoded.validity.reasons == ()
    assert [f.code for f in decoded.flags] == [PRESUMPTIVE_UNCONFIRMED]
    assert asdict(decoded)["findings"][0].keys() == older["findings"][0].keys() - {"retired"}


# --- properties --------------------------------------------------------------------------------

finite_or_none = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
calls = st.one_of(st.none(), st.sampled_from(["POS", "NEG", "positive", "Not Detected", "", "INCONCLUSIVE", "???"]))
results_strategy = st.builds(
    AnalyteResult,
    analyte=st.one_of(st.sampled_from(sorted(ANALYTES)), st.just("unmapped")),
    value=finite_or_none,
    qualitative=calls,
    units=st.one_of(st.none(), st.sampled_from(["ng/mL", "mg/dL", "ug/mL", ""])),
    lab_cutoff=finite_or_none,
    method=st.sampled_from([SCREEN, POC, CONFIRM]),
)
checks_strategy = st.one_of(
    st.none(),
    st.builds(
        SpecimenChecks,
        creatinine_mg_dl=finite_or_none,
        specific_gravity=finite_or_none,
        ph=finite_or_none,
        nitrite_ug_ml=finite_or_none,
        oxidant_detected=st.one_of(st.none(), st.booleans()),
        surfactant_detected=st.one_of(st.none(), st.booleans()),
        temperature_f=finite_or_none,
        temperature_in_range=st.one_of(st.none(), st.booleans()),
        interference_detected=st.one_of(st.none(), st.booleans()),
        refusal_ground=st.one_of(st.none(), st.sampled_from(sorted(REFUSAL_GROUNDS))),
    ),
)
meds_strategy = st.builds(
    MedicationContext,
    expected=st.frozensets(st.sampled_from(sorted(MEDICATIONS) + ["gabapentin"])),
    bup_ratio_threshold=st.floats(min_value=1e-6, max_value=10),
    high_naloxone_ng_ml=st.floats(min_value=1e-3, max_value=1e6),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    results=st.lists(results_strategy, max_size=8),
    checks=checks_strategy,
    meds=meds_strategy,
    table_name=st.sampled_from(sorted(DEFAULT_TABLES)),
)
def test_interpret_never_raises_and_negative_means_nothing_found(results, checks, meds, table_name):
    result = interpret(results, checks, meds, table_name)
    assert result.overall in OVERALL_OUTCOMES
    assert all(flag.code in FLAG_CODES for flag in result.flags)
    if result.overall == NEGATIVE:
        assert result.findings and all(f.outcome == NEGATIVE for f in result.findings)
        assert not result.validity.counts_as_refusal and result.validity.status != INVALID
    if any(f.outcome in (PRESUMPTIVE_POSITIVE, CONFIRMED_POSITIVE) for f in result.findings):
        assert result.overall in (NON_NEGATIVE, REFUSAL)
    assert result.may_finalize_without_review == (not result.needs_review)
    if result.may_finalize_without_review:
        assert result.overall == NEGATIVE and result.flags == ()
    assert through_temporal(result) == result


@settings(max_examples=200, deadline=None)
@given(
    creatinine=st.one_of(st.none(), st.floats()),
    gravity=st.one_of(st.none(), st.floats()),
    ph=st.one_of(st.none(), st.floats()),
    nitrite=st.one_of(st.none(), st.floats()),
    rules=st.sampled_from([DEFAULT_VALIDITY_RULES, OLDER_PH_VALIDITY_RULES]),
)
def test_validity_never_raises_even_on_nan_and_infinity(creatinine, gravity, ph, nitrite, rules):
    checks = SpecimenChecks(creatinine_mg_dl=creatinine, specific_gravity=gravity, ph=ph, nitrite_ug_ml=nitrite)
    finding = classify_validity(checks, rules)
    assert finding.status in (VALID, DILUTE, SUBSTITUTED, ADULTERATED, INVALID)
    assert finding.counts_as_refusal == (finding.status in (SUBSTITUTED, ADULTERATED))
