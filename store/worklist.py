"""Opening and settling worklist items in the same transaction as their source.

Table events, so no writer of an alert, a quarantine item or a disclosure can forget the worklist: an
`alerts` row, a `lab_quarantine` row and a disclosure that becomes `blocked` each open one item (once:
(source, source_ref) is unique); a quarantine item resolved on the lab page, a report delivered after
all, or a stuck enrollment that becomes active, settles the items it opened ("resolved-at-source"). The
reconciler opens its findings itself (activities/reconciler.py), in the transaction of its change.
What the item asks for comes from domain/worklist.py; an unknown kind lands as a generic item.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, inspect, select, update
from sqlalchemy.engine import Connection

from domain import worklist as wl
from domain.vocab import ParticipantStatus
from store.db import table_of
from store.models import AlertRecord, CallListEntry, Disclosure, Participant, QuarantineItem, WorklistItem

ITEMS = table_of(WorklistItem)


def _now() -> datetime:
    return datetime.now(UTC)


def alert_ref(kind: str, subject_id: str) -> str:
    return f"{kind}:{subject_id}"


def finding_ref(kind: str, participant_id: str) -> str:
    """A reconciler finding's source_ref: one item per kind of finding and enrollment record."""
    return f"{kind}:{participant_id}"


def open_item(
    connection: Connection,
    *,
    source: str,
    source_ref: str,
    raw_kind: str,
    participant_id: str | None,
    subject_id: str,
    why: str,
    now: datetime | None = None,
    site: str | None = None,
) -> bool:
    """Open the item for this source row unless it is open already; True if it was opened now. The site is the
    participant's unless given (a rolled-back enrollment's record is gone: its caller names the site)."""
    exists = connection.execute(
        select(ITEMS.c.id).where(ITEMS.c.source == source, ITEMS.c.source_ref == source_ref)
    ).first()
    if exists is not None:
        return False
    now = now or _now()
    spec = wl.spec_for(source, raw_kind)
    if site is None and participant_id:
        participants = table_of(Participant)
        site = connection.execute(select(participants.c.site).where(participants.c.id == participant_id)).scalar()
    connection.execute(
        ITEMS.insert().values(
            source=source,
            source_ref=source_ref[:200],
            raw_kind=raw_kind[:40],
            kind=spec.kind.value,
            severity=spec.severity.value,
            participant_id=participant_id,
            site=site,
            subject_type=spec.subject_type,
            subject_id=subject_id[:200],
            why=(why or spec.title)[:2000],
            todo=spec.todo[:400],
            owner_role=spec.owner_role,
            status=wl.Status.OPEN.value,
            due_at=wl.due_at(spec, now),
            escalation_level=0,
            next_escalation_at=wl.next_escalation_at(spec, now, 0),
            notes=[{"at": now.isoformat(), "actor": "system", "what": "opened", "text": spec.title}],
            created_at=now,
            updated_at=now,
        )
    )
    return True


def settle(connection: Connection, *, source: str, source_ref: str, actor: str, text: str) -> int:
    """Resolve the source's open item as resolved-at-source; returns how many were settled."""
    rows = connection.execute(
        select(ITEMS.c.id, ITEMS.c.notes).where(
            ITEMS.c.source == source, ITEMS.c.source_ref == source_ref, ITEMS.c.status != wl.Status.RESOLVED.value
        )
    ).all()
    now = _now()
    for row in rows:
        notes = list(row.notes or []) + [{"at": now.isoformat(), "actor": actor, "what": "resolved", "text": text}]
        connection.execute(
            update(ITEMS)
            .where(ITEMS.c.id == row.id)
            .values(
                status=wl.Status.RESOLVED.value,
                outcome=wl.Outcome.RESOLVED_AT_SOURCE.value,
                resolved_by=actor[:32],
                resolved_at=now,
                next_escalation_at=None,
                resolution_note=text[:1000],
                notes=notes,
                updated_at=now,
            )
        )
    return len(rows)


