"""Lab results in: HL7 v2 ORU^R01 (HTTP or MLLP) and JSON.

The order of work is the promise made to labs: the raw message is stored first; a resent message
(same sender and MSH-10) gets the original ACK and changes nothing; a result is filed on a
screening only when its specimen id is one we issued and the participant identifiers agree;
everything else is quarantined with a reason a person can act on. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, or_, select
from temporalio.client import Client, RPCError, WorkflowUpdateFailedError
from temporalio.service import RPCStatusCode

from domain.analytes import DEFAULT_CODE_MAP, local_system, map_code
from domain.medication import expected_substance
from domain.hl7 import (
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
from iop.temporal import not_available_now
from store.db import session_scope
from store.models import (
    CodeMapping,
    LabMessage,
    LabResult,
    MedicationOrderRecord,
    Participant,
    QuarantineItem,
    Screening,
    utcnow,
)
from workflows.contracts import AnalyteIn, LabReport
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


@dataclass
class Receipt:
    """What the lab is told: the ACK code, its text (HL7) and one outcome per specimen."""

    ack_code: str
    ack: str
    message_id: int
    replayed: bool = False
    outcomes: list[OrderOutcome] = field(default_factory=list)


class TryLater(Exception):
    """Filing failed for a reason on our side: the message stays unanswered so a resend retries it."""


class Quarantined(Exception):
    def __init__(self, code: str, reason: str, location: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.location = code, reason, location


def storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; a message that carries one is kept with it escaped (its
    digest is taken over the bytes as received)."""
    return text.replace("\x00", "\\x00") if text else text


def _hl7_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S+0000")


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
    for value in (message.sending_facility, message.sending_application):
        if value and value.split("^", 1)[0].strip():
            return value.split("^", 1)[0].strip()
    return "unknown-lab"


