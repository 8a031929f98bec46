"""The drug-testing code table (domain/data/loinc_drug_tests.csv) is consistent data."""

import csv
import re
from collections import Counter

import pytest

from domain import loinc_tox
from domain.analytes import ANALYTES, DRUG_CLASSES, SPECIMEN_VALIDITY, map_code
from domain.loinc_tox import CONFIRM, SCREEN, UNSPECIFIED, loinc_tests, method_named_by, resolve_method

# The classes issue 19 asks for, by the class keys of domain.analytes.
ISSUE_CLASSES = {
    "amphetamines",
    "mdma-mda",
    "barbiturates",
    "benzodiazepines",
    "buprenorphine",
    "cannabinoids",
    "cocaine",
    "codeine-morphine",
    "6-acetylmorphine",
    "hydrocodone-hydromorphone",
    "oxycodone-oxymorphone",
    "fentanyl",
    "methadone",
    "tramadol",
    "meperidine",
    "phencyclidine",
    "propoxyphene",
    "alcohol",
    "gabapentin",
    "carisoprodol",
    "zolpidem",
    "kratom",
    "xylazine",
    "nitazenes",
}
VALIDITY = {"creatinine", "specific_gravity", "ph", "oxidant", "nitrite"}


def rows():
    with loinc_tox.TABLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_no_duplicate_codes_and_well_formed_codes():
    codes = Counter(row["code"] for row in rows())
    assert [c for c, n in codes.items() if n > 1] == []
    # LOINC codes are digits, a hyphen and a mod-10 check digit.
    assert all(re.fullmatch(r"\d{1,6}-\d", code) for code in codes)


@pytest.mark.parametrize("test", list(loinc_tests().values()), ids=lambda t: t.code)
def test_every_row_is_consistent(test):
    assert test.analyte in ANALYTES, f"{test.code}: analyte {test.analyte!r} is not registered"
    assert ANALYTES[test.analyte].drug_class == test.drug_class
    assert test.method in (SCREEN, CONFIRM, UNSPECIFIED)
    assert test.specimen in loinc_tox.SPECIMENS and test.verified in loinc_tox.VERIFIED
    # The method follows from the LOINC name, both ways.
    assert method_named_by(test.loinc_name) == test.method, test.loinc_name
    if re.search(r"confirm|GC-MS|LC-MS", test.loinc_name, re.IGNORECASE):
        assert test.method == CONFIRM and test.technique in ("confirmatory", "GC-MS", "LC-MS/MS")
    if test.method == SCREEN:
        assert test.technique == "immunoassay"
    if test.method == UNSPECIFIED:
        # "by Gas chromatography" (ethanol in blood) is a LOINC method of its own, not "Confirmatory".
        assert test.technique in ("unspecified", "test strip", "gas chromatography")
        if test.technique == "gas chromatography":
            assert test.loinc_name.endswith("by Gas chromatography"), test.loinc_name
    if test.specimen == "urine" and test.verified == "yes":
        assert "Urine" in test.loinc_name, test.loinc_name
    assert all(key in loinc_tox.sources() for key in test.source.split(";")), test.source
    if test.verified == "no":
        assert "UNVERIFIED" in " ".join(loinc_tox.sources()[k] for k in test.source.split(";"))


def test_each_class_has_a_screen_or_a_confirmation_or_is_a_documented_gap():
    by_class = {}
    for test in loinc_tests().values():
        if test.usable:
            by_class.setdefault(test.drug_class, set()).add(test.method)
    gaps = loinc_tox.gaps()
    for drug_class in ISSUE_CLASSES:
        covered = {SCREEN, CONFIRM} & by_class.get(drug_class, set())
        assert covered or drug_class in gaps or _gap_named(drug_class, gaps), drug_class
    assert ISSUE_CLASSES <= set(DRUG_CLASSES) | {"mdma-mda"}


def _gap_named(drug_class, gaps):
    return drug_class == "alcohol" and "ethyl-glucuronide" in gaps


# Classes for which LOINC has both an initial (Screen) and a Confirmatory urine code, and the table
# must therefore carry both: a confirmation is never left to default to a screen (issue 19).
SCREEN_AND_CONFIRM = {
    "amphetamines",
    "mdma-mda",
    "barbiturates",
    "benzodiazepines",
    "buprenorphine",
    "cannabinoids",
    "cocaine",
    "codeine-morphine",
    "6-acetylmorphine",
    "hydrocodone-hydromorphone",
    "oxycodone-oxymorphone",
    "fentanyl",
    "methadone",
    "tramadol",
    "meperidine",
    "phencyclidine",
    "propoxyphene",
    "alcohol",
    "carisoprodol",
    "zolpidem",
    "kratom",
}


def _urine_methods():
    by_class = {}
    for test in loinc_tests().values():
        if test.usable and test.specimen == "urine":
            by_class.setdefault(test.drug_class, set()).add(test.method)
    return by_class


