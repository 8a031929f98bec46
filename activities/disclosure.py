"""Disclosures to courts, probation and employers: planning, the consent check at the moment of
sending, signed delivery, and the accounting of every disclosure (42 CFR Part 2).

Every attempt re-reads the consents and the recipient and checks coverage at that instant: a
consent revoked or expired while a delivery was retrying stops it before anything is sent.
"""

from __future__ import annotations

import base64
import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from activities.report_document import DEFAULT_LETTERHEAD, content_hash, html_body, render_pdf, text_body
from domain import ledger
from domain.attendance import STATUSES as ATTENDANCE_STATUSES
from domain.consent import (
    MISSED_TESTS,
    PERIODIC_SUMMARY,
    REFUSALS,
    SCREENING_RESULTS,
    ConsentError,
    DisclosureCategory,
    consent_from_dict,
    consent_to_dict,
    find_covering_consent,
    record_event,
)
from domain.delivery_retry import DELIVERED, RETRY, STOP_AND_SURFACE, Decision, classify_response
from domain.disclosure_ids import disclosure_id, legacy_disclosure_id
from domain.medication import DispenseKind, MedicationOrder
from domain.program import Program, default_program
from domain.report_content import (
    ReportOutcome,
    build_report,
    build_retraction,
    completion_letter,
    monthly_summary,
    slot_categories,
)
from domain.report_facts import facts_dict
from domain.result_basis import CONFIRMING_BASES, PRESUMPTIVE_WORDING, Basis, lab_basis
from domain.vocab import DisclosureStatus, FinalOutcome
from domain.webhook_signing import encode_payload, webhook_headers
from iop.codec import CodecKey, open_text
from store import audit
from store.db import session_scope
from store.models import (
    AttendanceRecord,
    AttendanceSession,
    CheckInDayRecord,
    ConsentRecord,
    Disclosure,
    DispenseRow,
    EmailOutbox,
    MedicationEventRow,
    MedicationOrderRecord,
    Participant,
    Recipient,
    Screening,
    utcnow,
)
from store.programs import current_program
from store.shapes import typed
from workflows.contracts.delivery import AttemptResult
from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput, PlannedDisclosure
from workflows.contracts.screening import ScreeningState

log = logging.getLogger(__name__)

RECIPIENT_IDENTIFIER = "case_number"
COMPLETION = "completed"


@dataclass(frozen=True)
class SmtpSettings:
    """The mail relay email recipients' reports go through (IOP_SMTP_HOST, _PORT, _FROM, _USERNAME, _PASSWORD,
    _STARTTLS)."""

    host: str
    sender: str
    port: int = 25
    username: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = False
    timeout_s: float = 15.0


