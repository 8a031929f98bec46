"""The reconciler's activities: find enrollments and lab messages a crash left half done, and
finish (or roll back, or put before staff) each one. Every action is in the audit trail as
actor "system". Each activity is idempotent: it re-reads the row and does nothing if it is done.

What it fixes (an enrollment completed, a lab message processed again) is only audited. What needs a
person is a worklist item (domain/worklist.py), opened in the same transaction as the change: an
enrollment rolled back (the person believes they are enrolled), an enrollment it cannot finish nor
undo (after the last attempt of a pass), a lab message it cannot process (held in the quarantine,
whose table event opens the item)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import worklist as wl
from domain.lab_intake import SenderBinding
from ingest.lab import LabIngest, LabSender
from iop.enrollment import IncompleteRecord, program_input, start_program
from store import audit
from store.db import session_scope
from store.models import ApiToken, IdempotencyRecord, LabMessage, Participant, QuarantineItem, utcnow
from store.programs import current_program
from store.worklist import finding_ref, open_item, settle

log = logging.getLogger(__name__)

ENROLLING = "enrolling"
RECEIVED = "received"
STALLED = "intake-stalled"


@dataclass
class ReconcileInput:
    stuck_after_seconds: int = 300
    lab_staff_after_seconds: int = 3600
    limit: int = 200


@dataclass
class StuckQuery:
    before: str  # ISO time: rows older than this are stuck
    limit: int = 200


@dataclass
class Stuck:
    participants: list[str] = field(default_factory=list)
    lab_messages: list[int] = field(default_factory=list)


@dataclass
class LabRetry:
    message_id: int
    staff_before: str  # ISO time: a message received before this and still unprocessed goes to staff


@dataclass
class ReconcileReport:
    enrollments: dict[str, str] = field(default_factory=dict)  # participant id -> completed | rolled-back | ...
    lab_messages: dict[str, str] = field(default_factory=dict)  # message id -> reprocessed | held-for-staff | ...


class ReconcilerActivities:
    def __init__(self, engine: Engine, client: Client, task_queue: str) -> None:
        self.engine = engine
        self.client = client
        self.task_queue = task_queue
        self.lab = LabIngest(engine, client)

    @activity.defn
    def find_stuck(self, query: StuckQuery) -> Stuck:
        before = datetime.fromisoformat(query.before)
        with Session(self.engine) as session:
            participants = session.exec(
                select(Participant.id)
                .where(Participant.status == ENROLLING, Participant.created_at < before)
                .order_by(col(Participant.created_at))
                .limit(query.limit)
            ).all()
            messages = session.exec(
                select(col(LabMessage.id))
                .where(LabMessage.status == RECEIVED, LabMessage.received_at < before)
                .order_by(col(LabMessage.id))
                .limit(query.limit)
            ).all()
        return Stuck(list(participants), [m for m in messages if m is not None])  # primary keys: never None

    # --- enrollments -------------------------------------------------------------------------

    def _program(self, program_id: str):
        with Session(self.engine) as session:
            return current_program(session, program_id)

    @activity.defn
    async def finish_enrollment(self, participant_id: str) -> str:
        try:
            return await self._finish(participant_id)
        except Exception as exc:
            # The workflow leaves a failing item for the next pass; when this pass has tried its last, a
            # person is told as well (the item closes itself once a later pass, or a retry, finishes it).
            if _last_attempt():
                await asyncio.to_thread(self._stuck, participant_id, type(exc).__name__)
            raise

    async def _finish(self, participant_id: str) -> str:
        participant = await asyncio.to_thread(self._participant, participant_id)
        if participant is None or participant.status != ENROLLING:
            return "already-settled"
        program = await asyncio.to_thread(self._program, participant.program)
        try:
            program_input(participant, program)
        except IncompleteRecord as exc:
            await asyncio.to_thread(self._roll_back, participant_id, str(exc))
            return "rolled-back"
        try:
            await start_program(self.client, self.task_queue, participant, program)
        except WorkflowAlreadyStartedError:
            pass  # the same program, already started
        await asyncio.to_thread(self._completed, participant_id)
        return "completed"

    def _participant(self, participant_id: str) -> Participant | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Participant, participant_id)

    def _completed(self, participant_id: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Participant, participant_id)
            if row is None or row.status != ENROLLING:
                return
            # The workflow's first activity does the same; whichever runs first wins. An enrollment-stuck
            # item is settled by the status change (store/worklist.py).
            row.status, row.updated_at = "active", utcnow()
            session.add(row)
        self._audit(
            "reconciler.enrollment-completed",
            "completed",
            "participant",
            participant_id,
            participant_id,
            "enrollment left half done (record committed, program not confirmed): program workflow "
            f"participant-{participant_id} started or joined, record marked active",
        )

    def _stuck(self, participant_id: str, error: str) -> None:
        """An enrollment this pass could neither finish nor undo: before staff (once), retried every pass."""
        with session_scope(self.engine) as session:
            row = session.get(Participant, participant_id)
            if row is None or row.status != ENROLLING:
                return
            opened = open_item(
                session.connection(),
                source=wl.Source.RECONCILER,
                source_ref=finding_ref(wl.WorklistKind.ENROLLMENT_STUCK, participant_id),
                raw_kind=wl.WorklistKind.ENROLLMENT_STUCK,
                participant_id=participant_id,
                subject_id=participant_id,
                why=f"Enrollment record {participant_id} (site {row.site}), saved {_utc(row.created_at)}, is still "
                f"not active: the reconciler could not start its program ({error}) and tries again every pass.",
            )
        if opened:
            self._audit(
                "reconciler.enrollment-stuck",
                "put-before-staff",
                "participant",
                participant_id,
                participant_id,
                f"enrollment left half done and not finished after repeated attempts ({error}): worklist item opened",
            )

    def _roll_back(self, participant_id: str, reason: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Participant, participant_id)
            if row is None or row.status != ENROLLING:
                return
            keys = session.exec(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == "participants", IdempotencyRecord.resource_id == participant_id
                )
            ).all()
            connection = session.connection()
            open_item(
                connection,
                source=wl.Source.RECONCILER,
                source_ref=finding_ref(wl.WorklistKind.ENROLLMENT_ROLLED_BACK, participant_id),
                raw_kind=wl.WorklistKind.ENROLLMENT_ROLLED_BACK,
                participant_id=participant_id,
                subject_id=participant_id,
                why=_rolled_back_why(session, row, keys, reason),
                site=row.site,
            )
            settle(
                connection,
                source=wl.Source.RECONCILER,
                source_ref=finding_ref(wl.WorklistKind.ENROLLMENT_STUCK, participant_id),
                actor="system",
                text="the reconciler undid the enrollment: see the enrollment-rolled-back item",
            )
            for key in keys:
                session.delete(key)
            session.delete(row)
        # The trail names the removed record by its id only; the name is on the worklist item alone.
        self._audit(
            "reconciler.enrollment-rolled-back",
            "rolled-back",
            "participant",
            participant_id,
            participant_id,
            f"enrollment left half done and its record cannot start a program ({reason}): record removed, "
            "nobody enrolled; worklist item opened for staff to enroll again with a new request",
        )

    # --- lab messages ------------------------------------------------------------------------

    @activity.defn
    async def reprocess_lab_message(self, retry: LabRetry) -> str:
        row = await asyncio.to_thread(self._message, retry.message_id)
        if row is None or row.status != RECEIVED:
            return "already-settled"
        try:
            code = await self._intake(row)
        except Exception as exc:  # noqa: BLE001 - a message we cannot even re-read goes to staff
            log.warning("lab message %s could not be re-processed (%s)", retry.message_id, type(exc).__name__)
            code = None
        after = await asyncio.to_thread(self._message, retry.message_id)
        if after is not None and after.status != RECEIVED:
            await asyncio.to_thread(
                self._audit,
                "reconciler.lab-message-reprocessed",
                after.status,
                "lab-message",
                str(retry.message_id),
                None,
                f"left unanswered by an interrupted intake: processed again, ACK {after.ack_code}",
            )
            return "reprocessed"
        if _aware(row.received_at) < datetime.fromisoformat(retry.staff_before):
            if await asyncio.to_thread(self._hold_for_staff, retry.message_id, code):
                await asyncio.to_thread(
                    self._audit,
                    "reconciler.lab-message-held",
                    "held-for-staff",
                    "lab-message",
                    str(retry.message_id),
                    None,
                    "still not processed after repeated attempts: put in the quarantine for staff",
                )
            return "held-for-staff"
        return "retry-later"

    async def _intake(self, row: LabMessage) -> str:
        """The same intake path a lab's resend takes: the stored row is found by its sender and
        control id, and, having no ACK yet, processed."""
        sender = self._sender(row)
        if row.transport == "json":
            from api.routers.lab import JsonResults, _as_oru  # the JSON form's one mapping to an ORU

            receipt = await self.lab.receive_parsed(
                _as_oru(JsonResults.model_validate_json(row.raw)), row.raw, "json", sender
            )
            return receipt.ack_code
        receipts = await self.lab.receive_hl7(row.raw, row.transport, sender)
        return receipts[0].ack_code if receipts else "AE"

    def _sender(self, row: LabMessage) -> LabSender:
        """The message is processed again as the token it came with, checked as it is now (a token
        revoked since is refused, and the message kept for staff). A message stored before lab
        tokens were bound to a sender (no token recorded) was accepted under the rules of its day."""
        if row.token_id is None:
            return LabSender(None, SenderBinding(None, None, any_sender=True))
        return self.lab.sender_for_token(row.token_id)

    def _message(self, message_id: int) -> LabMessage | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(LabMessage, message_id)

    def _hold_for_staff(self, message_id: int, code: str | None) -> bool:
        with session_scope(self.engine) as session:
            held = session.exec(
                select(QuarantineItem).where(
                    QuarantineItem.lab_message_id == message_id,
                    QuarantineItem.reason_code == STALLED,
                    col(QuarantineItem.resolved_at).is_(None),
                )
            ).first()
            if held is not None:
                return False
            session.add(
                QuarantineItem(
                    lab_message_id=message_id,
                    reason_code=STALLED,
                    reason="the message was stored but could not be processed after repeated attempts"
                    + (f" (last answer {code})" if code else "")
                    + "; check the workflow service, then ask the lab to resend it or resolve it here",
                )
            )
            return True

    def _audit(
        self, action: str, outcome: str, subject_type: str, subject_id: str, participant_id: str | None, detail: str
    ) -> None:
        audit.append(
            self.engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action=action,
                outcome=outcome,
                subject_type=subject_type,
                subject_id=subject_id,
                participant_id=participant_id,
                source="reconciler",
                detail=detail[:1000],
            ),
        )

    def all(self) -> list:
        return [self.find_stuck, self.finish_enrollment, self.reprocess_lab_message]


def _last_attempt() -> bool:
    """This is the last attempt the activity's retry policy allows (never, without a limit)."""
    info = activity.info()
    limit = info.retry_policy.maximum_attempts if info.retry_policy else 0
    return 0 < limit <= info.attempt


