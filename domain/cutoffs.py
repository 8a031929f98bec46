"""Urine drug-test cutoffs (ng/mL) as named, versioned tables (HHS Mandatory Guidelines for Federal
Workplace Drug Testing Programs using Urine, cutoff tables; 49 CFR 40.87 for DOT).

A result is compared with the cutoff its lab reported when there is one; these tables are the
fallback. Each table names its source so staff can see where a number came from. A program or a
lab adds its own table through `table_from_dict` and passes it in a registry of its own.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from domain.vocab import Vocabulary


class AnalysisMethod(Vocabulary):
    """How a result was produced. An immunoassay at the lab ("screen") and a point-of-care cup ("poc") are
    initial tests, judged against the initial cutoff; mass spectrometry ("confirm") against the confirmatory one."""

    SCREEN = "screen"
    POC = "poc"
    CONFIRM = "confirm"


SCREEN = AnalysisMethod.SCREEN
POC = AnalysisMethod.POC
CONFIRM = AnalysisMethod.CONFIRM
METHODS: tuple[str, ...] = (SCREEN, POC, CONFIRM)
INITIAL_METHODS: frozenset[str] = frozenset({SCREEN, POC})


@dataclass(frozen=True)
class CutoffTable:
    """Cutoffs by analyte key, in ng/mL. The dicts are data: treat them as read-only."""

    name: str
    version: str
    source: str
    initial: dict[str, float]
    confirm: dict[str, float]
    # Methamphetamine is reported positive only if amphetamine is at least this high in the same
    # specimen (HHS and DOT). None where the table carries no such rule.
    amphetamine_for_methamphetamine: float | None = None

    def __post_init__(self) -> None:
        for label, text in (("name", self.name), ("version", self.version), ("source", self.source)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"cutoff table {label} must be a non-empty string")
        for label, cutoffs in (("initial", self.initial), ("confirm", self.confirm)):
            for analyte, value in cutoffs.items():
                if not _is_positive_number(value):
                    raise ValueError(
                        f"{self.name}: {label} cutoff for {analyte!r} must be a positive number, got {value!r}"
                    )
        threshold = self.amphetamine_for_methamphetamine
        if threshold is not None and not _is_positive_number(threshold):
            raise ValueError(f"{self.name}: amphetamine_for_methamphetamine must be a positive number or None")


def cutoff_for(table: CutoffTable, analyte: str, method: str) -> float | None:
    """The table's cutoff for this analyte and kind of test, or None when it has none."""
    if method in INITIAL_METHODS:
        return table.initial.get(analyte)
    if method == CONFIRM:
        return table.confirm.get(analyte)
    return None


def resolve_cutoff(tables: Sequence[CutoffTable], analyte: str, method: str) -> tuple[float, str] | None:
    """The first table, in order, that has a cutoff: (cutoff, that table's name), or None."""
    for table in tables:
        cutoff = cutoff_for(table, analyte, method)
        if cutoff is not None:
            return cutoff, table.name
    return None


def get_table(name: str, tables: Mapping[str, CutoffTable] | None = None) -> CutoffTable:
    """A table by name from `tables` (the built-in DEFAULT_TABLES when not given).

    The built-in tables are returned as copies, so a caller that edits one cannot change them for
    everybody else.
    """
    registry = DEFAULT_TABLES if tables is None else tables
    try:
        table = registry[name]
    except KeyError:
        raise ValueError(f"unknown cutoff table {name!r}; known tables are {', '.join(sorted(registry))}") from None
    return table_from_dict(table_to_dict(table))


def table_to_dict(table: CutoffTable) -> dict[str, Any]:
    """JSON-friendly form."""
    return {
        "name": table.name,
        "version": table.version,
        "source": table.source,
        "initial": dict(table.initial),
        "confirm": dict(table.confirm),
        "amphetamine_for_methamphetamine": table.amphetamine_for_methamphetamine,
    }


def table_from_dict(data: Mapping[str, Any]) -> CutoffTable:
    """Inverse of table_to_dict. Rejects unknown keys so a misspelt field is not silently dropped."""
    known = {f.name for f in fields(CutoffTable)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown cutoff-table field(s): {', '.join(unknown)}")
    values = dict(data)
    # JSON does not distinguish 50 from 50.0.
    for key in ("initial", "confirm"):
        if isinstance(values.get(key), Mapping):
            values[key] = {analyte: _as_float(value) for analyte, value in values[key].items()}
    try:
        return CutoffTable(**values)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"incomplete cutoff table: {error}") from None


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# --- the tables ------------------------------------------------------------------------------