class DisclosureActivities:
    def __init__(
        self,
        engine: Engine,
        keys: Sequence[CodecKey],
        *,
        smtp: SmtpSettings | None = None,
        letterhead: str = DEFAULT_LETTERHEAD,
    ) -> None:
        self.engine = engine
        self.keys = list(keys)
        self.smtp = smtp
        self.letterhead = letterhead

    # --- who gets what -------------------------------------------------------------------

    @activity.defn
    def plan_disclosures(self, event: DisclosureEvent) -> list[PlannedDisclosure]:
        """One disclosure per recipient that wants this category and is linked to the participant
        (by a case number in its system, or by any consent naming it); and an amendment or a retraction
        to every recipient that was sent an earlier report of the same event that no longer stands,
        whatever category the event now falls in. Idempotent: the same event planned again plans nothing new."""
        with session_scope(self.engine) as session:
            participant = session.get(Participant, event.participant_id)
            if participant is None:
                return []
            facts = facts_dict(event.facts)
            if event.category == PERIODIC_SUMMARY or facts.get("status") == COMPLETION:
                facts["by_category"] = self._period_facts(session, participant, facts)
            reportable, facts, withdrawn_because = self._reportable(session, participant, event, facts)
            planned = []
            for recipient in self._linked_recipients(session, participant):
                wants = reportable and event.category in recipient.categories
                latest = self._latest_sent(session, participant.id, recipient.id, event)
                if latest is None:
                    if not wants:
                        continue
                    the_id = self._id_for(session, participant.id, recipient.id, event, None)
                    category, corrects = event.category, None
                    row_facts = facts
                elif wants:
                    if latest.category == event.category and latest.facts == facts:
                        planned.append(PlannedDisclosure(latest.id, recipient.id, latest.corrects))
                        continue  # the same report again: nothing new to say
                    category, corrects, row_facts = event.category, latest.id, facts
                    the_id = disclosure_id(participant.id, event.event_ref, category, recipient.id, corrects)
                else:
                    if latest.facts.get("retracted"):
                        continue  # withdrawn already
                    category, corrects = latest.category, latest.id
                    row_facts = {"retracted": True, "retraction_reason": withdrawn_because}
                    the_id = disclosure_id(
                        participant.id, f"{event.event_ref}-retraction", category, recipient.id, corrects
                    )
                if session.get(Disclosure, the_id) is None:
                    session.add(
                        Disclosure(
                            id=the_id,
                            participant_id=participant.id,
                            recipient_id=recipient.id,
                            category=category,
                            event_ref=event.event_ref,
                            facts=row_facts,
                            corrects=corrects,
                        )
                    )
                    session.flush()
                planned.append(PlannedDisclosure(the_id, recipient.id, corrects, category))
            return planned

    def _reportable(
        self, session: Session, participant: Participant, event: DisclosureEvent, facts: dict
    ) -> tuple[bool, dict, str]:
        """Whether the event may go to a court or employer now, its facts as they may be reported, and, when
        it may not, why an earlier report of it is withdrawn (domain.report_content.RETRACTION_REASONS)."""
        if facts.get("retracted"):
            return False, facts, facts.get("retraction_reason") or "voided"
        if event.category not in (SCREENING_RESULTS, MISSED_TESTS, REFUSALS):
            return True, facts, "corrected"
        program = self._program(session, participant)
        screening = session.get(Screening, event.event_ref)
        forensic = program.forensic_default if screening is None or screening.forensic is None else screening.forensic
        if not forensic:
            return False, facts, "not-reportable"  # clinical: treatment only, never disclosed
        if event.category != SCREENING_RESULTS or facts.get("outcome") not in (
            ReportOutcome.POSITIVE,
            ReportOutcome.PRESUMPTIVE_POSITIVE,
        ):
            return True, facts, "corrected"
        basis = facts.get("basis") or _basis_from_record(screening)
        facts = {**facts, "basis": basis, "confirmed": basis in CONFIRMING_BASES}
        if basis == Basis.PRESUMPTIVE_SCREEN:
            if not program.report_presumptive:
                return False, facts, "not-reportable"  # waits for the laboratory's confirmation
            facts.update(outcome="presumptive-positive", statement=PRESUMPTIVE_WORDING)
        else:
            facts["outcome"] = "positive"
        return True, facts, "corrected"

    @staticmethod
    def _program(session: Session, participant: Participant) -> Program:
        stored = current_program(session, participant.program) if participant.program else None
        return stored[0] if stored else default_program()

    @staticmethod
    def _latest_sent(
        session: Session, participant_id: str, recipient_id: str, event: DisclosureEvent
    ) -> Disclosure | None:
        """The last report of this event's question to this recipient that was sent or is on its way (the end
        of its amendment chain), or None when the recipient was never told of it."""
        rows = session.exec(
            select(Disclosure)
            .where(
                Disclosure.participant_id == participant_id,
                Disclosure.recipient_id == recipient_id,
                Disclosure.event_ref == event.event_ref,
                col(Disclosure.category).in_(slot_categories(event.category)),
                col(Disclosure.status).in_(
                    (
                        DisclosureStatus.PENDING,
                        DisclosureStatus.RETRYING,
                        DisclosureStatus.DELIVERED,
                        DisclosureStatus.FAILED,
                    )
                ),
            )
            .order_by(col(Disclosure.created_at))
        ).all()
        amended = {row.corrects for row in rows}
        ends = [row for row in rows if row.id not in amended]
        return ends[-1] if ends else None

    @staticmethod
    def _id_for(
        session: Session, participant_id: str, recipient_id: str, event: DisclosureEvent, corrects: str | None
    ) -> str:
        """The participant-scoped id; or the id this very disclosure was recorded under before ids named
        their participant (a plan re-run across the upgrade must not send the same report twice).
        A row under the old id that belongs to another participant is never reused."""
        legacy = session.get(Disclosure, legacy_disclosure_id(event.event_ref, event.category, recipient_id, corrects))
        if legacy is not None and (
            legacy.participant_id,
            legacy.recipient_id,
            legacy.event_ref,
            legacy.category,
            legacy.corrects,
        ) == (participant_id, recipient_id, event.event_ref, event.category, corrects):
            return legacy.id
        return disclosure_id(participant_id, event.event_ref, event.category, recipient_id, corrects)

    def _linked_recipients(self, session: Session, participant: Participant) -> list[Recipient]:
        systems = {c.get("system") for c in participant.case_numbers}
        consented = set(
            session.exec(select(ConsentRecord.recipient_id).where(ConsentRecord.participant_id == participant.id)).all()
        )
        recipients = session.exec(select(Recipient).order_by(col(Recipient.id))).all()
        return [
            r for r in recipients if r.id in consented or (r.case_number_system and r.case_number_system in systems)
        ]

    def _period_facts(self, session: Session, participant: Participant, facts: dict) -> dict[str, list]:
        """Each category's entries over the period (a month, or the whole program for a letter)."""
        first = date.fromisoformat(facts.get("period_start") or participant.start_date.isoformat())
        last = date.fromisoformat(facts.get("period_end") or facts.get("effective_on", "")[:10] or first.isoformat())
        program = self._program(session, participant)
        # Clinical screenings are never disclosed, in a summary either (issue 16).
        screenings = [
            s
            for s in session.exec(
                select(Screening).where(
                    Screening.participant_id == participant.id, Screening.day >= first, Screening.day <= last
                )
            ).all()
            if (program.forensic_default if s.forensic is None else s.forensic)
        ]
        results = []
        for s in screenings:
            if s.state.get("final_outcome") in (None, "refusal"):
                continue
            outcome = _reported_outcome(s.state.get("final_outcome"))
            if outcome == "positive" and _summary_basis(s) == Basis.PRESUMPTIVE_SCREEN:
                if not program.report_presumptive:
                    continue  # a screen awaiting confirmation is not counted as a positive
                outcome = "presumptive-positive"
            results.append({"outcome": outcome})
        adherence = _medication_adherence(session, participant.id, first, last)
        return {
            DisclosureCategory.SCREENING_RESULTS: results,
            DisclosureCategory.MISSED_TESTS: [{"day": s.day.isoformat()} for s in screenings if s.status == "missed"],
            DisclosureCategory.REFUSALS: [
                {"day": s.day.isoformat()}
                for s in screenings
                if s.status == "refused" or s.state.get("final_outcome") == "refusal"
            ],
            DisclosureCategory.MEDICATION_ADHERENCE: adherence,
            DisclosureCategory.PHASE_CHANGES: facts.get("phase_changes", []),
            DisclosureCategory.ATTENDANCE: _attendance_entries(session, participant, first, last),
            DisclosureCategory.PROGRAM_STATUS: [{"status": facts["status"], "effective_on": facts["effective_on"]}]
            if facts.get("status")
            else [],
            # Only the days the program made a missed check-in reportable (check_in_days.missed_reportable).
            "missed-check-ins": [
                {"day": d.day.isoformat()}
                for d in session.exec(
                    select(CheckInDayRecord).where(
                        CheckInDayRecord.participant_id == participant.id,
                        CheckInDayRecord.day >= first,
                        CheckInDayRecord.day <= last,
                        CheckInDayRecord.missed_reportable == True,  # noqa: E712
                    )
                ).all()
            ],
        }

    # --- the attempt -----------------------------------------------------------------------

    @activity.defn
    def attempt_delivery(self, request: DisclosureInput) -> AttemptResult:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            row = session.get(Disclosure, request.disclosure_id)
            if row is None:
                return self._blocked(request, "the disclosure record is gone")
            if (row.participant_id, row.recipient_id, row.category) != (
                request.participant_id,
                request.recipient_id,
                request.category,
            ):
                # A delivery asked for one participant but the record is another's (ids shared before
                # they named their participant): nothing is sent and the record is left as it is.
                reason = (
                    "the disclosure record belongs to another participant, recipient or category than this "
                    "delivery; nothing was sent"
                )
                self._audit(request, "blocked", reason)
                return AttemptResult("blocked", reason)
            # Everything below is read from the row: whose report it is, to whom, under whose consents.
            recipient = session.get(Recipient, row.recipient_id)
            participant = session.get(Participant, row.participant_id)
            consents = [
                consent_from_dict(c.consent)
                for c in session.exec(
                    select(ConsentRecord).where(
                        ConsentRecord.participant_id == row.participant_id,
                        ConsentRecord.recipient_id == row.recipient_id,
                    )
                ).all()
            ]
        if recipient is None or participant is None:
            return self._blocked(request, "the recipient or participant record is gone")
        if row.status in (DisclosureStatus.DELIVERED, DisclosureStatus.BLOCKED, DisclosureStatus.CANCELLED):
            return AttemptResult(row.status, row.reason or row.status)  # decided on an earlier attempt
        if recipient.status != "active":
            return self._blocked(request, f"recipient {recipient.id} is disabled: {recipient.disabled_reason}")
        if row.corrects:
            with Session(self.engine) as session:
                original = session.get(Disclosure, row.corrects)
            if original is not None and original.status in (DisclosureStatus.PENDING, DisclosureStatus.RETRYING):
                # An amendment never overtakes what it amends: it goes once the original is delivered.
                return AttemptResult("waiting", f"waiting for {row.corrects} (the report it amends) to be delivered")
        # The consent check, at the moment of sending.
        consent, why = find_covering_consent(consents, recipient.id, row.category, now.isoformat())
        if consent is None:
            return self._blocked(request, why)
        try:
            payload = self._payload(row, recipient, participant, consent, now)
        except (ConsentError, ValueError) as exc:
            return self._blocked(request, f"report not built: {exc}")
        document = render_pdf(payload, self.letterhead)
        if recipient.delivery == "email":
            decision, status = self._email(recipient, row.id, payload, document), None
        else:
            # The webhook carries its document: the PDF, base64, covered by the Standard Webhooks signature.
            payload = {
                **payload,
                "document": {
                    "id": f"{row.id}.pdf",
                    "media_type": "application/pdf",
                    "sha256": content_hash(document),
                    "content_base64": base64.b64encode(document).decode("ascii"),
                },
            }
            status, retry_after = self._send(recipient, row.id, payload, now)
            decision = classify_response(status, retry_after, now)
        self._record_attempt(
            row.id, consent.consent_id, payload, status, decision.kind, decision.reason, content_hash(document)
        )
        self._audit(
            request,
            decision.kind if status is None else f"{decision.kind} ({status})",
            decision.reason,
            consent.consent_id,
        )
        if decision.kind == "disable-recipient":
            self._disable(recipient.id, decision.reason)
        return AttemptResult(decision.kind, decision.reason, decision.delay_s, status)

    def _blocked(self, request: DisclosureInput, reason: str) -> AttemptResult:
        self._audit(request, "blocked", reason)
        return self._settle(request.disclosure_id, "blocked", reason)

    def _payload(self, row: Disclosure, recipient: Recipient, participant: Participant, consent, now: datetime) -> dict:
        numbers = [c["value"] for c in participant.case_numbers if c.get("system") == recipient.case_number_system]
        identifiers = {RECIPIENT_IDENTIFIER: numbers[-1]} if numbers else {}
        if not identifiers:
            identifiers = {"recipient_reference": participant.id}
        issued = now.isoformat()
        if row.facts.get("retracted"):
            assert row.corrects is not None  # a retraction is planned with the report it withdraws
            return build_retraction(
                row.category, row.facts["retraction_reason"], identifiers, consent, row.id, issued, amends=row.corrects
            )
        if row.category == PERIODIC_SUMMARY:
            return monthly_summary(
                row.facts["by_category"],
                consent,
                row.facts["month"],
                identifiers,
                row.id,
                issued,
                corrects=row.corrects,
            )
        if row.facts.get("status") == COMPLETION and "by_category" in row.facts:
            return completion_letter(
                row.facts["by_category"],
                consent,
                row.facts["effective_on"][:10],
                identifiers,
                row.id,
                issued,
                corrects=row.corrects,
            )
        facts = {k: v for k, v in row.facts.items() if k != "by_category"}
        # Only a forensic screening is ever planned for a recipient (see _reportable).
        forensic = True if row.category in (SCREENING_RESULTS, MISSED_TESTS, REFUSALS) else None
        return build_report(
            row.category, facts, identifiers, consent, row.id, issued, corrects=row.corrects, forensic=forensic
        )

    def _send(
        self, recipient: Recipient, disclosure_id: str, payload: dict, now: datetime
    ) -> tuple[int | None, str | None]:
        assert recipient.url is not None and recipient.secret_sealed is not None  # a webhook recipient has both
        body = encode_payload(payload)
        secret = open_text(self.keys, recipient.secret_sealed)
        headers = {
            "Content-Type": "application/json",
            **webhook_headers(secret, disclosure_id, int(now.timestamp()), body),
        }
        try:
            response = httpx.post(recipient.url, content=body, headers=headers, timeout=15.0, follow_redirects=False)
        except httpx.HTTPError as exc:
            log.info("disclosure %s: no answer from recipient %s (%s)", disclosure_id, recipient.id, type(exc).__name__)
            return None, None
        return response.status_code, response.headers.get("retry-after")

    def _email(self, recipient: Recipient, disclosure_id: str, payload: dict, document: bytes) -> Decision:
        """The report as a readable mail with its PDF attached, handed to the relay. Delivered only when the relay
        accepted it for the recipient; a relay that is down or answers 4xx is retried on the webhook schedule."""
        subject = f"Confidential report {payload.get('type', '')} ({disclosure_id[:40]})"
        text = text_body(payload, self.letterhead)
        with session_scope(self.engine) as session:
            if session.get(EmailOutbox, disclosure_id) is None:
                session.add(
                    EmailOutbox(
                        id=disclosure_id,
                        recipient_id=recipient.id,
                        to_address=recipient.email or "",
                        subject=subject,
                        body=text,
                    )
                )
        if self.smtp is None or not self.smtp.host:
            return Decision(RETRY, None, "no mail relay is configured (IOP_SMTP_HOST): the report waits, retried")
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.smtp.sender, recipient.email, subject
        message["Message-ID"] = f"<{disclosure_id}@iop-workflows>"
        message.set_content(text)
        message.add_alternative(html_body(payload, self.letterhead), subtype="html")
        message.add_attachment(document, maintype="application", subtype="pdf", filename=f"{disclosure_id[:60]}.pdf")
        refused = send_mail(self.smtp, message)
        if refused is not None:
            return refused
        with session_scope(self.engine) as session:
            queued = session.get_one(EmailOutbox, disclosure_id)
            queued.sent_at = utcnow()
            session.add(queued)
        return Decision(DELIVERED, None, "the mail relay accepted the report (SMTP 250)")

    # --- records ---------------------------------------------------------------------------

    def _record_attempt(
        self,
        disclosure_id: str,
        consent_id: str,
        payload: dict,
        status: int | None,
        kind: str,
        reason: str,
        document_hash: str | None = None,
    ) -> None:
        with session_scope(self.engine) as session:
            row = session.get_one(Disclosure, disclosure_id)
            row.consent_id, row.payload, row.last_status_code = consent_id, payload, status
            row.content_hash = document_hash
            row.attempts += 1
            row.reason = reason
            statuses: dict[str, DisclosureStatus] = {
                DELIVERED: DisclosureStatus.DELIVERED,
                RETRY: DisclosureStatus.RETRYING,
            }
            row.status = statuses.get(kind, DisclosureStatus.FAILED)
            if kind == "delivered":
                row.delivered_at = utcnow()
            row.updated_at = utcnow()
            session.add(row)

    def _settle(self, disclosure_id: str, status: str, reason: str) -> AttemptResult:
        self._set_status(disclosure_id, status, reason)
        return AttemptResult(status, reason)

    def _audit(self, request: DisclosureInput, outcome: str, reason: str, consent_id: str | None = None) -> None:
        """Every disclosure attempt, sent or blocked, is in the audit trail with its consent."""
        audit.append(
            self.engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action=f"disclosure.{request.category}",
                outcome=outcome,
                subject_type="disclosure",
                subject_id=request.disclosure_id,
                participant_id=request.participant_id,
                detail=(
                    f"to {request.recipient_id}"
                    + (f" under consent {consent_id}" if consent_id else "")
                    + f": {reason}"
                )[:1000],
            ),
        )

    def _set_status(self, disclosure_id: str, status: str, reason: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Disclosure, disclosure_id)
            if row is not None and row.status != "delivered":
                row.status, row.reason, row.updated_at = status, reason, utcnow()
                session.add(row)

    def _disable(self, recipient_id: str, reason: str) -> None:
        with session_scope(self.engine) as session:
            recipient = session.get_one(Recipient, recipient_id)
            recipient.status, recipient.disabled_reason = "disabled", reason
            session.add(recipient)

    @activity.defn
    def settle_disclosure(self, request: DisclosureInput, status: str, reason: str) -> None:
        """Cancelled (consent revoked) or failed (retries spent): recorded so staff see it."""
        self._set_status(request.disclosure_id, status, reason)

    @activity.defn
    def record_consent_event(self, participant_id: str, event: str, at: str) -> None:
        """An event some consents end on (discharge, completion) happened; idempotent."""
        with session_scope(self.engine) as session:
            for row in session.exec(select(ConsentRecord).where(ConsentRecord.participant_id == participant_id)).all():
                row.consent = consent_to_dict(record_event(consent_from_dict(row.consent), event, at))
                session.add(row)

    def all(self) -> list:
        return [self.plan_disclosures, self.attempt_delivery, self.settle_disclosure, self.record_consent_event]