def test_classes_with_screen_and_confirmation_codes_have_both():
    by_class = _urine_methods()
    missing = {c: sorted({SCREEN, CONFIRM} - by_class.get(c, set())) for c in SCREEN_AND_CONFIRM}
    assert {c: m for c, m in missing.items() if m} == {}
    # LOINC has only confirmations for these (stored sources: LOINC 2.74/2.75).
    for drug_class in ("xylazine", "nitazenes"):
        assert CONFIRM in by_class[drug_class]


def test_a_closed_gap_is_removed_from_the_gaps_file():
    by_class = _urine_methods()
    for drug_class in loinc_tox.gaps():
        if drug_class in DRUG_CLASSES:
            assert not {SCREEN, CONFIRM} <= by_class.get(drug_class, set()), f"{drug_class} is no longer a gap"


def test_codes_the_earlier_table_had_wrong_or_unchecked():
    table = loinc_tests()
    # The earlier table called 49751-1 method-less; LOINC names it a confirmation.
    assert (table["49751-1"].method, table["49751-1"].verified) == (CONFIRM, "yes")
    assert (table["19550-3"].method, table["19550-3"].verified) == (SCREEN, "yes")
    assert not [t.code for t in table.values() if t.verified == "project"]
    assert resolve_method(table["20561-7"].method, None, SCREEN, SCREEN, "20561-7").method == CONFIRM  # tramadol


def _loinc_check_digit(number: str) -> int:
    """LOINC's mod-10 check digit (LOINC Users' Guide, Appendix: calculating mod 10 check digits)."""
    reversed_digits = number[::-1]
    doubled = str(int(reversed_digits[0::2][::-1]) * 2)
    total = sum(int(c) for c in doubled + reversed_digits[1::2])
    return (10 - total % 10) % 10


def test_every_code_carries_its_check_digit():
    """A mistyped code (or one made up) is caught: 19261-7 is right, 19261-8 is not."""
    assert _loinc_check_digit("19261") == 7 and _loinc_check_digit("74169") == 4
    wrong = [code for code in loinc_tests() if _loinc_check_digit(code.split("-")[0]) != int(code.split("-")[1])]
    assert wrong == []


# The LOINC System axis as the long common name writes it, per specimen of the table.
SYSTEM_WORDS = {
    "urine": "Urine",
    "oral-fluid": "Saliva (oral fluid)",
    "blood": "Blood",
    "serum-plasma": "Plasma",
    "hair": "Hair",
}


def test_specimens_other_than_urine():
    specimens = Counter(t.specimen for t in loinc_tests().values() if t.usable)
    assert specimens["oral-fluid"] >= 9 and specimens["blood"] >= 4 and specimens["serum-plasma"] >= 2
    assert specimens["hair"] >= 1
    for test in loinc_tests().values():
        if test.verified == "yes":
            assert SYSTEM_WORDS[test.specimen] in test.loinc_name, (test.code, test.loinc_name)
    oral = {t.code: t.method for t in loinc_tests().values() if t.specimen == "oral-fluid" and t.usable}
    assert {CONFIRM, SCREEN} <= set(oral.values())  # oral fluid has both confirmations and screens now


def test_validity_analytes_are_registered():
    for key in VALIDITY:
        assert ANALYTES[key].drug_class == SPECIMEN_VALIDITY and ANALYTES[key].is_validity_check


def test_unverified_rows_never_map_a_result_by_themselves():
    table = loinc_tox.code_map()
    for test in loinc_tests().values():
        assert (("LN", test.code) in table) == test.usable
    assert map_code(table, "acme", "LN", "58425-0") is None  # verified=no (ethyl sulfate)
    assert map_code(table, "acme", "LN", "42241-0") == "cocaine"  # verified since (S17)
    assert map_code(table, "acme", "LN", "14315-6") == "benzoylecgonine"


def test_method_comes_from_the_code_first():
    # A mapping that defaulted to "screen" never makes a confirmatory code a screen.
    choice = resolve_method(CONFIRM, None, "screen", "screen", "14315-6")
    assert (choice.method, choice.basis) == (CONFIRM, "loinc-code")
    # An explicit clinic override wins and says so.
    choice = resolve_method(CONFIRM, SCREEN, None, None, "14315-6")
    assert (choice.method, choice.basis) == (SCREEN, "clinic-override") and "although LOINC" in choice.detail
    # A method-less code: the mapping, then the label, then screen.
    assert resolve_method(UNSPECIFIED, None, CONFIRM, None, "3393-6").basis == "clinic-mapping"
    assert resolve_method(UNSPECIFIED, None, None, CONFIRM, "3393-6").method == CONFIRM
    assert resolve_method(None, None, None, None, "X").basis == "default"


def test_size_by_class_and_method():
    """Printed for the closing note (pytest -s)."""
    counts = Counter((t.drug_class, t.method) for t in loinc_tests().values() if t.usable)
    for (drug_class, method), n in sorted(counts.items()):
        print(f"{drug_class:28} {method:12} {n}")
    assert sum(counts.values()) >= 300