@event.listens_for(AlertRecord, "after_insert")
def _alert_opened(_mapper: Any, connection: Connection, alert: AlertRecord) -> None:
    open_item(
        connection,
        source=wl.Source.ALERT,
        source_ref=alert_ref(alert.kind, alert.subject_id),
        raw_kind=alert.kind,
        participant_id=alert.participant_id,
        subject_id=alert.subject_id,
        why=alert.detail,
    )


@event.listens_for(QuarantineItem, "after_insert")
def _held(_mapper: Any, connection: Connection, item: QuarantineItem) -> None:
    why = item.reason + (f" (code {item.held_code})" if item.held_code else "")
    open_item(
        connection,
        source=wl.Source.QUARANTINE,
        source_ref=str(item.id),
        raw_kind=item.reason_code,
        participant_id=None,
        subject_id=str(item.lab_message_id),
        why=why,
    )


@event.listens_for(QuarantineItem, "after_update")
def _held_resolved(_mapper: Any, connection: Connection, item: QuarantineItem) -> None:
    if item.resolved_at is not None and inspect(item).attrs.resolved_at.history.has_changes():
        settle(
            connection,
            source=wl.Source.QUARANTINE,
            source_ref=str(item.id),
            actor=item.resolved_by or "system",
            text=f"quarantine item {item.resolution or 'resolved'} on the lab page",
        )


@event.listens_for(CallListEntry, "after_insert")
def _to_call(_mapper: Any, connection: Connection, entry: CallListEntry) -> None:
    open_item(
        connection,
        source=wl.Source.CALL_LIST,
        source_ref=str(entry.id),
        raw_kind="call-list",
        participant_id=entry.participant_id,
        subject_id=entry.screening_id or entry.participant_id,
        why=entry.reason,
    )


@event.listens_for(CallListEntry, "after_update")
def _called(_mapper: Any, connection: Connection, entry: CallListEntry) -> None:
    if entry.resolved_at is not None and inspect(entry).attrs.resolved_at.history.has_changes():
        settle(
            connection,
            source=wl.Source.CALL_LIST,
            source_ref=str(entry.id),
            actor=entry.resolved_by or "system",
            text=f"call list: {entry.outcome or 'done'}",
        )


@event.listens_for(Participant, "after_update")
def _enrollment_settled(_mapper: Any, connection: Connection, row: Participant) -> None:
    """An enrollment the reconciler could not finish is settled however it is finished after all (a later pass,
    the client's retry, the program workflow's first activity)."""
    if row.status != ParticipantStatus.ENROLLING and inspect(row).attrs.status.history.has_changes():
        settle(
            connection,
            source=wl.Source.RECONCILER,
            source_ref=finding_ref(wl.WorklistKind.ENROLLMENT_STUCK, row.id),
            actor="system",
            text=f"the enrollment was finished after all (status {row.status})",
        )


def _disclosure_changed(connection: Connection, row: Disclosure) -> None:
    if row.status == "blocked":
        open_item(
            connection,
            source=wl.Source.DISCLOSURE,
            source_ref=row.id,
            raw_kind="disclosure-blocked",
            participant_id=row.participant_id,
            subject_id=row.id,
            why=f"report ({row.category}) to {row.recipient_id} not sent: {row.reason or 'blocked'}",
        )
    elif row.status == "delivered":
        text = "the report was delivered after all"
        settle(connection, source=wl.Source.DISCLOSURE, source_ref=row.id, actor="system", text=text)
        settle(
            connection,
            source=wl.Source.ALERT,
            source_ref=alert_ref("disclosure-failed", row.id),
            actor="system",
            text=text,
        )


@event.listens_for(Disclosure, "after_insert")
def _disclosure_inserted(_mapper: Any, connection: Connection, row: Disclosure) -> None:
    _disclosure_changed(connection, row)


@event.listens_for(Disclosure, "after_update")
def _disclosure_updated(_mapper: Any, connection: Connection, row: Disclosure) -> None:
    if inspect(row).attrs.status.history.has_changes():
        _disclosure_changed(connection, row)
