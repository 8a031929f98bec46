"""Lab results in: HL7 v2 ORU^R01 (HTTP or MLLP) and JSON.

The order of work is the promise made to labs: the raw message is stored first; a resent message
(same sender, MSH-10 and normalised body) gets the original ACK and changes nothing; another body
under a control id already used is kept and held as a conflicting control id (AE); a message
naming a sender its token is not registered to is kept and refused (AR); a result is filed on a
screening only when its specimen id is one we issued and the participant identifiers agree;
everything else is quarantined with a reason a person can act on. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, overload

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select
from temporalio.client import Client, RPCError, WorkflowUpdateFailedError
from temporalio.service import RPCStatusCode

from domain import loinc_tox
from domain.analytes import ANALYTES, DEFAULT_CODE_MAP, AddedAnalyte, local_system, map_code
from domain.hl7 import (
    AckCode,
    AckError,
    Hl7Error,
    Observation,
    Order,
    OruMessage,
    PatientIds,
    ack_for_unparseable,
    build_ack,
    parse_oru,
    split_batch,
)
from domain.lab_intake import UNREGISTERED_TOKEN, SenderBinding, body_digest, sender_refusal
from domain.medication import expected_substance
from domain.vocab import Role
from ingest.offload import off_loop
from iop.crashpoints import crash_point
from iop.reopen import reopen_screening
from iop.temporal import not_available_now
from store.db import session_scope
from store.models import (
    AnalyteDefinition,
    ApiToken,
    CodeMapping,
    LabMessage,
    LabResult,
    MedicationOrderRecord,
    Participant,
    QuarantineItem,
    Screening,
    utcnow,
)
from workflows.contracts.results import AnalyteIn, LabReport, SettledCodes
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

log = logging.getLogger(__name__)

OUR_AUTHORITIES = {"IOP", "IOPW", "IOP-WORKFLOWS"}
_CONFIRMATION = re.compile(r"confirm|gc[-/ ]?ms|lc[-/ ]?ms|ms/ms|mass spec", re.IGNORECASE)


@dataclass
class OrderOutcome:
    result_id: str
    state: str  # filed | quarantined
    screening_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    location: str | None = None
    held_codes: list[str] = field(default_factory=list)  # filed, with these codes held for staff


@dataclass
class Receipt:
    """What the lab is told: the ACK code, its text (HL7) and one outcome per specimen."""

    ack_code: str
    ack: str
    message_id: int
    replayed: bool = False
    outcomes: list[OrderOutcome] = field(default_factory=list)
    detail: str | None = None  # why the message as a whole was refused (AR for its sender)


class TryLater(Exception):
    """Filing failed for a reason on our side: the message stays unanswered so a resend retries it."""


class Quarantined(Exception):
    """`reason` is for staff (the quarantine); `told_lab`, when given, is all the lab is told."""

    def __init__(self, code: str, reason: str, location: str | None = None, told_lab: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.location = code, reason, location
        self.told_lab = told_lab or reason


# What a lab is told when the identifiers it sent disagree with ours: never which one, or a lab
# token could find a participant's birth date by guessing (45 CFR 164.514(h): verify the identity
# of the person requesting PHI before disclosing any).
TOLD_LAB_MISMATCH = "identifiers do not match our records; the result is held for our staff to verify the requisition"
TOLD_LAB = {"identifier-mismatch": TOLD_LAB_MISMATCH}


# Why a quarantine item is held (QuarantineItem.reason_code), as staff filter and read them.
QUARANTINE_REASONS: dict[str, str] = {
    "held-code": "a code of a filed result is not in the code table",
    "unmapped-code": "no code of the order is in the code table",
    "unknown-specimen": "no screening has the specimen or order id",
    "identifier-mismatch": "the participant identifiers disagree with ours",
    "identifier-missing": "no identifier to cross-check the match",
    "conflicting-control-id": "the control id was used before for another message",
    "sender-not-registered": "refused for its sender",
    "unparseable": "not a message we could read",
    "no-results": "the order carries no result",
    "screening-not-awaiting-result": "the screening took no result",
    "screening-closed": "the screening is closed",
    "intake-stalled": "still not processed after retries",  # activities.reconciler.STALLED
}


def told_lab(reason_code: str | None, reason: str | None) -> str | None:
    """A stored quarantine reason as the lab may see it (a replayed answer)."""
    return TOLD_LAB.get(reason_code or "", reason)


@overload
def storable(text: str) -> str: ...
@overload
def storable(text: str | None) -> str | None: ...
def storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a message that carries one is kept with it escaped (its
    digest is taken over the bytes as received)."""
    return text.replace("\x00", "\\x00") if text else text