class LabIngest:
    def __init__(self, engine: Engine, temporal: Client) -> None:
        self.engine = engine
        self.temporal = temporal
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    # --- entry points --------------------------------------------------------------------

    async def receive_hl7(self, text: str, transport: str) -> list[Receipt]:
        """One message or a batch; one receipt (and ACK) per message."""
        try:
            parts = split_batch(text) or [text]
        except Exception:  # noqa: BLE001 - a batch we cannot even split is one unparseable message
            parts = [text]
        # A single message is stored exactly as it came over the wire; a batch, message by message.
        if len(parts) == 1:
            parts = [text]
        return [await self._receive_one(part, transport) for part in parts]

    async def receive_parsed(self, message: OruMessage, raw: str, transport: str) -> Receipt:
        """A message already turned into an OruMessage (the JSON form)."""
        return await self._receive(raw, transport, _sender(message), message.message_control_id, message, None)

    async def _receive_one(self, raw: str, transport: str) -> Receipt:
        try:
            message, error = parse_oru(raw), None
        except Hl7Error as exc:
            message, error = None, exc
        except Exception as exc:  # noqa: BLE001 - the parser's promise broken: still answer, still store
            message, error = None, Hl7Error("207", f"the message could not be processed ({type(exc).__name__})")
        if message is not None:
            sender, control = _sender(message), message.message_control_id
        else:
            sender, control = _salvaged_key(raw)
        return await self._receive(raw, transport, sender, control, message, error)

    # --- the procedure -------------------------------------------------------------------

    async def _receive(self, raw: str, transport: str, sender: str, control: str,
                       message: OruMessage | None, error: Hl7Error | None) -> Receipt:
        # Copies of one message arriving together are handled one after the other in this
        # process (across processes the unique key decides): the first files, the rest replay.
        key = (sender, control)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                stored = await run_in_threadpool(self._store_raw, raw, transport, sender, control)
                if stored.ack is not None:
                    return Receipt(stored.ack_code or "AA", stored.ack, stored.id, replayed=True)
                return await self._process(stored.id, raw, message, error)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def _store_raw(self, raw: str, transport: str, sender: str, control: str) -> LabMessage:
        digest = hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
        try:
            with session_scope(self.engine) as session:
                row = LabMessage(sender=storable(sender), control_id=storable(control), transport=transport,
                                 raw=storable(raw), raw_sha256=digest)
                session.add(row)
                session.flush()
                return row
        except IntegrityError:
            with Session(self.engine) as session:
                return session.exec(select(LabMessage).where(LabMessage.sender == storable(sender),
                                                             LabMessage.control_id == storable(control))).one()

    async def _process(self, message_id: int, raw: str, message: OruMessage | None,
                       error: Hl7Error | None) -> Receipt:
        if message is None:
            assert error is not None
            ack = ack_for_unparseable(raw, error, f"ACK{message_id}", _hl7_now())
            code = "AR" if "|AR|" in ack or "\rMSA|AR" in ack else "AE"
            await run_in_threadpool(self._finish_rejected, message_id, error, ack, code)
            return Receipt(code, ack, message_id)

        if (message.processing_id or "P").upper().startswith(("T", "D")):
            warning = AckError("207", "test or debug message (MSH-11): acknowledged, not filed on any participant",
                               "MSH-11", severity="W")
            ack = build_ack(message, None, "AA", f"ACK{message_id}", [warning], _hl7_now())
            await run_in_threadpool(self._finish, message_id, "processed", "AA", ack, warning.detail)
            return Receipt("AA", ack, message_id)

        try:
            outcomes = [await self._file_order(message_id, index, message, order)
                        for index, order in enumerate(message.orders)]
        except TryLater as exc:
            log.warning("lab message %s not filed yet: %s", message_id, exc)
            error = AckError("207", str(exc), None)
            ack = build_ack(message, None, "AE", f"ACK{message_id}", [error], _hl7_now())
            return Receipt("AE", ack, message_id)  # not stored as the answer: a resend is processed again
        held = [o for o in outcomes if o.state != "filed"]
        errors = [AckError("207", f"specimen {o.result_id}: {o.reason}", o.location) for o in held]
        ack_code = "AE" if held else "AA"
        ack = build_ack(message, None, ack_code, f"ACK{message_id}", errors, _hl7_now())
        detail = "; ".join(o.reason or "" for o in held) or None
        await run_in_threadpool(self._finish, message_id, "processed", ack_code, ack, detail)
        return Receipt(ack_code, ack, message_id, outcomes=outcomes)

    async def _file_order(self, message_id: int, index: int, message: OruMessage, order: Order) -> OrderOutcome:
        result_id = f"lr-{message_id}-{index + 1}"
        lab_id = lab_id_of(message)
        status = (order.result_status or "F").upper()[:1]
        record = {
            "lab_id": lab_id, "placer": order.placer_order_number, "filler": order.filler_order_number,
            "specimen": order.specimen_id, "result_status": status, "collected_at": order.collected_at,
            "observations": [asdict(o) for o in order.observations], "notes": list(order.notes),
        }
        screening_id = None
        try:
            screening, participant = await run_in_threadpool(self._match, order)
            screening_id = screening.id
            _cross_check(message.patient, participant)
            report = await run_in_threadpool(self._report, result_id, message_id, lab_id, status, order, screening)
            await self._deliver(report, screening.id)
        except Quarantined as held:
            await run_in_threadpool(self._hold, message_id, result_id, index, lab_id, order, status, record,
                                    screening_id, held)
            return OrderOutcome(result_id, "quarantined", screening_id, held.code, held.reason, held.location)
        await run_in_threadpool(self._filed, message_id, result_id, index, lab_id, order, status, record, screening_id)
        return OrderOutcome(result_id, "filed", screening_id)

    # --- matching, mapping, delivery -------------------------------------------------------

    def _match(self, order: Order) -> tuple[Screening, Participant]:
        candidates = [c for c in (order.placer_order_number, order.specimen_id, order.filler_order_number) if c]
        with Session(self.engine) as session:
            for candidate in candidates:
                value = candidate.split("^", 1)[0].strip()
                screening = session.exec(select(Screening).where(
                    or_(Screening.specimen_id == value, Screening.id == value))).first()
                if screening is not None:
                    return screening, session.get(Participant, screening.participant_id)
        shown = ", ".join(f"'{c}'" for c in candidates) or "none"
        raise Quarantined("unknown-specimen",
                          f"no screening has the specimen or order id given (OBR-2/OBR-3/SPM-2: {shown}); "
                          "check the requisition, then attach the result to the right screening", "OBR-2")

    def _report(self, result_id: str, message_id: int, lab_id: str, status: str, order: Order,
                screening: Screening) -> LabReport:
        with Session(self.engine) as session:
            code_map = self._code_map(session, lab_id)
            methods = {(m.lab_id, m.code): m.method for m in session.exec(
                select(CodeMapping).where(CodeMapping.lab_id == lab_id)).all()}
            expected = expected_medications(session, screening.participant_id)
        analytes, unmapped = map_observations(order.observations, code_map, methods, lab_id)
        if unmapped:
            raise Quarantined("unmapped-code",
                              "analyte code(s) not in the code table: " + ", ".join(unmapped)
                              + "; map each at POST /lab/code-mappings (never guessed), then attach this result",
                              "OBX-3")
        if not analytes:
            raise Quarantined("no-results", "the order carries no analyte result (OBX) to file", "OBX")
        return LabReport(
            result_id=result_id, lab_id=lab_id, message_ref=str(message_id),
            specimen_id=screening.specimen_id or screening.id, result_status=status,
            received_at=utcnow().isoformat(), analytes=analytes, collected_at=order.collected_at,
            expected_medications=expected, notes=list(order.notes),
        )

    @staticmethod
    def _code_map(session: Session, lab_id: str) -> dict[tuple[str, str], str]:
        code_map = dict(DEFAULT_CODE_MAP)
        for mapping in session.exec(select(CodeMapping).where(CodeMapping.lab_id == lab_id)).all():
            code_map[(local_system(lab_id), mapping.code)] = mapping.analyte
        return code_map

    async def _deliver(self, report: LabReport, screening_id: str) -> None:
        handle = self.temporal.get_workflow_handle(screening_workflow_id(screening_id))
        try:
            # The update id is the result's: a resend after a timeout joins the first attempt if it got through.
            await handle.execute_update(ScreeningWorkflow.record_result, report,
                                        id=f"record-result-{report.result_id}")
        except WorkflowUpdateFailedError as exc:
            cause = getattr(exc.cause, "message", None) or str(exc.cause)
            raise Quarantined("screening-not-awaiting-result", f"{cause}; staff decide what to do with it",
                              "OBR-2") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and not not_available_now(exc):
                raise Quarantined("screening-closed", f"screening {screening_id} is closed and takes no more "
                                  "results; staff decide what to do with it", "OBR-2") from exc
            raise TryLater(f"the result could not be filed right now ({exc.status.name}); resend this message") from exc
        except Exception as exc:
            # Timed out or not reachable (never an AA): the raw message is stored; the lab resends it.
            if not_available_now(exc):
                raise TryLater("the result could not be filed right now (workflow service did not answer in "
                               "time); resend this message") from exc
            raise

    # --- records ---------------------------------------------------------------------------

    def _filed(self, message_id, result_id, index, lab_id, order, status, record, screening_id) -> None:
        with session_scope(self.engine) as session:
            self._save_result(session, message_id, result_id, index, lab_id, order, status, record, screening_id,
                              "filed")

    @staticmethod
    def _save_result(session, message_id, result_id, index, lab_id, order, status, record, screening_id,
                     state: str) -> None:
        session.merge(LabResult(id=result_id, lab_message_id=message_id, order_index=index, lab_id=storable(lab_id),
                                placer_order_number=storable(order.placer_order_number),
                                filler_order_number=storable(order.filler_order_number),
                                specimen_id=storable(order.specimen_id), result_status=storable(status),
                                screening_id=screening_id, state=state, report=record))

    def _hold(self, message_id, result_id, index, lab_id, order, status, record, screening_id,
              held: Quarantined) -> None:
        with session_scope(self.engine) as session:
            self._save_result(session, message_id, result_id, index, lab_id, order, status, record, screening_id,
                              "quarantined")
            exists = session.exec(select(QuarantineItem).where(QuarantineItem.lab_result_id == result_id,
                                                               QuarantineItem.resolved_at.is_(None))).first()
            if exists is None:
                session.add(QuarantineItem(lab_message_id=message_id, lab_result_id=result_id, reason_code=held.code,
                                           reason=storable(held.reason), screening_id=screening_id))

    def _finish(self, message_id: int, status: str, ack_code: str, ack: str, detail: str | None) -> None:
        with session_scope(self.engine) as session:
            row = session.get(LabMessage, message_id)
            row.status, row.ack_code, row.ack, row.detail = status, ack_code, storable(ack), storable(detail)
            session.add(row)

    def _finish_rejected(self, message_id: int, error: Hl7Error, ack: str, ack_code: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(LabMessage, message_id)
            row.status, row.ack_code, row.ack, row.detail = "rejected", ack_code, storable(ack), storable(error.detail)
            session.add(row)
            session.add(QuarantineItem(lab_message_id=message_id, reason_code="unparseable",
                                       reason=storable(f"HL7 error {error.code}"
                                                       + (f" at {error.location}" if error.location else "")
                                                       + f": {error.detail}")))

    # --- staff resolving quarantine ---------------------------------------------------------

    async def attach(self, item_id: int, screening_id: str, actor: str, note: str) -> QuarantineItem:
        """Staff vouch for the match (identity checked by a person); codes are mapped again."""
        item, result = await run_in_threadpool(self._open_item, item_id)
        if result is None:
            raise Quarantined("nothing-to-attach", "this message could not be parsed, so there is no result to "
                              "attach; reject it and ask the lab to resend it corrected")
        screening = await run_in_threadpool(self._screening, screening_id)
        order = order_from_record(result.report)
        report = await run_in_threadpool(self._report, result.id, result.lab_message_id, result.lab_id,
                                         result.result_status, order, screening)
        await self._deliver(report, screening.id)
        return await run_in_threadpool(self._resolve, item_id, "attached", actor, note, screening.id)

    async def reject(self, item_id: int, actor: str, note: str) -> QuarantineItem:
        await run_in_threadpool(self._open_item, item_id)
        return await run_in_threadpool(self._resolve, item_id, "rejected", actor, note, None)

    def _open_item(self, item_id: int) -> tuple[QuarantineItem, LabResult | None]:
        with Session(self.engine) as session:
            item = session.get(QuarantineItem, item_id)
            if item is None:
                raise LookupError(f"no quarantine item {item_id}")
            if item.resolved_at is not None:
                raise Quarantined("already-resolved", f"item {item_id} was already {item.resolution} "
                                  f"on {item.resolved_at:%Y-%m-%d %H:%M}")
            result = session.get(LabResult, item.lab_result_id) if item.lab_result_id else None
            return item, result

    def _screening(self, screening_id: str) -> Screening:
        with Session(self.engine) as session:
            screening = session.get(Screening, screening_id)
            if screening is None:
                raise LookupError(f"no screening {screening_id!r}")
            return screening

    def _resolve(self, item_id: int, resolution: str, actor: str, note: str, screening_id: str | None) -> QuarantineItem:
        with session_scope(self.engine) as session:
            item = session.get(QuarantineItem, item_id)
            item.resolved_at, item.resolution, item.resolved_by = utcnow(), resolution, actor
            item.resolution_note, item.screening_id = note, screening_id or item.screening_id
            session.add(item)
            if item.lab_result_id:
                result = session.get(LabResult, item.lab_result_id)
                result.state = "filed" if resolution == "attached" else "rejected"
                result.screening_id = screening_id or result.screening_id
                session.add(result)
            return item


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
            "birth date (PID-7)")
    if patient.family_name and _name(patient.family_name) != _name(participant.family_name):
        disagree.append("family name (PID-5)")
    if disagree:
        raise Quarantined("identifier-mismatch",
                          "the specimen id matches a screening but the " + " and ".join(disagree)
                          + " do not match that participant; verify the requisition before attaching", "PID")
    if not agree:
        raise Quarantined("identifier-missing",
                          "the message carries neither our participant id in PID-3 nor a birth date in PID-7, "
                          "so the match cannot be cross-checked; verify it and attach by hand", "PID-3")


