"""Data that crosses Temporal: workflow inputs, update arguments, query results, activity
arguments. Ids and clinical facts only; never names, birth dates or contact details.

Plain dataclasses of JSON-friendly fields (dates as ISO strings) so payloads stay readable after
decryption and stable across versions: add fields with defaults, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIVE = "active"
DISCHARGE_STATUSES = {
    "completed": "completed",
    "withdrawn": "withdrawn",
    "transferred": "transferred",
    "administrative": "discharged-administrative",
}


@dataclass
class PhaseEntry:
    phase: str
    since: str  # ISO datetime
    reason: str
    actor: str


@dataclass
class ParticipantState:
    participant_id: str
    program: str
    site: str
    phase: str
    start_date: str
    timezone: str
    plan: dict[str, Any]
    status: str = ACTIVE
    phase_history: list[PhaseEntry] = field(default_factory=list)
    discharge_kind: str | None = None
    discharge_reason: str | None = None
    discharged_at: str | None = None
    discharged_by: str | None = None
    runs: int = 1  # how many runs this program has had (continue-as-new)


@dataclass
class ParticipantInput:
    state: ParticipantState
    # True when this run continues an earlier one: the record was confirmed then.
    continued: bool = False


@dataclass
class PhaseChange:
    phase: str
    reason: str
    actor: str


@dataclass
class Discharge:
    kind: str
    reason: str
    actor: str


@dataclass
class ParticipantSync:
    """What the participant's SQL row must say after a workflow change."""

    participant_id: str
    phase: str
    status: str
    discharged_at: str | None = None


# ApplicationError types that the API maps to HTTP statuses.
CONFLICT = "Conflict"  # the request does not fit the current state (409)
INVALID = "Invalid"  # the request itself is wrong (422)
