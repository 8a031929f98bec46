"""The worklist's escalation pass: items nobody resolved in time go up the ladder of their kind
(domain/worklist.py), each step in the item's notes and the audit trail; urgent ones are paged.
Idempotent: an item escalated once for a step has its next step later, so a retried pass does nothing."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from temporalio import activity

from domain import worklist as wl
from domain.webhook_signing import encode_payload, webhook_headers
from store import audit
from store.db import session_scope
from store.models import AlertRecord, Disclosure, QuarantineItem, WorklistItem
from store.worklist import alert_ref, open_item

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class EscalationPass:
    now: str  # ISO time: workflow.now() of the pass
    backfill: bool = False  # open items for alerts, held messages and blocked reports older than the worklist


@dataclass
class EscalationReport:
    escalated: list[int] = field(default_factory=list)
    opened: int = 0
    next_at: str | None = None  # the earliest escalation still to come


@dataclass(frozen=True)
class Page:
    item_id: int
    level: int
    body: dict


class Pager:
    """POSTs an escalated urgent item to a paging service, signed with Standard Webhooks headers."""

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    def send(self, page: Page) -> None:
        body = encode_payload(page.body)
        msg_id = f"worklist-{page.item_id}-{page.level}"  # the same on every retry: the receiver drops repeats
        headers = webhook_headers(self.secret, msg_id, int(time.time()), body)
        response = httpx.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=self.timeout,
            follow_redirects=False,
        )
        response.raise_for_status()


class WorklistActivities:
    def __init__(self, engine: Engine, pager: Pager | None = None) -> None:
        self.engine = engine
        self.pager = pager

    @activity.defn
    def escalate_due(self, run: EscalationPass) -> EscalationReport:
        now = datetime.fromisoformat(run.now)
        report = EscalationReport()
        if run.backfill:
            report.opened = self._backfill()
        entries, pages = [], []
        with session_scope(self.engine) as session:
            due = session.exec(
                select(WorklistItem)
                .where(
                    WorklistItem.status != wl.Status.RESOLVED,
                    col(WorklistItem.next_escalation_at).is_not(None),
                    col(WorklistItem.next_escalation_at) <= now,
                )
                .order_by(col(WorklistItem.next_escalation_at))
                .limit(BATCH)
            ).all()
            for item in due:
                spec = wl.spec_for(item.source, item.raw_kind)
                # Every step that fell due (several, when passes were missed: the worker was down), each noted.
                while item.next_escalation_at is not None and item.next_escalation_at <= now:
                    role = wl.escalation_role(spec, item.escalation_level)
                    item.escalation_level += 1
                    item.escalated_to, item.escalated_at, item.updated_at = role, now, now
                    item.next_escalation_at = wl.next_escalation_at(spec, item.created_at, item.escalation_level)
                    item.notes = [
                        *item.notes,
                        {
                            "at": now.isoformat(),
                            "actor": "system",
                            "what": "escalated",
                            "text": f"not resolved in time: escalated to {role}",
                        },
                    ]
                    entries.append(
                        audit.AuditEntry(
                            actor="system",
                            role="system",
                            action="worklist.escalated",
                            outcome=f"to {role}",
                            subject_type="worklist-item",
                            subject_id=str(item.id),
                            participant_id=item.participant_id,
                            source="worklist",
                            detail=f"{item.kind} level {item.escalation_level}",
                        )
                    )
                session.add(item)
                assert item.id is not None  # a stored row
                report.escalated.append(item.id)
                if item.severity == wl.Severity.URGENT:
                    pages.append(
                        Page(
                            item.id,
                            item.escalation_level,
                            {
                                "type": "worklist.escalated",
                                "item_id": item.id,
                                "kind": item.kind,
                                "severity": item.severity,
                                "site": item.site,
                                "subject_type": item.subject_type,
                                "escalated_to": role,
                                "due_at": item.due_at.isoformat(),
                            },
                        )
                    )
        for entry in entries:
            audit.append(self.engine, entry)
        for page in pages:
            self._page(page)
        with session_scope(self.engine) as session:
            following = session.exec(
                select(WorklistItem.next_escalation_at)
                .where(WorklistItem.status != wl.Status.RESOLVED, col(WorklistItem.next_escalation_at).is_not(None))
                .order_by(col(WorklistItem.next_escalation_at))
                .limit(1)
            ).first()
        report.next_at = following.isoformat() if following else None
        return report

    def _page(self, page: Page) -> None:
        if self.pager is None:
            return
        try:
            self.pager.send(page)
        except Exception as exc:  # a paging outage must not stop escalation; the worklist shows the item
            log.warning("paging worklist item %s failed: %s", page.item_id, type(exc).__name__)
            return
        audit.append(
            self.engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action="worklist.paged",
                outcome="sent",
                subject_type="worklist-item",
                subject_id=str(page.item_id),
                source="worklist",
                detail=json.dumps({"level": page.level}),
            ),
        )

    def _backfill(self) -> int:
        """Items for sources older than the worklist (or written while its table events were not loaded)."""
        opened = 0
        with session_scope(self.engine) as session:
            connection = session.connection()
            for alert in session.exec(select(AlertRecord).where(col(AlertRecord.resolved_at).is_(None))).all():
                opened += open_item(
                    connection,
                    source=wl.Source.ALERT,
                    source_ref=alert_ref(alert.kind, alert.subject_id),
                    raw_kind=alert.kind,
                    participant_id=alert.participant_id,
                    subject_id=alert.subject_id,
                    why=alert.detail,
                )
            for held in session.exec(select(QuarantineItem).where(col(QuarantineItem.resolved_at).is_(None))).all():
                opened += open_item(
                    connection,
                    source=wl.Source.QUARANTINE,
                    source_ref=str(held.id),
                    raw_kind=held.reason_code,
                    participant_id=None,
                    subject_id=str(held.lab_message_id),
                    why=held.reason,
                )
            for row in session.exec(select(Disclosure).where(Disclosure.status == "blocked")).all():
                opened += open_item(
                    connection,
                    source=wl.Source.DISCLOSURE,
                    source_ref=row.id,
                    raw_kind="disclosure-blocked",
                    participant_id=row.participant_id,
                    subject_id=row.id,
                    why=f"report ({row.category}) not sent: {row.reason or ''}",
                )
        return opened

    def all(self) -> list:
        return [self.escalate_due]