def _name(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.split("^", 1)[0].lower())


def map_observations(observations: Iterable[Observation], code_map, methods: dict, lab_id: str
                     ) -> tuple[list[AnalyteIn], list[str]]:
    analytes, unmapped = [], []
    for obx in observations:
        analyte = map_code(code_map, lab_id, obx.coding_system or "", obx.code or "")
        if analyte is None:
            unmapped.append(f"{obx.code or '(empty)'} ({obx.coding_system or 'no system'}"
                            + (f", '{obx.label}'" if obx.label else "") + ")")
            continue
        method = methods.get((lab_id, obx.code)) or (
            "confirm" if _CONFIRMATION.search(" ".join([obx.label or "", *obx.notes])) else "screen")
        analytes.append(AnalyteIn(analyte=analyte, value=obx.value_numeric, qualitative=obx.value_text,
                                  units=obx.units, lab_cutoff=obx.cutoff, method=method, code=obx.code))
    return analytes, unmapped


def order_from_record(record: dict[str, Any]) -> Order:
    return Order(
        placer_order_number=record.get("placer"), filler_order_number=record.get("filler"),
        specimen_id=record.get("specimen"), universal_service_id=None, collected_at=record.get("collected_at"),
        result_status=record.get("result_status"),
        observations=tuple(Observation(**{**o, "notes": tuple(o.get("notes") or ())}) for o in record["observations"]),
        notes=tuple(record.get("notes") or ()),
    )


def expected_medications(session: Session, participant_id: str) -> list[str]:
    """Medications the participant is prescribed (orders not stopped): their absence is a finding."""
    orders = session.exec(select(MedicationOrderRecord).where(
        MedicationOrderRecord.participant_id == participant_id, MedicationOrderRecord.status != "stopped")).all()
    return sorted({m for m in (expected_substance(o.drug) for o in orders) if m})
