"""The drug-testing code table: LOINC codes of screens and confirmations, kept as data.

Each row of domain/data/loinc_drug_tests.csv says which analyte a LOINC code reports, for which
specimen, and by which method its LOINC Method axis names: "Screen" (an immunoassay, an initial
test), "Confirmatory method" (GC-MS, LC-MS/MS), or none ("unspecified": the lab's own
method decides). Every row names its source; a row marked verified=no is only a guess shown to
staff and never maps a result by itself. LOINC is (c) Regenstrief Institute; see docs/LOINC-NOTICE.md.

Method from the code first (issue 19): a result under a confirmatory code is a confirmation,
whatever a mapping or a label defaulted to; a clinic overrides it only with an explicit choice,
which the review shows (`resolve_method`).

Not imported by workflow code (it reads files): the ingest resolves codes and methods and hands
the workflow plain values.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from domain.analytes import ANALYTES, LOINC
from domain.vocab import Vocabulary

DATA = Path(__file__).parent / "data"
TABLE = DATA / "loinc_drug_tests.csv"
SOURCES = DATA / "loinc_drug_tests_sources.csv"
GAPS = DATA / "loinc_drug_tests_gaps.csv"


class CodeMethod(Vocabulary):
    """The method a LOINC code names (LOINC Users' Guide, Method axis), if any."""

    SCREEN = "screen"
    CONFIRM = "confirm"
    UNSPECIFIED = "unspecified"


class LoincSpecimen(Vocabulary):
    """The specimen (LOINC System axis) a row of the code table is for."""

    URINE = "urine"
    ORAL_FLUID = "oral-fluid"
    BLOOD = "blood"
    SERUM_PLASMA = "serum-plasma"
    HAIR = "hair"


class Verified(Vocabulary):
    """Whether a row of the code table is checked: yes, project (this project's earlier table), or no (only a
    guess shown to staff, never mapping a result by itself)."""

    YES = "yes"
    PROJECT = "project"
    NO = "no"


SCREEN, CONFIRM, UNSPECIFIED = CodeMethod.SCREEN, CodeMethod.CONFIRM, CodeMethod.UNSPECIFIED
CODE_METHODS = tuple(CodeMethod)
SPECIMENS = tuple(LoincSpecimen)
VERIFIED = tuple(Verified)

# What the LOINC long name says about the method (LOINC Users' Guide, Method axis): "by Screen
# method" / "by SAMHSA screen method" is an initial test; "by Confirmatory method", "by SAMHSA
# confirm method", GC/MS and LC/MS/MS name a confirmation.
_CONFIRM_WORDS = re.compile(r"confirm|gc[-/ ]?ms|lc[-/ ]?ms|mass spectrometry", re.IGNORECASE)
_SCREEN_WORDS = re.compile(r"\bscreen\b", re.IGNORECASE)


@dataclass(frozen=True)
class LoincTest:
    code: str
    analyte: str
    drug_class: str
    method: str  # screen | confirm | unspecified: from the code's Method axis
    technique: str  # immunoassay | confirmatory | test strip | gas chromatography | unspecified
    specimen: str
    loinc_name: str
    verified: str  # yes | project (this project's earlier table) | no
    source: str  # keys of loinc_drug_tests_sources.csv, ';'-separated

    @property
    def usable(self) -> bool:
        """Whether this row may map a lab's result without a person looking at it."""
        return self.verified in (Verified.YES, Verified.PROJECT)


def method_named_by(loinc_name: str) -> str:
    """The method a LOINC long name states: confirm, screen or unspecified."""
    if _CONFIRM_WORDS.search(loinc_name):
        return CONFIRM
    if _SCREEN_WORDS.search(loinc_name):
        return SCREEN
    return UNSPECIFIED


@lru_cache(maxsize=1)
def loinc_tests() -> dict[str, LoincTest]:
    """The table by code. Raises ValueError on a malformed row (checked by tests/domain)."""
    rows: dict[str, LoincTest] = {}
    with TABLE.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            test = LoincTest(**{k: (v or "").strip() for k, v in row.items()})
            if test.code in rows:
                raise ValueError(f"{TABLE.name} line {number}: code {test.code} listed twice")
            rows[test.code] = test
    return rows


@lru_cache(maxsize=1)
def sources() -> dict[str, str]:
    with SOURCES.open(newline="", encoding="utf-8") as handle:
        return {row["source"]: row["citation"] for row in csv.DictReader(handle)}


@lru_cache(maxsize=1)
def gaps() -> dict[str, str]:
    """Drug classes (and specimens) for which no LOINC code could be verified, with the reason."""
    with GAPS.open(newline="", encoding="utf-8") as handle:
        return {row["drug_class"]: row["reason"] for row in csv.DictReader(handle)}


def code_map(extra_analytes: Mapping[str, object] | None = None) -> dict[tuple[str, str], str]:
    """("LN", code) -> analyte for every usable row whose analyte is registered."""
    known = set(ANALYTES) | set(extra_analytes or {})
    return {(LOINC, t.code): t.analyte for t in loinc_tests().values() if t.usable and t.analyte in known}


def lookup(system: str, code: str) -> LoincTest | None:
    """The table's row for a LOINC code (any row, verified or not), or None."""
    if (system or "").strip().lower() not in ("ln", "loinc", "2.16.840.1.113883.6.1", "http://loinc.org"):
        return None
    return loinc_tests().get((code or "").strip())


@dataclass(frozen=True)
class MethodChoice:
    method: str  # screen | confirm: what the result is judged as
    basis: str  # loinc-code | clinic-override | clinic-mapping | lab-label | default
    detail: str  # one line for the review


@dataclass(frozen=True)
class AnalyteMethod:
    """How one analyte's method was decided (resolve_method), kept with the result it was filed under and shown in
    the review."""

    code: str | None  # the lab's code
    analyte: str
    method: str  # screen | confirm
    basis: str  # MethodChoice.basis
    note: str | None = None  # MethodChoice.detail


def resolve_method(
    code_method: str | None, override: str | None, mapped: str | None, label_says: str | None, code: str
) -> MethodChoice:
    """The method a result is judged by, and why.

    1. A clinic's explicit override (a mapping whose method_override is set) wins, and says so.
    2. Otherwise the code's own method (LOINC Method axis) when it names one.
    3. Otherwise the clinic's mapping method, then what the lab's label or notes say, then screen.
    A mapping's plain `method` never turns a confirmatory code into a screen.
    """
    if override in (SCREEN, CONFIRM):
        note = f"clinic override for code {code}: judged as {override}"
        if code_method in (SCREEN, CONFIRM) and code_method != override:
            note += f" although LOINC names it a {code_method} code"
        return MethodChoice(override, "clinic-override", note)
    if code_method in (SCREEN, CONFIRM):
        return MethodChoice(code_method, "loinc-code", f"LOINC {code} is a {code_method} code")
    if mapped in (SCREEN, CONFIRM):
        return MethodChoice(mapped, "clinic-mapping", f"the clinic's mapping of {code} says {mapped}")
    if label_says in (SCREEN, CONFIRM):
        return MethodChoice(label_says, "lab-label", f"the lab's label or notes for {code} say {label_says}")
    return MethodChoice(SCREEN, "default", f"nothing names a method for {code}: judged as a screen")