def send_mail(settings: SmtpSettings, message: EmailMessage) -> Decision | None:
    """Hands the message to the relay: None once it accepted it for every recipient, otherwise what to do next
    (retry on no answer or a 4yz, stop on a 5yz; _smtp_refusal)."""
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password)
            refused = smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code = next(iter(exc.recipients.values()))[0] if exc.recipients else None
        return _smtp_refusal(code)
    except smtplib.SMTPResponseException as exc:
        return _smtp_refusal(exc.smtp_code)
    except (OSError, smtplib.SMTPException) as exc:
        return Decision(RETRY, None, f"the mail relay did not answer ({type(exc).__name__}); retrying")
    if refused:
        return _smtp_refusal(next(iter(refused.values()))[0])
    return None


def _smtp_refusal(code: int | None) -> Decision:
    """RFC 5321 §4.2.1: 4yz is transient (retried), 5yz permanent (surfaced to staff, not resent)."""
    if code is not None and 500 <= code <= 599:
        return Decision(
            STOP_AND_SURFACE,
            None,
            f"the mail relay refused the report (SMTP {code}); check the recipient's address, then resend",
        )
    return Decision(RETRY, None, f"the mail relay deferred the report (SMTP {code}); retrying")


def _attendance_entries(session: Session, participant: Participant, first: date, last: date) -> list[dict]:
    """One entry per session of the period (program days in the participant's zone) whose attendance was recorded
    (present, late, excused, absent); a session nobody recorded is not reported as attended or missed
    (domain.attendance)."""
    zone = ZoneInfo(participant.timezone)
    since = datetime.combine(first, time.min, zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, zone).astimezone(UTC)
    rows = session.exec(
        select(AttendanceRecord, AttendanceSession)
        .where(
            AttendanceRecord.session_id == AttendanceSession.id,
            AttendanceRecord.participant_id == participant.id,
            col(AttendanceRecord.status).in_(ATTENDANCE_STATUSES),
            AttendanceSession.starts_at >= since,
            AttendanceSession.starts_at < until,
        )
        .order_by(col(AttendanceSession.starts_at))
    ).all()
    return [{"status": record.status} for record, _ in rows]