HHS_2025 = "HHS-2025"
DOT_49CFR40 = "DOT-49CFR40"
CLINICAL_DEFAULT = "clinical-default"

# Initial tests are immunoassays for a group of drugs. Each row's cutoff is listed under every key
# a lab may report that immunoassay as: the class key ("opiates") and each analyte of the row
# ("codeine", "morphine"), so that a screen is judged the same however it was coded.
_FEDERAL_INITIAL: dict[str, float] = {
    "cannabinoids": 50.0,
    "thca": 50.0,
    "cocaine": 150.0,
    "benzoylecgonine": 150.0,
    "opiates": 2000.0,
    "codeine": 2000.0,
    "morphine": 2000.0,
    "hydrocodone": 300.0,
    "hydromorphone": 300.0,
    "oxycodone": 100.0,
    "oxymorphone": 100.0,
    "6am": 10.0,
    "pcp": 25.0,
    "amphetamines": 500.0,
    "amphetamine": 500.0,
    "methamphetamine": 500.0,
    "mdma": 500.0,
    "mda": 500.0,
}

_FEDERAL_CONFIRM: dict[str, float] = {
    "thca": 15.0,
    "benzoylecgonine": 100.0,
    "codeine": 2000.0,
    "morphine": 4000.0,
    "hydrocodone": 100.0,
    "hydromorphone": 100.0,
    "oxycodone": 100.0,
    "oxymorphone": 100.0,
    "6am": 10.0,
    "pcp": 25.0,
    "amphetamine": 250.0,
    "methamphetamine": 250.0,
    "mdma": 250.0,
    "mda": 250.0,
}

_METHAMPHETAMINE_NEEDS_AMPHETAMINE = 100.0

DEFAULT_TABLES: dict[str, CutoffTable] = {
    table.name: table
    for table in (
        CutoffTable(
            name=HHS_2025,
            version="2025-07-07",
            source="HHS Mandatory Guidelines for Federal Workplace Drug Testing Programs (urine), "
            "effective 2025-07-07: initial and confirmatory cutoffs; methamphetamine positive only "
            "with amphetamine >= 100 ng/mL",
            initial={**_FEDERAL_INITIAL, "fentanyl": 1.0},
            confirm={**_FEDERAL_CONFIRM, "fentanyl": 1.0, "norfentanyl": 1.0},
            amphetamine_for_methamphetamine=_METHAMPHETAMINE_NEEDS_AMPHETAMINE,
        ),
        CutoffTable(
            name=DOT_49CFR40,
            version="49 CFR 40.85/40.87",
            source="DOT 49 CFR Part 40 employer testing: confirms morphine at 2000 ng/mL and tests no "
            "fentanyl (49 CFR 40.87); its other cutoffs are taken as equal to the HHS table (check)",
            initial=dict(_FEDERAL_INITIAL),
            confirm={**_FEDERAL_CONFIRM, "morphine": 2000.0},
            amphetamine_for_methamphetamine=_METHAMPHETAMINE_NEEDS_AMPHETAMINE,
        ),
        # Clinical labs test medications and drugs outside the federal panel with their own cutoffs;
        # meant as the fallback behind a federal table, for results that arrive without a cutoff.
        CutoffTable(
            name=CLINICAL_DEFAULT,
            version="2025-2",
            source="Common clinical-lab cutoffs: benzodiazepines 200, cocaine 300, opiates 300, fentanyl 5 "
            "(project rule, docs/rules.md); buprenorphine and norbuprenorphine 5, methadone 300 screen "
            "and 100 confirm, EDDP 100, naloxone 5, fentanyl and norfentanyl 1 confirm, "
            "ethyl glucuronide 500 (check); ethyl sulfate 100 (Quest 90418 reference range <100 ng/mL); "
            "gabapentin 5000 confirm (ARUP 2012228 Gabapentin, Urine, LC-MS/MS: positive cutoff 5.0 ug/mL)",
            initial={
                "benzodiazepines": 200.0,
                "cocaine": 300.0,
                "opiates": 300.0,
                "fentanyl": 5.0,
                "buprenorphine": 5.0,
                "norbuprenorphine": 5.0,
                "methadone": 300.0,
                "eddp": 100.0,
                "etg": 500.0,
                "ets": 100.0,
            },
            confirm={
                "buprenorphine": 5.0,
                "norbuprenorphine": 5.0,
                "naloxone": 5.0,
                "methadone": 100.0,
                "eddp": 100.0,
                "fentanyl": 1.0,
                "norfentanyl": 1.0,
                "etg": 500.0,
                "ets": 100.0,
                "gabapentin": 5000.0,
            },
        ),
    )
}
