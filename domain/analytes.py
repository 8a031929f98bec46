"""What a lab can report about a urine specimen, and how a lab's codes map onto it.

Every analyte has a stable snake_case key used everywhere else (cutoff tables, findings, flags),
a label for staff, the drug class it belongs to, and the prescribed medication it evidences, if
any. Lab codes are mapped to keys through a table, never by the label a message carries
(LOINC; HL7 v2.5.1 OBX-3): an unmapped code returns None and goes to review.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# --- drug classes ----------------------------------------------------------------------------
# A class groups an initial (screen) test with the analytes that confirm it, following the rows of
# the federal panel (HHS Mandatory Guidelines, urine; 49 CFR 40.87). Confirmation of a class
# resolves its screen, and an
# "unexpected-present" flag is raised once per class.

CANNABINOIDS = "cannabinoids"
COCAINE = "cocaine"
CODEINE_MORPHINE = "codeine-morphine"
HYDROCODONE_HYDROMORPHONE = "hydrocodone-hydromorphone"
OXYCODONE_OXYMORPHONE = "oxycodone-oxymorphone"
HEROIN = "6-acetylmorphine"
PHENCYCLIDINE = "phencyclidine"
FENTANYL = "fentanyl"
AMPHETAMINES = "amphetamines"
MDMA_MDA = "mdma-mda"
BENZODIAZEPINES = "benzodiazepines"
BUPRENORPHINE = "buprenorphine"
NALOXONE = "naloxone"
METHADONE = "methadone"
ALCOHOL = "alcohol"
BARBITURATES = "barbiturates"
TRAMADOL = "tramadol"
MEPERIDINE = "meperidine"
PROPOXYPHENE = "propoxyphene"
GABAPENTIN = "gabapentin"
CARISOPRODOL = "carisoprodol"
ZOLPIDEM = "zolpidem"
KRATOM = "kratom"
XYLAZINE = "xylazine"
NITAZENES = "nitazenes"
SPECIMEN_VALIDITY = "specimen-validity"

DRUG_CLASSES: tuple[str, ...] = (
    CANNABINOIDS,
    COCAINE,
    CODEINE_MORPHINE,
    HYDROCODONE_HYDROMORPHONE,
    OXYCODONE_OXYMORPHONE,
    HEROIN,
    PHENCYCLIDINE,
    FENTANYL,
    AMPHETAMINES,
    MDMA_MDA,
    BENZODIAZEPINES,
    BUPRENORPHINE,
    NALOXONE,
    METHADONE,
    ALCOHOL,
    BARBITURATES,
    TRAMADOL,
    MEPERIDINE,
    PROPOXYPHENE,
    GABAPENTIN,
    CARISOPRODOL,
    ZOLPIDEM,
    KRATOM,
    XYLAZINE,
    NITAZENES,
)

# --- medications -----------------------------------------------------------------------------
# Keys a participant's prescription list (MedicationContext.expected) is written in. A program may
# use other keys: they explain nothing and are never judged absent.

MEDICATIONS: dict[str, str] = {
    "buprenorphine": "buprenorphine (alone or with naloxone)",
    "methadone": "methadone",
    "naltrexone": "naltrexone (oral or injectable)",
    "benzodiazepine": "a prescribed benzodiazepine",
    "amphetamine": "prescribed amphetamine salts",
    "methamphetamine": "prescribed methamphetamine",
    "codeine": "codeine",
    "morphine": "morphine",
    "hydrocodone": "hydrocodone",
    "hydromorphone": "hydromorphone",
    "oxycodone": "oxycodone",
    "oxymorphone": "oxymorphone",
    "fentanyl": "prescribed fentanyl",
    "naloxone": "naloxone rescue (e.g. nasal spray)",
    "barbiturate": "a prescribed barbiturate (e.g. butalbital, phenobarbital)",
    "tramadol": "tramadol",
    "meperidine": "meperidine",
    "gabapentin": "gabapentin",
    "carisoprodol": "carisoprodol",
    "zolpidem": "zolpidem",
}

# Naltrexone is tracked by its dose record, not by a urine panel (project rule, docs/rules.md): no analyte
# evidences it, so it is never reported "expected-absent".
NOT_MONITORED_BY_URINE: frozenset[str] = frozenset({"naltrexone"})


@dataclass(frozen=True)
class Analyte:
    key: str
    label: str
    drug_class: str
    # The prescribed medication whose use this analyte evidences (None for most drugs of abuse).
    medication: str | None = None
    # Other prescriptions that legitimately produce this analyte, usually as a metabolite
    # (codeine is metabolised to morphine, oxycodone to oxymorphone, ...).
    also_explained_by: tuple[str, ...] = ()
    # Creatinine, pH and the like: they describe the specimen, not a drug.
    is_validity_check: bool = False

    def explained_by(self, medications: Iterable[str]) -> bool:
        """Whether one of these prescriptions accounts for finding this analyte."""
        prescribed = set(medications)
        return self.medication in prescribed or any(name in prescribed for name in self.also_explained_by)


def _drug(key: str, label: str, drug_class: str, medication: str | None = None, *also: str) -> Analyte:
    return Analyte(key=key, label=label, drug_class=drug_class, medication=medication, also_explained_by=also)


def _validity(key: str, label: str) -> Analyte:
    return Analyte(key=key, label=label, drug_class=SPECIMEN_VALIDITY, is_validity_check=True)


_OPIATE_SCREEN_DRUGS = ("codeine", "morphine", "hydrocodone", "hydromorphone")

ANALYTES: dict[str, Analyte] = {
    analyte.key: analyte
    for analyte in (
        # Class-level immunoassays (initial tests): a lab reports these before confirming.
        _drug("cannabinoids", "Cannabinoids (screen)", CANNABINOIDS),
        _drug("cocaine", "Cocaine metabolite (screen)", COCAINE),
        _drug("opiates", "Opiates (screen)", CODEINE_MORPHINE, None, *_OPIATE_SCREEN_DRUGS),
        _drug("amphetamines", "Amphetamines (screen)", AMPHETAMINES, None, "amphetamine", "methamphetamine"),
        _drug("benzodiazepines", "Benzodiazepines", BENZODIAZEPINES, "benzodiazepine"),
        # Specific analytes of the federal panel (HHS Mandatory Guidelines, urine).
        _drug("thca", "THC-COOH (marijuana metabolite)", CANNABINOIDS),
        _drug("benzoylecgonine", "Benzoylecgonine (cocaine metabolite)", COCAINE),
        _drug("codeine", "Codeine", CODEINE_MORPHINE, "codeine"),
        _drug("morphine", "Morphine", CODEINE_MORPHINE, "morphine", "codeine"),
        _drug("hydrocodone", "Hydrocodone", HYDROCODONE_HYDROMORPHONE, "hydrocodone"),
        _drug("hydromorphone", "Hydromorphone", HYDROCODONE_HYDROMORPHONE, "hydromorphone", "hydrocodone"),
        _drug("norhydrocodone", "Norhydrocodone (hydrocodone metabolite)", HYDROCODONE_HYDROMORPHONE, "hydrocodone"),
        _drug("oxycodone", "Oxycodone", OXYCODONE_OXYMORPHONE, "oxycodone"),
        _drug("oxymorphone", "Oxymorphone", OXYCODONE_OXYMORPHONE, "oxymorphone", "oxycodone"),
        _drug("noroxycodone", "Noroxycodone (oxycodone metabolite)", OXYCODONE_OXYMORPHONE, "oxycodone"),
        # 6-AM is formed only from heroin: no prescription explains it.
        _drug("6am", "6-Acetylmorphine (heroin metabolite)", HEROIN),
        _drug("pcp", "Phencyclidine (PCP)", PHENCYCLIDINE),
        _drug("fentanyl", "Fentanyl", FENTANYL, "fentanyl"),
        _drug("norfentanyl", "Norfentanyl (fentanyl metabolite)", FENTANYL, "fentanyl"),
        _drug("amphetamine", "Amphetamine", AMPHETAMINES, "amphetamine", "methamphetamine"),
        _drug("methamphetamine", "Methamphetamine", AMPHETAMINES, "methamphetamine"),
        _drug("mdma", "MDMA", MDMA_MDA),
        _drug("mda", "MDA", MDMA_MDA),
        # Medications for opioid use disorder (docs/rules.md).
        _drug("buprenorphine", "Buprenorphine", BUPRENORPHINE, "buprenorphine"),
        _drug("norbuprenorphine", "Norbuprenorphine (buprenorphine metabolite)", BUPRENORPHINE, "buprenorphine"),
        # Naloxone comes with the combination product; alone it may also be a rescue dose.
        _drug("naloxone", "Naloxone", NALOXONE, "buprenorphine", "naloxone"),
        _drug("methadone", "Methadone", METHADONE, "methadone"),
        _drug("eddp", "EDDP (methadone metabolite)", METHADONE, "methadone"),
        # Alcohol markers.
        _drug("ethanol", "Ethanol", ALCOHOL),
        _drug("etg", "Ethyl glucuronide (alcohol metabolite)", ALCOHOL),
        _drug("ets", "Ethyl sulfate (alcohol metabolite)", ALCOHOL),
        # Classes outside the federal panel that clinical panels report (issue 19).
        _drug("barbiturates", "Barbiturates (screen)", BARBITURATES, "barbiturate"),
        _drug("butalbital", "Butalbital", BARBITURATES, "barbiturate"),
        _drug("phenobarbital", "Phenobarbital", BARBITURATES, "barbiturate"),
        _drug("secobarbital", "Secobarbital", BARBITURATES, "barbiturate"),
        _drug("alprazolam", "Alprazolam", BENZODIAZEPINES, "benzodiazepine"),
        _drug(
            "alpha_hydroxyalprazolam",
            "alpha-Hydroxyalprazolam (alprazolam metabolite)",
            BENZODIAZEPINES,
            "benzodiazepine",
        ),
        _drug("clonazepam", "Clonazepam", BENZODIAZEPINES, "benzodiazepine"),
        _drug("7_aminoclonazepam", "7-Aminoclonazepam (clonazepam metabolite)", BENZODIAZEPINES, "benzodiazepine"),
        _drug("lorazepam", "Lorazepam", BENZODIAZEPINES, "benzodiazepine"),
        _drug("nordiazepam", "Nordiazepam", BENZODIAZEPINES, "benzodiazepine"),
        _drug("oxazepam", "Oxazepam", BENZODIAZEPINES, "benzodiazepine"),
        _drug("temazepam", "Temazepam", BENZODIAZEPINES, "benzodiazepine"),
        _drug("tramadol", "Tramadol", TRAMADOL, "tramadol"),
        _drug("meperidine", "Meperidine", MEPERIDINE, "meperidine"),
        _drug("normeperidine", "Normeperidine (meperidine metabolite)", MEPERIDINE, "meperidine"),
        _drug("propoxyphene", "Propoxyphene", PROPOXYPHENE),
        _drug("norpropoxyphene", "Norpropoxyphene (propoxyphene metabolite)", PROPOXYPHENE),
        _drug("gabapentin", "Gabapentin", GABAPENTIN, "gabapentin"),
        _drug("carisoprodol", "Carisoprodol", CARISOPRODOL, "carisoprodol"),
        _drug("meprobamate", "Meprobamate (carisoprodol metabolite)", CARISOPRODOL, "carisoprodol"),
        _drug("zolpidem", "Zolpidem", ZOLPIDEM, "zolpidem"),
        _drug("zolpidem_carboxylate", "Zolpidem phenyl-4-carboxylate (zolpidem metabolite)", ZOLPIDEM, "zolpidem"),
        _drug("mitragynine", "Mitragynine (kratom)", KRATOM),
        _drug("7_hydroxymitragynine", "7-Hydroxymitragynine (kratom)", KRATOM),
        _drug("xylazine", "Xylazine", XYLAZINE),
        _drug("nitazenes", "Nitazenes (screen)", NITAZENES),
        _drug("metonitazene", "Metonitazene", NITAZENES),
        # Specimen validity (49 CFR 40.93-40.96).
        _validity("creatinine", "Creatinine"),
        _validity("specific_gravity", "Specific gravity"),
        _validity("ph", "pH"),
        _validity("nitrite", "Nitrite"),
        _validity("oxidant", "Oxidizing adulterant"),
        _validity("surfactant", "Surfactant"),
    )
}


def get_analyte(key: str) -> Analyte | None:
    """The registered analyte for a key, or None for a key nobody registered."""
    return ANALYTES.get(key)


@dataclass(frozen=True)
class AddedAnalyte:
    """An analyte a clinic's administrator added without a code change (POST /lab/analytes): its
    class, the prescriptions that explain it and its default cutoffs (ng/mL), used when the lab
    reports none. Interpreted like a built-in analyte; a built-in key is never replaced."""

    key: str
    label: str
    drug_class: str
    medication: str | None = None
    also_explained_by: tuple[str, ...] = ()
    initial_cutoff: float | None = None
    confirm_cutoff: float | None = None

    def analyte(self) -> Analyte:
        return Analyte(
            key=self.key,
            label=self.label,
            drug_class=self.drug_class,
            medication=self.medication,
            also_explained_by=tuple(self.also_explained_by),
        )


def catalogue(added: Iterable[AddedAnalyte] = ()) -> dict[str, Analyte]:
    """The built-in analytes and the added ones (built-in keys win)."""
    return {**{a.key: a.analyte() for a in added}, **ANALYTES}


# --- lab codes -------------------------------------------------------------------------------
# A code map is keyed by (coding system, code):
#   ("LN", "3773-9")          a LOINC code. Messages name LOINC "LN" (HL7 v2 table 0396), and
#                             sometimes "LOINC", its OID or its URL: all are read as "LN".
#   ("L:acme", "BUPU")        the local code "BUPU" of the lab whose id is "acme". The lab id is
#                             ours (configured per sending lab, e.g. from MSH-3/MSH-4), so that two
#                             labs' local codes never collide.
# A lab's entries are looked up first, whatever coding system its message names: a lab that sends
# a mislabelled LOINC code (19659-2 as a generic "drug screen") is corrected for that lab alone by
# an entry ("L:that-lab", "19659-2"), while every other lab keeps the true meaning.

LOINC = "LN"
LOCAL_PREFIX = "L:"
_LOINC_ALIASES = frozenset({"ln", "loinc", "2.16.840.1.113883.6.1", "http://loinc.org"})

CodeMap = Mapping[tuple[str, str], str]


def local_system(lab_id: str) -> str:
    """The coding-system name under which a lab's own codes are kept, e.g. "L:acme"."""
    lab = lab_id.strip()
    if not lab:
        raise ValueError("a lab id must be a non-empty string")
    return f"{LOCAL_PREFIX}{lab}"