def _utc(moment: datetime) -> str:
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rolled_back_why(session: Session, row: Participant, keys: Sequence[IdempotencyRecord], reason: str) -> str:
    """What staff need to find the person and enroll them again, for the worklist item only.

    The record is deleted, so the item is all that is left of who came to the desk. It carries the given and
    family name, the site, when and by whom (staff token and the name behind it) the request was made, and its
    Idempotency-Key, so the staff member who made it can be asked. It leaves out the birth date, contact details
    and case numbers (asked again at re-enrollment): the minimum necessary (45 CFR 164.502(b), 164.514(d)).
    Showing the name there is within the README's security model: PHI stays in the records database; the
    worklist is served only to roles that may read participants (admin, staff, clinician, auditor: the same as
    GET /participants/{id}), and each read names the removed record's id in the audit trail's `shown` column (a
    use among the program's own staff, 42 CFR 2.12(c)(3)). The name never goes to the audit detail, a log, a
    workflow, a search attribute, a memo or a page to the pager (activities/worklist.py sends kind and site only).
    """
    names = (
        {
            t.id: t.name
            for t in session.exec(select(ApiToken).where(col(ApiToken.id).in_([k.actor for k in keys]))).all()
        }
        if keys
        else {}
    )
    requests = (
        "; ".join(
            f"by {names.get(k.actor, 'a token no longer known')} (token {k.actor}) with Idempotency-Key {k.key}"
            for k in keys
        )
        or "without an Idempotency-Key (who made it is not recorded)"
    )
    return (
        f"{row.given_name} {row.family_name} was not enrolled. The enrollment request made at site {row.site} "
        f"{requests}, saved {_utc(row.created_at)} as record {row.id} (program {row.program}, phase {row.phase}), "
        f"cannot start a program ({reason}); the reconciler removed the record {_utc(utcnow())}. Nobody is "
        "enrolled and no testing is scheduled."
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
