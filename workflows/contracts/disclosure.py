"""DiscloseEventWorkflow and DisclosureWorkflow (workflows/disclosure.py)."""

from __future__ import annotations

from dataclasses import dataclass

from domain.report_facts import ReportFacts


def disclosure_workflow_id(disclosure_id: str) -> str:
    return f"disclosure-{disclosure_id}"


@dataclass
class DisclosureEvent:
    """Something reportable happened; each recipient that wants its category gets a disclosure.

    `facts` is one flat form for every category (domain.report_facts): the category does not fix which facts
    an event has (a retraction comes under any category), and the facts are stored and compared as the dict of
    the facts given (domain.report_facts.facts_dict), so an event planned again with the same facts plans no
    amendment. An event written before the facts were typed (a flat dict) reads as the same facts."""

    participant_id: str
    category: str  # domain.consent.CATEGORIES
    event_ref: str  # what it is about: a screening id, "phase-2026-11-23", ...
    facts: ReportFacts  # the minimum facts (no PHI); the allow-list trims them again
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