def _snapshot(screening: Screening | None) -> ScreeningState | None:
    """The screening as its workflow last saved it (ScreeningActivities.save_screening), or None before that."""
    return typed(ScreeningState, screening.state) if screening is not None and screening.state else None


def _summary_basis(screening: Screening) -> str:
    state = _snapshot(screening)
    if state is not None and state.admission is not None and state.collection is None:
        return Basis.ADMITTED_USE
    if state is not None and state.breath_result is not None:
        return state.breath_result.basis or Basis.PRESUMPTIVE_SCREEN
    return _lab_basis(state)


def _basis_from_record(screening: Screening | None) -> str:
    return _lab_basis(_snapshot(screening))


def _lab_basis(state: ScreeningState | None) -> str:
    """The basis of a positive as the screening's current lab result shows it: laboratory-confirmed only when a
    confirmatory method found every positive analyte. A clinician's review confirms nothing by itself."""
    current = next((r for r in state.results if r.result_id == state.current_result_id), None) if state else None
    return lab_basis(current.interpretation.findings if current else ())


def _reported_outcome(final_outcome: str | None) -> str:
    # A result with a documented legitimate explanation is reported as negative (MRO practice).
    reported: dict[str, ReportOutcome] = {
        FinalOutcome.NEGATIVE: ReportOutcome.NEGATIVE,
        FinalOutcome.EXPLAINED: ReportOutcome.NEGATIVE,
        FinalOutcome.POSITIVE: ReportOutcome.POSITIVE,
    }
    return reported.get(final_outcome or "", ReportOutcome.INVALID)