def local_code_map(lab_id: str, codes: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Entries for one lab's local codes, ready to merge with DEFAULT_CODE_MAP."""
    system = local_system(lab_id)
    return {(system, code.strip()): analyte for code, analyte in codes.items()}


def map_code(code_map: CodeMap, lab_id: str | None, system: str, code: str) -> str | None:
    """The analyte key for a lab's code: the lab's own entry first, then the named coding system.

    None when nothing matches: the caller sends the result to review rather than guessing.
    """
    wanted = (code or "").strip()
    if not wanted:
        return None
    if lab_id and lab_id.strip():
        local = code_map.get((local_system(lab_id), wanted))
        if local is not None:
            return local
    named_system = _normalise_system(system)
    # A message cannot borrow another lab's local table by naming it as its coding system.
    if not named_system or named_system.startswith(LOCAL_PREFIX):
        return None
    return code_map.get((named_system, wanted))


def unknown_analytes(code_map: CodeMap) -> tuple[str, ...]:
    """Analyte keys a code map points to that are not registered: a configuration error."""
    return tuple(sorted({key for key in code_map.values() if key not in ANALYTES}))


def _normalise_system(system: str | None) -> str:
    name = (system or "").strip()
    return LOINC if name.lower() in _LOINC_ALIASES else name


# LOINC codes (loinc.org; docs/LOINC-NOTICE.md), mapped by code, never by the label a message gives them.
DEFAULT_CODE_MAP: dict[tuple[str, str], str] = {
    (LOINC, "3414-0"): "buprenorphine",
    (LOINC, "49751-1"): "norbuprenorphine",
    (LOINC, "3773-9"): "methadone",
    (LOINC, "41858-2"): "eddp",
    (LOINC, "11235-9"): "fentanyl",
    (LOINC, "43199-9"): "norfentanyl",
    (LOINC, "3393-6"): "benzoylecgonine",
    (LOINC, "3427-2"): "cannabinoids",
    (LOINC, "3349-8"): "amphetamines",
    (LOINC, "2161-8"): "creatinine",
    (LOINC, "2965-2"): "specific_gravity",
    (LOINC, "2756-5"): "ph",
    # Phencyclidine [Presence] in Urine by Screen method. Public sample messages use it as a
    # generic "drug screen" label; it still means PCP here. Fix a lab that misuses it with a
    # local entry for that lab.
    (LOINC, "19659-2"): "pcp",
    # Sure: "Opiates [Presence] in Urine by Screen method" and "Benzodiazepines [Presence] in
    # Urine by Screen method", checked against a LOINC table extract and a LOINC-derived code list.
    (LOINC, "19295-5"): "opiates",
    (LOINC, "14316-4"): "benzodiazepines",
}