def _hl7_now() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def _salvaged_key(raw: str) -> tuple[str, str]:
    """Sender and control id for a message we could not parse, so that it is stored (and a resend
    recognised) all the same; a digest stands in for a missing MSH-10."""
    digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    line = next((part for part in re.split(r"[\r\n]+", raw.strip("\x0b\x1c\r\n ")) if part.startswith("MSH")), "")
    fields = line.split(line[3]) if len(line) > 3 else []
    sender = "^".join(f for f in fields[2:4] if f)[:300] if len(fields) > 3 else ""
    control = fields[9].strip()[:200] if len(fields) > 9 else ""
    return sender or "unknown-sender", control or f"sha256:{digest[:40]}"


def _sender(message: OruMessage) -> str:
    return "^".join(x for x in (message.sending_application, message.sending_facility) if x)[:300] or "unknown-sender"


def lab_id_of(message: OruMessage) -> str:
    """Our id for the sending lab: its facility (MSH-4), else its application (MSH-3)."""
    return lab_id_with_source(message)[0]


def lab_id_with_source(message: OruMessage) -> tuple[str, str]:
    """The lab id codes are mapped under, and where it came from: MSH-4, else MSH-3 (shown to
    staff, so a fallback is never silent); the JSON form's lab_id is its facility."""
    json_form = message.version == "json"
    for value, source in (
        (message.sending_facility, "JSON" if json_form else "MSH-4"),
        (message.sending_application, "MSH-3"),
    ):
        if value and value.split("^", 1)[0].strip():
            return value.split("^", 1)[0].strip(), source
    return "unknown-lab", "none"


@dataclass(frozen=True)
class LabSender:
    """Who is sending: the token (if any) and the sender it is registered to send as."""

    token_id: str | None
    binding: SenderBinding
    refused: str | None = None  # the token itself cannot send (revoked, expired, unknown)


def lab_sender(token_id: str, role: str, application: str | None, facility: str | None) -> LabSender:
    """An administrator may enter any lab's message by hand; a lab token only its own."""
    return LabSender(token_id, SenderBinding(application, facility, any_sender=role == "admin"))


