"""An alert a workflow raises for staff (activities/records.py files it; the worklist shows it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Alert:
    kind: str  # result-overdue | ...
    participant_id: str
    subject_id: str
    detail: str
