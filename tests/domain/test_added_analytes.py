"""Issue 19: an analyte an admin added (POST /lab/analytes) is interpreted like a built-in one:
its default cutoffs, its drug class and its medication links, passed to the pure interpreter."""

from domain.analytes import AddedAnalyte
from domain.interpretation import AnalyteResult, MedicationContext, interpret

ISOTONITAZENE = AddedAnalyte("isotonitazene", "Isotonitazene", "nitazenes", initial_cutoff=1.0, confirm_cutoff=0.5)
BUP_GLUCURONIDE = AddedAnalyte(
    "buprenorphine_glucuronide",
    "Buprenorphine glucuronide",
    "buprenorphine",
    medication="buprenorphine",
    confirm_cutoff=5.0,
)


def finding(interpretation, analyte):
    return next(f for f in interpretation.findings if f.analyte == analyte)


def test_an_added_analyte_is_judged_against_its_default_cutoff_and_class():
    result = AnalyteResult("isotonitazene", 2.1, None, "ng/mL", None, "confirm")
    judged = interpret([result], None, MedicationContext(), added=(ISOTONITAZENE,))
    found = finding(judged, "isotonitazene")
    assert (found.outcome, found.cutoff_used, found.cutoff_source) == ("confirmed-positive", 0.5, "clinic-added")
    assert any(f.code == "unexpected-present" and f.detail.startswith("nitazenes") for f in judged.flags)
    below = interpret(
        [AnalyteResult("isotonitazene", 0.2, None, "ng/mL", None, "confirm")],
        None,
        MedicationContext(),
        added=(ISOTONITAZENE,),
    )
    assert finding(below, "isotonitazene").outcome == "negative"
    # The lab's own cutoff still wins over the clinic's default.
    lab = interpret(
        [AnalyteResult("isotonitazene", 2.1, None, "ng/mL", 5.0, "confirm")],
        None,
        MedicationContext(),
        added=(ISOTONITAZENE,),
    )
    assert finding(lab, "isotonitazene").outcome == "negative"


def test_without_its_definition_the_analyte_is_not_interpretable():
    result = AnalyteResult("isotonitazene", 2.1, None, "ng/mL", None, "confirm")
    assert finding(interpret([result], None, MedicationContext()), "isotonitazene").outcome == "not-interpretable"


def test_an_added_analytes_medication_link_explains_it_and_counts_for_adherence():
    on_bup = MedicationContext(expected=frozenset({"buprenorphine"}))
    present = interpret(
        [AnalyteResult("buprenorphine_glucuronide", 40.0, None, "ng/mL", None, "confirm")],
        None,
        on_bup,
        added=(BUP_GLUCURONIDE,),
    )
    codes = {f.code for f in present.flags}
    assert finding(present, "buprenorphine_glucuronide").outcome == "confirmed-positive"
    assert "unexpected-present" not in codes and "expected-not-tested" not in codes
    absent = interpret(
        [AnalyteResult("buprenorphine_glucuronide", 0.0, None, "ng/mL", None, "confirm")],
        None,
        on_bup,
        added=(BUP_GLUCURONIDE,),
    )
    assert "expected-absent" in {f.code for f in absent.flags}
    # Not on buprenorphine: the same result is unexpected.
    other = interpret(
        [AnalyteResult("buprenorphine_glucuronide", 40.0, None, "ng/mL", None, "confirm")],
        None,
        MedicationContext(),
        added=(BUP_GLUCURONIDE,),
    )
    assert "unexpected-present" in {f.code for f in other.flags}


def test_an_added_analyte_never_replaces_a_built_in_one():
    fake = AddedAnalyte("fentanyl", "Not fentanyl", "other", confirm_cutoff=1000.0)
    judged = interpret(
        [AnalyteResult("fentanyl", 5.0, None, "ng/mL", None, "confirm")], None, MedicationContext(), added=(fake,)
    )
    assert finding(judged, "fentanyl").outcome == "confirmed-positive"
