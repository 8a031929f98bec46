"""SelectionPeriodWorkflow and SelectionNoticeWorkflow (workflows/selection.py): a program period's
verifiable selection, from its commitment to its reveal, and the notices that publish it."""

from __future__ import annotations

from dataclasses import dataclass, field


def selection_period_workflow_id(task_queue: str, program: str, period: str) -> str:
    """One per deployment (its task queue, like the reconciler's schedule), program and period."""
    return f"selection-period--{task_queue}--{program}--{period}"


def selection_notice_workflow_id(notice_id: str) -> str:
    return f"selection-notice--{notice_id}"


@dataclass
class SelectionPeriodInput:
    """SelectionPeriodWorkflow: one program period, from its commitment to its reveal (no seed in here)."""

    program: str
    period: str  # YYYY-MM


@dataclass
class PeriodOpened:
    commitment: str
    published_at: str  # ISO
    reveal_at: str  # ISO, UTC: domain.verifiable.reveal_moment


@dataclass
class RevealRequest:
    program: str
    period: str
    at: str  # ISO: the workflow's now, which the reveal is checked against


@dataclass
class NoticePlan:
    program: str
    period: str
    kind: str  # domain.verifiable.NoticeKind


@dataclass
class SelectionPeriodState:
    program: str = ""
    period: str = ""
    commitment: str = ""
    status: str = "opening"  # opening | committed | revealed
    reveal_at: str | None = None
    notices: list[str] = field(default_factory=list)