def _key(*parts: str) -> str:
    """A fixed-length unique key over several values (the migration 0009 computes it the same way)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def _raw_msh(raw: str) -> str | None:
    try:
        return next((part.split("\r", 1)[0] for part in split_batch(raw) if part.startswith("MSH")), None)
    except Exception:  # noqa: BLE001 - nothing to address the ACK from
        return None


class LabIngest:
    def __init__(self, engine: Engine, temporal: Client, task_queue: str | None = None) -> None:
        self.engine = engine
        self.temporal = temporal
        self.task_queue = task_queue  # where a closed screening is reopened when Temporal no longer knows its queue
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # --- entry points --------------------------------------------------------------------

    async def receive_hl7(self, text: str, transport: str, sender: LabSender) -> list[Receipt]:
        """One message or a batch; one receipt (and ACK) per message."""
        # Parsing is CPU work that grows with the message: it runs off the event loop, so one large
        # message (60,000 OBX) never stalls other requests or /healthz (ingest/offload.py).
        parts = await off_loop(_split, text)
        # A single message is stored exactly as it came over the wire; a batch, message by message.
        if len(parts) == 1:
            parts = [text]
        return [await self._receive_one(part, transport, sender) for part in parts]

    async def receive_parsed(self, message: OruMessage, raw: str, transport: str, sender: LabSender) -> Receipt:
        """A message already turned into an OruMessage (the JSON form; `raw` is its canonical JSON)."""
        digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
        # The JSON form names no sending application (its control ids are kept apart from the lab's
        # HL7 ones under 'json^<lab_id>'): only lab_id is checked against the registered facility.
        checked = replace(message, sending_application=sender.binding.application)
        return await self._receive(
            raw,
            digest,
            transport,
            _sender(message),
            message.message_control_id,
            message,
            None,
            sender,
            self._refusal(sender, checked),
        )

    def sender_for_token(self, token_id: str) -> LabSender:
        """The MLLP listener's sender: its lab token, read again for every message (a revoked or
        expired token stops it at once)."""
        with Session(self.engine) as session:
            row = session.get(ApiToken, token_id)
        now = utcnow()
        if (
            row is None
            or row.role not in (Role.LAB, Role.ADMIN)
            or row.revoked_at is not None
            or (row.expires_at is not None and _aware(row.expires_at) <= now)
        ):
            return LabSender(
                token_id,
                SenderBinding(None, None),
                refused=(
                    "this interface's lab token is revoked, expired or unknown; ask the clinic's administrator "
                    "for a new one"
                ),
            )
        return lab_sender(row.id, row.role, row.sender_application, row.sender_facility)

    async def _receive_one(self, raw: str, transport: str, sender: LabSender) -> Receipt:
        # Parsing (and the body digest) runs off the event loop: see receive_hl7.
        message, error, claimed, control, digest = await off_loop(_parse, raw)
        return await self._receive(
            raw, digest, transport, claimed, control, message, error, sender, self._refusal(sender, message)
        )

    @staticmethod
    def _refusal(sender: LabSender, message: OruMessage | None) -> str | None:
        """Why this token may not send this message, or None. A message we cannot parse names no
        sender we could check: it is refused only when the token itself cannot send."""
        if sender.refused:
            return sender.refused
        if message is None:
            return None if sender.binding.registered else UNREGISTERED_TOKEN
        return sender_refusal(sender.binding, message.sending_application, message.sending_facility)

    # --- the procedure -------------------------------------------------------------------

    async def _receive(
        self,
        raw: str,
        digest: str,
        transport: str,
        claimed: str,
        control: str,
        message: OruMessage | None,
        error: Hl7Error | None,
        sender: LabSender,
        refusal: str | None,
    ) -> Receipt:
        if refusal is not None:
            # Kept, never replayed, and it uses up no control id of the sender it claims to be.
            stored = await run_in_threadpool(
                self._store_raw, raw, digest, transport, claimed, control, sender.token_id, False, False
            )
            assert stored.id is not None  # a stored row
            return await run_in_threadpool(self._refuse, stored.id, raw, message, refusal)
        # Copies of one message arriving together are handled one after the other in this
        # process (across processes the unique keys decide): the first files, the rest replay.
        key = (claimed, control)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                # A message we could not parse is never filed, so it holds no control id: the
                # corrected message may come with the same one.
                stored = await run_in_threadpool(
                    self._store_raw,
                    raw,
                    digest,
                    transport,
                    claimed,
                    control,
                    sender.token_id,
                    True,
                    message is not None,
                )
                assert stored.id is not None  # a stored row
                if stored.ack is not None:
                    return Receipt(stored.ack_code or "AA", stored.ack, stored.id, replayed=True)
                crash_point("lab.after-raw-stored")  # test-only, inert unless IOP_TEST_CRASH_AT is set
                if stored.conflicts_with is not None and message is not None:
                    return await run_in_threadpool(self._conflict, stored, message)
                return await self._process(stored.id, raw, message, error)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def _store_raw(
        self,
        raw: str,
        digest: str,
        transport: str,
        sender: str,
        control: str,
        token_id: str | None,
        keyed: bool,
        claims: bool,
    ) -> LabMessage:
        """The new row, or the earlier row of the same message (same sender, control id and body).

        The first message under a sender's control id holds it (`claim_key`); a message with
        another body under the same control id is stored all the same, naming the holder."""
        sender, control = storable(sender), storable(control)
        replay_key = _key(sender, control, digest) if keyed else None
        claim_key = _key(sender, control) if claims else None
        holder: int | None = None
        for _ in range(3):  # a key taken between our insert and our look-up: try again
            try:
                with session_scope(self.engine) as session:
                    row = LabMessage(
                        sender=sender,
                        control_id=control,
                        transport=transport,
                        raw=storable(raw),
                        raw_sha256=hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest(),
                        body_sha256=digest,
                        replay_key=replay_key,
                        claim_key=None if holder else claim_key,
                        conflicts_with=holder,
                        token_id=token_id,
                    )
                    session.add(row)
                    session.flush()
                    return row
            except IntegrityError:
                with Session(self.engine) as session:
                    if replay_key is not None:
                        same = session.exec(select(LabMessage).where(LabMessage.replay_key == replay_key)).first()
                        if same is not None:
                            return same
                    if claim_key is not None and holder is None:
                        held = session.exec(select(LabMessage).where(LabMessage.claim_key == claim_key)).first()
                        if held is not None:
                            holder = held.id
                            continue
                    raise
        raise RuntimeError("a lab message could not be stored: its keys kept changing")

    def _refuse(self, message_id: int, raw: str, message: OruMessage | None, refusal: str) -> Receipt:
        """AR: this token may not send as the sender the message names. Kept, and shown to staff."""
        detail = f"{refusal}; the message was kept and not filed"
        ack = build_ack(
            message,
            None if message else _raw_msh(raw),
            AckCode.REJECT,
            f"ACK{message_id}",
            [AckError("204", detail, "MSH-4")],
            _hl7_now(),
        )
        with session_scope(self.engine) as session:
            row = session.get_one(LabMessage, message_id)
            row.status, row.ack_code, row.ack, row.detail = "rejected", "AR", storable(ack), storable(detail)
            session.add(row)
            session.add(
                QuarantineItem(
                    lab_message_id=message_id,
                    reason_code="sender-not-registered",
                    reason=storable(f"refused for its sender: {refusal}"),
                )
            )
        return Receipt("AR", ack, message_id, detail=refusal)

    def _conflict(self, stored: LabMessage, message: OruMessage) -> Receipt:
        """AE: the sender used this control id for another message. Each order is kept as a
        quarantined result that staff can attach once they have checked it with the lab."""
        reason = (
            f"message control id '{stored.control_id}' from sender '{stored.sender}' was already used by "
            f"lab message {stored.conflicts_with} with a different body; this message was kept and not "
            "filed: compare the two with the lab, then attach each result to its screening or reject it"
        )
        assert stored.id is not None  # a stored row
        held = Quarantined("conflicting-control-id", reason, "MSH-10")
        lab_id = lab_id_of(message)
        outcomes = []
        for index, order in enumerate(message.orders):
            result_id = f"lr-{stored.id}-{index + 1}"
            self._hold(stored.id, result_id, index, lab_id, order, _status(order), _record(lab_id, order), None, held)
            outcomes.append(OrderOutcome(result_id, "quarantined", None, held.code, held.reason, held.location))
        if not outcomes:
            with session_scope(self.engine) as session:
                existing = select(QuarantineItem).where(QuarantineItem.lab_message_id == stored.id)
                if session.exec(existing).first() is None:
                    session.add(QuarantineItem(lab_message_id=stored.id, reason_code=held.code, reason=reason))
        error = AckError(
            "205",
            "this message control id (MSH-10) was already used by an earlier message with "
            "different content; this message was kept and held for review, not filed. Give every "
            "new message its own control id",
            "MSH-10",
        )
        ack = build_ack(message, None, AckCode.ERROR, f"ACK{stored.id}", [error], _hl7_now())
        self._finish(stored.id, "processed", "AE", ack, reason)
        return Receipt("AE", ack, stored.id, outcomes=outcomes)

    async def _process(self, message_id: int, raw: str, message: OruMessage | None, error: Hl7Error | None) -> Receipt:
        if message is None:
            assert error is not None
            ack = ack_for_unparseable(raw, error, f"ACK{message_id}", _hl7_now())
            code = "AR" if "|AR|" in ack or "\rMSA|AR" in ack else "AE"
            await run_in_threadpool(self._finish_rejected, message_id, error, ack, code)
            return Receipt(code, ack, message_id)

        if (message.processing_id or "P").upper().startswith(("T", "D")):
            warning = AckError(
                "207",
                "test or debug message (MSH-11): acknowledged, not filed on any participant",
                "MSH-11",
                severity="W",
            )
            ack = build_ack(message, None, AckCode.ACCEPT, f"ACK{message_id}", [warning], _hl7_now())
            await run_in_threadpool(self._finish, message_id, "processed", "AA", ack, warning.detail)
            return Receipt("AA", ack, message_id)

        try:
            outcomes = [
                await self._file_order(message_id, index, message, order) for index, order in enumerate(message.orders)
            ]
        except TryLater as exc:
            log.warning("lab message %s not filed yet: %s", message_id, exc)
            try_later = AckError("207", str(exc), None)
            ack = build_ack(message, None, AckCode.ERROR, f"ACK{message_id}", [try_later], _hl7_now())
            return Receipt("AE", ack, message_id)  # not stored as the answer: a resend is processed again
        crash_point("lab.after-filed")  # test-only, inert unless IOP_TEST_CRASH_AT is set
        held = [o for o in outcomes if o.state != "filed"]
        errors = [AckError("207", f"specimen {o.result_id}: {o.reason}", o.location) for o in held]
        # Filed, with some codes held for mapping: accepted (nothing to resend), said as a warning.
        errors += [
            AckError(
                "207",
                f"specimen {o.result_id}: filed; code {code.rsplit(' from ', 1)[0]} is not in our "
                "code table and is held for staff to map",
                "OBX-3",
                severity="W",
            )
            for o in outcomes
            if o.state == "filed"
            for code in o.held_codes
        ]
        ack_code = AckCode.ERROR if held else AckCode.ACCEPT
        ack = build_ack(message, None, ack_code, f"ACK{message_id}", errors, _hl7_now())
        detail = "; ".join(o.reason or "" for o in held) or None
        await run_in_threadpool(self._finish, message_id, "processed", ack_code, ack, detail)
        return Receipt(ack_code, ack, message_id, outcomes=outcomes)

    async def _file_order(self, message_id: int, index: int, message: OruMessage, order: Order) -> OrderOutcome:
        result_id = f"lr-{message_id}-{index + 1}"
        lab_id, lab_id_source = lab_id_with_source(message)
        status = _status(order)
        record = {**await run_in_threadpool(_record, lab_id, order), "lab_id_source": lab_id_source}
        screening_id = None
        try:
            screening, participant = await run_in_threadpool(self._match, order)
            screening_id = screening.id
            _cross_check(message.patient, participant)
            report = await run_in_threadpool(self._report, result_id, message_id, lab_id, status, order, screening)
            await self._deliver(report, screening.id)
        except Quarantined as held:
            await run_in_threadpool(
                self._hold, message_id, result_id, index, lab_id, order, status, record, screening_id, held
            )
            return OrderOutcome(result_id, "quarantined", screening_id, held.code, held.told_lab, held.location)
        await run_in_threadpool(
            self._filed,
            message_id,
            result_id,
            index,
            lab_id,
            order,
            status,
            record,
            screening_id,
            report.held_codes,
            lab_id_source,
        )
        return OrderOutcome(result_id, "filed", screening_id, held_codes=list(report.held_codes))

    # --- matching, mapping, delivery -------------------------------------------------------

    def _match(self, order: Order) -> tuple[Screening, Participant]:
        candidates = [c for c in (order.placer_order_number, order.specimen_id, order.filler_order_number) if c]
        with Session(self.engine) as session:
            for candidate in candidates:
                value = candidate.split("^", 1)[0].strip()
                screening = session.exec(
                    select(Screening).where(or_(Screening.specimen_id == value, Screening.id == value))
                ).first()
                if screening is not None:
                    return screening, session.get_one(Participant, screening.participant_id)
        shown = ", ".join(f"'{c}'" for c in candidates) or "none"
        raise Quarantined(
            "unknown-specimen",
            f"no screening has the specimen or order id given (OBR-2/OBR-3/SPM-2: {shown}); "
            "check the requisition, then attach the result to the right screening",
            "OBR-2",
        )

    def _report(
        self,
        result_id: str,
        message_id: int,
        lab_id: str,
        status: str,
        order: Order,
        screening: Screening,
        not_monitored: frozenset[str] = frozenset(),
    ) -> LabReport:
        """The mapped analytes of an order. Codes not in the code table are held one by one
        (report.held_codes) while the rest is filed; only an order with no mapped analyte at all is
        held as a whole. Codes staff marked not monitored are left out."""
        with Session(self.engine) as session:
            code_map = self._code_map(session, lab_id)
            mappings = {m.code: m for m in session.exec(select(CodeMapping).where(CodeMapping.lab_id == lab_id)).all()}
            definitions = {d.key: d for d in session.exec(select(AnalyteDefinition)).all()}
            expected = expected_medications(session, screening.participant_id)
        analytes, unmapped = map_observations(order.observations, code_map, mappings, lab_id)
        held = [held_code_label(code, lab_id) for code in unmapped]
        held = [h for h in held if h not in not_monitored]
        if not analytes and held:
            raise Quarantined(
                "unmapped-code",
                "analyte code(s) not in the code table: "
                + ", ".join(unmapped)
                + "; map each at POST /lab/code-mappings (never guessed), then attach this result",
                "OBX-3",
            )
        if not analytes:
            raise Quarantined("no-results", "the order carries no analyte result (OBX) to file", "OBX")
        return LabReport(
            result_id=result_id,
            lab_id=lab_id,
            message_ref=str(message_id),
            specimen_id=screening.specimen_id or screening.id,
            result_status=status,
            received_at=utcnow().isoformat(),
            analytes=analytes,
            collected_at=order.collected_at,
            expected_medications=expected,
            notes=list(order.notes),
            held_codes=held,
            added_analytes=added_analytes(definitions, analytes),
        )

    @staticmethod
    def _code_map(session: Session, lab_id: str) -> dict[tuple[str, str], str]:
        definitions = {d.key for d in session.exec(select(AnalyteDefinition)).all()}
        code_map = {**loinc_tox.code_map(dict.fromkeys(definitions)), **DEFAULT_CODE_MAP}
        for mapping in session.exec(select(CodeMapping).where(CodeMapping.lab_id == lab_id)).all():
            code_map[(local_system(lab_id), mapping.code)] = mapping.analyte
        return code_map

    async def _deliver(self, report: LabReport, screening_id: str) -> None:
        handle = self.temporal.get_workflow_handle(screening_workflow_id(screening_id))
        try:
            try:
                # The update id is the result's: a resend after a timeout joins the first attempt if it got through.
                await handle.execute_update(
                    ScreeningWorkflow.record_result, report, id=f"record-result-{report.result_id}"
                )
            except RPCError as exc:
                # A final screening whose workflow closed after its correction period: a correction reopens it
                # (no time limit on amending what recipients were told), then is filed as usual.
                if (
                    exc.status != RPCStatusCode.NOT_FOUND
                    or not_available_now(exc)
                    or not await reopen_screening(self.temporal, self.engine, screening_id, self.task_queue)
                ):
                    raise
                await handle.execute_update(
                    ScreeningWorkflow.record_result, report, id=f"record-result-{report.result_id}"
                )
        except WorkflowUpdateFailedError as exc:
            cause = getattr(exc.cause, "message", None) or str(exc.cause)
            raise Quarantined(
                "screening-not-awaiting-result", f"{cause}; staff decide what to do with it", "OBR-2"
            ) from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and not not_available_now(exc):
                raise Quarantined(
                    "screening-closed",
                    f"screening {screening_id} is closed and takes no more results; staff decide what to do with it",
                    "OBR-2",
                ) from exc
            raise TryLater(f"the result could not be filed right now ({exc.status.name}); resend this message") from exc
        except Exception as exc:
            # Timed out or not reachable (never an AA): the raw message is stored; the lab resends it.
            if not_available_now(exc):
                raise TryLater(
                    "the result could not be filed right now (workflow service did not answer in "
                    "time); resend this message"
                ) from exc
            raise

    # --- records ---------------------------------------------------------------------------

    def _filed(
        self,
        message_id,
        result_id,
        index,
        lab_id,
        order,
        status,
        record,
        screening_id,
        held_codes=(),
        lab_id_source=None,
    ) -> None:
        with session_scope(self.engine) as session:
            self._save_result(
                session, message_id, result_id, index, lab_id, order, status, record, screening_id, "filed"
            )
            for code in held_codes:
                exists = session.exec(
                    select(QuarantineItem).where(
                        QuarantineItem.lab_result_id == result_id, QuarantineItem.held_code == code
                    )
                ).first()
                if exists is None:
                    session.add(
                        QuarantineItem(
                            lab_message_id=message_id,
                            lab_result_id=result_id,
                            reason_code="held-code",
                            reason=storable(
                                f"not in the code table: {code}; the rest of the specimen was filed. Map "
                                "the code, or mark it not monitored with a reason; the screening cannot be "
                                "final until then"
                            ),
                            screening_id=screening_id,
                            held_code=storable(code),
                            lab_id=storable(lab_id),
                            lab_id_source=lab_id_source,
                        )
                    )

    @staticmethod
    def _save_result(
        session, message_id, result_id, index, lab_id, order, status, record, screening_id, state: str
    ) -> None:
        session.merge(
            LabResult(
                id=result_id,
                lab_message_id=message_id,
                order_index=index,
                lab_id=storable(lab_id),
                placer_order_number=storable(order.placer_order_number),
                filler_order_number=storable(order.filler_order_number),
                specimen_id=storable(order.specimen_id),
                result_status=storable(status),
                screening_id=screening_id,
                state=state,
                report=record,
            )
        )

    def _hold(
        self, message_id, result_id, index, lab_id, order, status, record, screening_id, held: Quarantined
    ) -> None:
        with session_scope(self.engine) as session:
            self._save_result(
                session, message_id, result_id, index, lab_id, order, status, record, screening_id, "quarantined"
            )
            exists = session.exec(
                select(QuarantineItem).where(
                    QuarantineItem.lab_result_id == result_id, col(QuarantineItem.resolved_at).is_(None)
                )
            ).first()
            if exists is None:
                session.add(
                    QuarantineItem(
                        lab_message_id=message_id,
                        lab_result_id=result_id,
                        reason_code=held.code,
                        reason=storable(held.reason),
                        screening_id=screening_id,
                        lab_id=storable(lab_id),
                        lab_id_source=record.get("lab_id_source"),
                    )
                )

    def _finish(self, message_id: int, status: str, ack_code: str, ack: str, detail: str | None) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(LabMessage, message_id)
            row.status, row.ack_code, row.ack, row.detail = status, ack_code, storable(ack), storable(detail)
            session.add(row)

    def _finish_rejected(self, message_id: int, error: Hl7Error, ack: str, ack_code: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(LabMessage, message_id)
            row.status, row.ack_code, row.ack, row.detail = "rejected", ack_code, storable(ack), storable(error.detail)
            session.add(row)
            session.add(
                QuarantineItem(
                    lab_message_id=message_id,
                    reason_code="unparseable",
                    reason=storable(
                        f"HL7 error {error.code}"
                        + (f" at {error.location}" if error.location else "")
                        + f": {error.detail}"
                    ),
                )
            )

    # --- staff resolving quarantine ---------------------------------------------------------

    async def attach(self, item_id: int, screening_id: str, actor: str, note: str) -> QuarantineItem:
        """Staff vouch for the match (identity checked by a person); codes are mapped again."""
        item, result = await run_in_threadpool(self._open_item, item_id)
        if item.held_code is not None:
            raise Quarantined(
                "held-code", "this item is a held code of a filed result: resolve it as 'mapped' or 'not-monitored'"
            )
        if result is None:
            raise Quarantined(
                "nothing-to-attach",
                "this item holds no result to attach (the message could not be "
                "parsed, or was refused for its sender); reject it and ask the lab to resend it "
                "corrected",
            )
        screening = await run_in_threadpool(self._screening, screening_id)
        order = order_from_record(result.report)
        report = await run_in_threadpool(
            self._report, result.id, result.lab_message_id, result.lab_id, result.result_status, order, screening
        )
        await self._deliver(report, screening.id)
        resolved = await run_in_threadpool(self._resolve, item_id, "attached", actor, note, screening.id)
        if report.held_codes:  # the rest was filed: each code not in the table is held on its own
            await run_in_threadpool(
                self._filed,
                result.lab_message_id,
                result.id,
                result.order_index,
                result.lab_id,
                order,
                result.result_status,
                result.report,
                screening.id,
                report.held_codes,
                result.report.get("lab_id_source"),
            )
        return resolved

    async def settle_held_code(self, item_id: int, resolution: str, actor: str, note: str) -> QuarantineItem:
        """A held code mapped (a code mapping now exists for it) or marked not monitored: the result
        is mapped again and the screening told; it may become final once no code is held."""
        item, result = await run_in_threadpool(self._open_item, item_id)
        if item.held_code is None or result is None or item.screening_id is None:
            raise Quarantined("not-a-held-code", "this item is not a held code of a filed result; attach or reject it")
        screening = await run_in_threadpool(self._screening, item.screening_id)
        skipped = await run_in_threadpool(self._not_monitored, result.id)
        if resolution == "not-monitored":
            skipped = skipped | {item.held_code}
        report = await run_in_threadpool(
            self._report,
            result.id,
            result.lab_message_id,
            result.lab_id,
            result.result_status,
            order_from_record(result.report),
            screening,
            frozenset(skipped),
        )
        if resolution == "mapped" and item.held_code in report.held_codes:
            raise Quarantined(
                "still-unmapped",
                f"{item.held_code} is still not in the code table; add a code "
                f"mapping for lab '{item.lab_id}' (POST /lab/code-mappings) first",
            )
        if resolution == "mapped":  # the workflow drops the settled code from the list it is given
            report.held_codes = [*report.held_codes, item.held_code]
        handle = self.temporal.get_workflow_handle(screening_workflow_id(screening.id))
        await handle.execute_update(
            ScreeningWorkflow.settle_held_codes, SettledCodes(report, item.held_code, resolution, actor, note)
        )
        return await run_in_threadpool(self._resolve, item_id, resolution, actor, note, screening.id)

    def _not_monitored(self, result_id: str) -> set[str]:
        with Session(self.engine) as session:
            return {
                q.held_code
                for q in session.exec(
                    select(QuarantineItem).where(
                        QuarantineItem.lab_result_id == result_id, QuarantineItem.resolution == "not-monitored"
                    )
                ).all()
                if q.held_code is not None
            }

    async def reject(self, item_id: int, actor: str, note: str) -> QuarantineItem:
        item, _ = await run_in_threadpool(self._open_item, item_id)
        if item.held_code is not None:
            raise Quarantined("held-code", "a held code is not rejected: resolve it as 'mapped' or 'not-monitored'")
        return await run_in_threadpool(self._resolve, item_id, "rejected", actor, note, None)

    def _open_item(self, item_id: int) -> tuple[QuarantineItem, LabResult | None]:
        with Session(self.engine) as session:
            item = session.get(QuarantineItem, item_id)
            if item is None:
                raise LookupError(f"no quarantine item {item_id}")
            if item.resolved_at is not None:
                raise Quarantined(
                    "already-resolved",
                    f"item {item_id} was already {item.resolution} on {item.resolved_at:%Y-%m-%d %H:%M}",
                )
            result = session.get(LabResult, item.lab_result_id) if item.lab_result_id else None
            return item, result

    def _screening(self, screening_id: str) -> Screening:
        with Session(self.engine) as session:
            screening = session.get(Screening, screening_id)
            if screening is None:
                raise LookupError(f"no screening {screening_id!r}")
            return screening

    def _resolve(
        self, item_id: int, resolution: str, actor: str, note: str, screening_id: str | None
    ) -> QuarantineItem:
        with session_scope(self.engine) as session:
            item = session.get_one(QuarantineItem, item_id)
            item.resolved_at, item.resolution, item.resolved_by = utcnow(), resolution, actor
            item.resolution_note, item.screening_id = note, screening_id or item.screening_id
            session.add(item)
            if item.lab_result_id and item.held_code is None:
                result = session.get_one(LabResult, item.lab_result_id)
                result.state = "filed" if resolution == "attached" else "rejected"
                result.screening_id = screening_id or result.screening_id
                session.add(result)
            return item


def _split(text: str) -> list[str]:
    try:
        parts = split_batch(text) or [text]
    except Exception:  # noqa: BLE001 - a batch we cannot even split is one unparseable message
        parts = [text]
    return parts


def _parse(raw: str) -> tuple[OruMessage | None, Hl7Error | None, str, str, str]:
    """The message (or why not), its key (sender and control id) and its body digest."""
    try:
        message, error = parse_oru(raw), None
    except Hl7Error as exc:
        message, error = None, exc
    except Exception as exc:  # noqa: BLE001 - the parser's promise broken: still answer, still store
        message, error = None, Hl7Error("207", f"the message could not be processed ({type(exc).__name__})")
    if message is not None:
        return message, None, _sender(message), message.message_control_id, body_digest(raw)
    return None, error, *_salvaged_key(raw), body_digest(raw)


def _status(order: Order) -> str:
    return (order.result_status or "F").upper()[:1]


def _record(lab_id: str, order: Order) -> dict[str, Any]:
    """What is kept of an order beside the raw message, enough to file it later (order_from_record)."""
    return {
        "lab_id": lab_id,
        "placer": order.placer_order_number,
        "filler": order.filler_order_number,
        "specimen": order.specimen_id,
        "result_status": _status(order),
        "collected_at": order.collected_at,
        "observations": [asdict(o) for o in order.observations],
        "notes": list(order.notes),
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cross_check(patient: PatientIds, participant: Participant) -> None:
    """Never file on the specimen id alone: the identifiers the lab sent must agree with ours."""
    agree, disagree = [], []
    for identifier in patient.identifiers:
        authority = (identifier.assigning_authority or "").split("^", 1)[0].upper()
        if identifier.id == participant.id:
            agree.append("participant id (PID-3)")
        elif authority in OUR_AUTHORITIES:
            disagree.append("participant id (PID-3)")
    if patient.birth_date:
        (agree if patient.birth_date[:10] == participant.date_of_birth.isoformat() else disagree).append(
            "birth date (PID-7)"
        )
    if patient.family_name and _name(patient.family_name) != _name(participant.family_name):
        disagree.append("family name (PID-5)")
    if disagree:
        raise Quarantined(
            "identifier-mismatch",
            "the specimen id matches a screening but the "
            + " and ".join(disagree)
            + " do not match that participant; verify the requisition before attaching",
            "PID",
            told_lab=TOLD_LAB_MISMATCH,
        )
    if not agree:
        raise Quarantined(
            "identifier-missing",
            "the message carries neither our participant id in PID-3 nor a birth date in PID-7, "
            "so the match cannot be cross-checked; verify it and attach by hand",
            "PID-3",
        )


def _name(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.split("^", 1)[0].lower())


def map_observations(
    observations: Iterable[Observation], code_map, mappings: dict, lab_id: str
) -> tuple[list[AnalyteIn], list[str]]:
    """Mapped analytes, and the codes not in the code table as "CODE (text)".

    The method comes from the code first (domain.loinc_tox.resolve_method): a confirmatory LOINC
    code is a confirmation whatever the mapping's default or the label says; only a mapping's
    explicit method_override changes it, and the result carries why."""
    analytes, unmapped = [], []
    for obx in observations:
        analyte = map_code(code_map, lab_id, obx.coding_system or "", obx.code or "")
        if analyte is None:
            text = obx.label or obx.coding_system or "no text"
            unmapped.append(f"{obx.code or '(empty)'} ({text})")
            continue
        mapping = mappings.get(obx.code) if mappings else None
        row = loinc_tox.lookup(obx.coding_system or "", obx.code or "")
        code_method = row.method if row is not None and row.usable else None
        label_says = "confirm" if _CONFIRMATION.search(" ".join([obx.label or "", *obx.notes])) else None
        choice = loinc_tox.resolve_method(
            code_method,
            getattr(mapping, "method_override", None),
            getattr(mapping, "method", None),
            label_says,
            obx.code or "",
        )
        # An admin-added analyte's default cutoffs travel with the report (added_analytes), so the
        # interpreter names them as the clinic's, never as the lab's.
        analytes.append(
            AnalyteIn(
                analyte=analyte,
                value=obx.value_numeric,
                qualitative=obx.value_text,
                units=obx.units,
                lab_cutoff=obx.cutoff,
                method=choice.method,
                code=obx.code,
                method_basis=choice.basis,
                method_note=choice.detail,
            )
        )
    return analytes, unmapped


def added_analytes(definitions: dict, analytes: Iterable[AnalyteIn]) -> list[AddedAnalyte]:
    """The admin-added analytes among a report's analytes, as the workflow's interpreter needs them."""
    used = {a.analyte for a in analytes}
    return [
        AddedAnalyte(
            key=d.key,
            label=d.label,
            drug_class=d.drug_class,
            medication=d.medication,
            also_explained_by=tuple(d.also_explained_by or ()),
            initial_cutoff=d.initial_cutoff,
            confirm_cutoff=d.confirm_cutoff,
        )
        for key, d in sorted(definitions.items())
        if key in used and key not in ANALYTES
    ]


def held_code_label(code_text: str, lab_id: str) -> str:
    """How a held code is named to staff and in the screening: "CODE (text) from LAB"."""
    return f"{code_text} from {lab_id}"


def order_from_record(record: dict[str, Any]) -> Order:
    return Order(
        placer_order_number=record.get("placer"),
        filler_order_number=record.get("filler"),
        specimen_id=record.get("specimen"),
        universal_service_id=None,
        collected_at=record.get("collected_at"),
        result_status=record.get("result_status"),
        observations=tuple(Observation(**{**o, "notes": tuple(o.get("notes") or ())}) for o in record["observations"]),
        notes=tuple(record.get("notes") or ()),
    )


def expected_medications(session: Session, participant_id: str) -> list[str]:
    """Medications the participant is prescribed (orders not stopped): their absence is a finding."""
    orders = session.exec(
        select(MedicationOrderRecord).where(
            MedicationOrderRecord.participant_id == participant_id, MedicationOrderRecord.status != "stopped"
        )
    ).all()
    return sorted({m for m in (expected_substance(o.drug) for o in orders) if m})
