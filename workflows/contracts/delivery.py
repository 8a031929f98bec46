"""One delivery attempt, of a disclosure (workflows/disclosure.py) or of a selection notice
(workflows/selection.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AttemptResult:
    """One delivery attempt, decided by the activity that made it."""

    kind: str  # delivered | retry | waiting | disable-recipient | stop-and-surface | blocked
    reason: str
    delay_s: float | None = None
    status_code: int | None = None
