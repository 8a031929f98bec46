"""Lab results as a screening files them (workflows/screening.py; the ingest, ingest/lab.py, sends them) and
the clinician's reviews of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.analytes import AddedAnalyte
from domain.interpretation import Interpretation
from domain.loinc_tox import AnalyteMethod
from domain.vocab import FinalOutcome, ReviewDecision

REVIEW_DECISIONS = tuple(ReviewDecision)
# Final outcomes a report can carry.
FINAL_NEGATIVE = FinalOutcome.NEGATIVE
FINAL_POSITIVE = FinalOutcome.POSITIVE
FINAL_EXPLAINED = FinalOutcome.EXPLAINED  # non-negative with a documented legitimate explanation
FINAL_INVALID = FinalOutcome.INVALID
FINAL_REFUSAL = FinalOutcome.REFUSAL


@dataclass
class AnalyteIn:
    """One mapped analyte result as the lab sent it (see domain.interpretation.AnalyteResult)."""

    analyte: str
    value: float | None = None
    qualitative: str | None = None
    units: str | None = None
    lab_cutoff: float | None = None
    method: str = "screen"
    code: str | None = None  # the lab's code, kept for the record
    # Why this method (domain.loinc_tox.resolve_method): loinc-code | clinic-override | clinic-mapping |
    # lab-label | default, and a line for the review. None in results recorded before issue 19.
    method_basis: str | None = None
    method_note: str | None = None


@dataclass
class LabReport:
    """A lab's result for one specimen, matched to a screening by the ingest."""

    result_id: str  # ours; the same result sent twice has the same id
    lab_id: str
    message_ref: str  # lab message row id, for the audit trail
    specimen_id: str
    result_status: str  # P | F | C
    received_at: str
    analytes: list[AnalyteIn]
    collected_at: str | None = None
    expected_medications: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Codes of this specimen not in the code table, held for staff ("CODE (text) from LAB"): the
    # mapped analytes are filed and interpreted, but the result cannot be final until each is
    # mapped or marked not monitored (issue 19).
    held_codes: list[str] = field(default_factory=list)
    # Admin-added analytes among `analytes`, so that the interpreter knows their class, medication
    # links and default cutoffs (issue 19). Empty in reports recorded before.
    added_analytes: list[AddedAnalyte] = field(default_factory=list)


@dataclass
class SettledCodes:
    """Staff settled one held code: `report` is the result again, with the code now mapped (and its
    analyte among report.analytes) or dropped as not monitored, and the codes still held."""

    report: LabReport
    code: str
    resolution: str  # mapped | not-monitored
    actor: str
    note: str


@dataclass
class ResultEntry:
    """One lab result as filed. Its interpretation and methods are the domain's own frozen dataclasses: the data
    converter encodes them as dataclasses.asdict, with the keys interpretation_to_dict wrote before issue 14, so the
    states in older histories and saved snapshots decode to them (store.shapes.typed for a snapshot)."""

    result_id: str
    result_status: str
    received_at: str
    interpretation: Interpretation
    superseded_by: str | None = None
    corrects: str | None = None
    held_codes: list[str] = field(default_factory=list)
    # How each analyte's method was decided: shown in the review.
    methods: list[AnalyteMethod] = field(default_factory=list)
    lab_id: str = ""  # the lab that sent it ("" in results recorded before it was kept)


@dataclass
class Review:
    decision: str
    explanation: str
    actor: str
    at: str | None = None
    # A clinician reverses the review that decided a final result: the new decision replaces it and every
    # recipient told of the result is sent the amendment (issue 16).
    reverses: bool = False


@dataclass
class ConfirmationRequest:
    """A clinician asked the lab to confirm a screen (review decision request-confirmation): the staff worklist
    carries it until a result by a confirmatory method arrives for the analytes named."""

    requested_at: str
    actor: str
    result_id: str | None  # the presumptive result the clinician reviewed
    lab_id: str
    specimen_id: str | None
    analytes: list[str] = field(default_factory=list)
    answered_by: str | None = None  # the confirmatory result's id, once it arrived
    answered_at: str | None = None