def _medication_adherence(session: Session, participant_id: str, first: date, last: date) -> list[dict]:
    """Doses taken of doses due over the period, per order, counted by the one adherence function
    (domain.ledger.adherence_between) over the ledger the order's workflow keeps. Guest copies are
    left out: their doses are in the home order's ledger."""
    rows = session.exec(
        select(MedicationOrderRecord).where(
            MedicationOrderRecord.participant_id == participant_id,
            col(MedicationOrderRecord.home_order_id).is_(None),
            MedicationOrderRecord.start_date <= last,
        )
    ).all()
    entries = []
    for row in rows:
        book, closed = _ledger_of(session, row)
        counted = ledger.adherence_between(typed(MedicationOrder, row.order), book, first, last, closed)
        if counted.expected:
            entries.append(
                {
                    "doses_expected": counted.expected,
                    "doses_taken": counted.taken,
                    "adherence_ratio": round(counted.ratio or 0.0, 2),
                }
            )
    return entries


def _ledger_of(session: Session, row: MedicationOrderRecord) -> tuple[ledger.DoseLedger, frozenset[date]]:
    stored = row.ledger or {}
    closed = frozenset(date.fromisoformat(d) for d in stored.get("closed_days", []))
    if stored:
        return typed(ledger.DoseLedger, stored), closed
    # An order the workflow has not synced a ledger for yet: rebuilt from its records.
    outcomes: dict[str, str] = {}
    supplies, injections = [], []
    for dispense in session.exec(select(DispenseRow).where(DispenseRow.order_id == row.id)).all():
        key = dispense.day.isoformat()
        if dispense.kind == "take-home":
            dates = dispense.covered_dates or list(
                ledger.supply_dates(date.fromordinal(dispense.day.toordinal() + 1), max(dispense.take_home_count, 1))
            )
            supplies.append(ledger.Supply(key, tuple(dates)))
        elif dispense.kind == "injection":
            injections.append(key)
        else:
            recorded: dict[str, ledger.LedgerStatus] = {
                DispenseKind.OBSERVED_DOSE: ledger.DOSED,
                DispenseKind.REFUSED: ledger.REFUSED,
                DispenseKind.HELD: ledger.HELD,
            }
            outcomes[key] = recorded[dispense.kind]
    for event in session.exec(
        select(MedicationEventRow).where(
            MedicationEventRow.order_id == row.id, MedicationEventRow.kind == "missed-dose"
        )
    ).all():
        outcomes.setdefault(event.day.isoformat(), ledger.MISSED)
    return ledger.DoseLedger(outcomes, tuple(supplies), tuple(injections)), closed
