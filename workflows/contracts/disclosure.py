"""DiscloseEventWorkflow and DisclosureWorkflow (workflows/disclosure.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def disclosure_workflow_id(disclosure_id: str) -> str:
    return f"disclosure-{disclosure_id}"


@dataclass
class DisclosureEvent:
    """Something reportable happened; each recipient that wants its category gets a disclosure.

    `facts` stays a dict (the one untyped payload, tests/workflows/test_payload_shapes.py): its shape is not
    fixed by `category` (a retraction, {"retracted", "retraction_reason"}, comes in any category), the data
    converter picks the first union member that constructs and drops keys it does not know, and the facts are
    stored and compared as they came (activities/disclosure.py: the same facts again plan no amendment), so a
    typed form that wrote absent facts as nulls would amend every report planned again."""

    participant_id: str
    category: str  # domain.consent.CATEGORIES
    event_ref: str  # what it is about: a screening id, "phase-2026-11-23", ...
    facts: dict[str, Any]  # the minimum facts (no PHI); the allow-list trims them again
    corrects_event: bool = False  # a corrected result: re-disclose to whoever got the original


@dataclass
class PlannedDisclosure:
    disclosure_id: str
    recipient_id: str
    corrects: str | None = None
    # The report's category: a retraction keeps the category of the report it withdraws. None in plans
    # recorded before issue 16 (the event's category).
    category: str | None = None


@dataclass
class DisclosureInput:
    disclosure_id: str
    participant_id: str
    recipient_id: str
    category: str


@dataclass
class DisclosureState:
    disclosure_id: str
    status: str = "pending"  # pending | retrying | delivered | blocked | failed | cancelled
    attempts: int = 0
    reason: str = ""
    last_status_code: int | None = None
    cancelled_because: str | None = None
