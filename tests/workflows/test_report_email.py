"""Issue 16: reports by email go through a real SMTP relay (aiosmtpd on 127.0.0.1) as a readable message with
the PDF attached, and are "delivered" only once the relay accepted them; webhook reports carry the same PDF."""

from __future__ import annotations

import base64
import email
import io
import secrets
from datetime import UTC, datetime, timedelta
from email import policy

import pypdf
from aiosmtpd.controller import Controller
from sqlmodel import Session

from activities.disclosure import DisclosureActivities, SmtpSettings
from activities.report_document import content_hash
from domain.consent import consent_from_dict, consent_to_dict
from domain.report_facts import ReportFacts
from iop.settings import Settings
from iop.worker import smtp_for
from store.db import session_scope
from store.models import ConsentRecord, Disclosure, Participant, Recipient
from tests.conftest import TEST_KEYS
from tests.pdf_pages import look
from tests.ports import free_port
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.scenarios import record_participant
from tests.workflows.test_amendments import POSITIVE, recipients
from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput

LETTERHEAD = "Northside IOP, 1 Main St, Springfield - 555 0100"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler API
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 OK"


def email_recipient(engine, pid: str) -> str:
    rid, cid = f"r-{secrets.token_hex(3)}", f"c-{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        participant = session.get(Participant, pid)
        participant.case_numbers = [{"system": "county-court", "value": "CR-2026-0042"}]
        session.add(participant)
        session.add(
            Recipient(
                id=rid,
                name="county court clerk",
                kind="court",
                delivery="email",
                email="clerk@court.example",
                case_number_system="county-court",
                categories=["screening-results"],
            )
        )
        session.flush()
        consent = consent_from_dict(
            {
                "consent_id": cid,
                "participant_id": pid,
                "recipient_id": rid,
                "recipient_kind": "court",
                "categories": ["screening-results"],
                "purpose": "monitoring",
                "disclosing_program": "Northside IOP",
                "signer": "participant",
                "signed_at": (now - timedelta(days=1)).isoformat(),
                "signature_method": "electronic",
                "effective_from": (now - timedelta(days=1)).isoformat(),
                "expires_at": (now + timedelta(days=90)).isoformat(),
            }
        )
        session.add(
            ConsentRecord(
                id=cid, participant_id=pid, recipient_id=rid, consent=consent_to_dict(consent), created_by="test"
            )
        )
    return rid


def pdf_text(document: bytes) -> str:
    return " ".join(" ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(document)).pages).split())


def test_settings_reach_the_worker():
    smtp = smtp_for(
        Settings(
            smtp_host="127.0.0.1",
            smtp_port=2525,
            smtp_from="reports@iop.example",
            smtp_username="u",
            smtp_password="p",
            smtp_starttls=True,
        )
    )
    assert smtp == SmtpSettings(
        host="127.0.0.1", port=2525, sender="reports@iop.example", username="u", password="p", starttls=True
    )
    assert smtp_for(Settings(smtp_host="")) is None


def test_an_email_report_is_a_readable_message_with_its_pdf_and_delivered_only_when_accepted(records_engine):
    pid = f"p-{secrets.token_hex(4)}"
    record_participant(records_engine, pid)
    rid = email_recipient(records_engine, pid)
    port = free_port()
    activities = DisclosureActivities(
        records_engine,
        TEST_KEYS,
        letterhead=LETTERHEAD,
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="reports@iop.example"),
    )
    [plan] = activities.plan_disclosures(DisclosureEvent(pid, "screening-results", "s-1", ReportFacts(**POSITIVE)))
    request = DisclosureInput(plan.disclosure_id, pid, rid, "screening-results")
    # Nothing listens: the relay never accepted it, so it is not delivered; retried.
    assert activities.attempt_delivery(request).kind == "retry"
    with Session(records_engine) as session:
        assert session.get(Disclosure, plan.disclosure_id).status == "retrying"

    inbox = Inbox()
    relay = Controller(inbox, hostname="127.0.0.1", port=port)
    relay.start()
    try:
        result = activities.attempt_delivery(request)
    finally:
        relay.stop()
    assert result.kind == "delivered" and "accepted" in result.reason
    [(to, raw)] = inbox.messages
    assert to == ["clerk@court.example"]
    message = email.message_from_bytes(raw, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    assert "Case number: CR-2026-0042" in text and "Basis: laboratory-confirmed" in text and "{" not in text
    assert LETTERHEAD in text and "42 CFR part 2" in text
    assert "<table>" in message.get_body(("html",)).get_content()
    [attachment] = list(message.iter_attachments())
    document = attachment.get_content()
    assert attachment.get_content_type() == "application/pdf"
    words = pdf_text(document)
    for expected in (
        LETTERHEAD,
        "CR-2026-0042",
        "laboratory-confirmed",
        "Consent:",
        "Generated at",
        "42 CFR 2.32(a)",
        "prohibit you from using or disclosing this record",
    ):
        assert expected in words, expected
    look(document, "court-report-email")
    with Session(records_engine) as session:
        row = session.get(Disclosure, plan.disclosure_id)
    assert row.status == "delivered" and row.content_hash == content_hash(document)


def test_a_webhook_report_carries_its_pdf_under_the_signature(records_engine):
    with webhook_receiver(receiver=Receiver(url="")) as receiver:
        pid = f"p-{secrets.token_hex(4)}"
        record_participant(records_engine, pid)
        rids = recipients(records_engine, receiver, pid, {"court": ["screening-results"]})
        activities = DisclosureActivities(records_engine, TEST_KEYS, letterhead=LETTERHEAD)
        [plan] = activities.plan_disclosures(DisclosureEvent(pid, "screening-results", "s-1", ReportFacts(**POSITIVE)))
        assert (
            activities.attempt_delivery(
                DisclosureInput(plan.disclosure_id, pid, rids["court"], "screening-results")
            ).kind
            == "delivered"
        )
    payload = receiver.kept[plan.disclosure_id]
    document = base64.b64decode(payload["document"]["content_base64"])
    assert payload["document"]["sha256"] == content_hash(document) and payload["basis"] == "laboratory-confirmed"
    assert payload["forensic"] is True and "laboratory-confirmed" in pdf_text(document)
    with Session(records_engine) as session:
        assert session.get(Disclosure, plan.disclosure_id).content_hash == payload["document"]["sha256"]


def test_completion_letter_and_monthly_summary_render_as_readable_pdfs():
    from activities.report_document import render_pdf
    from domain.report_content import completion_letter, monthly_summary
    from tests.domain.test_consent import CASE, DURING, make_consent

    consent = make_consent(categories=("program-status", "screening-results", "periodic-summary"))
    entries = {"screening-results": [{"outcome": "negative"}, {"outcome": "negative"}], "program-status": []}
    letter = completion_letter(entries, consent, "2026-05-14", CASE, "D-letter", DURING)
    summary = monthly_summary(entries, consent, "2026-04", CASE, "D-summary", DURING)
    letter_pdf, summary_pdf = render_pdf(letter, LETTERHEAD), render_pdf(summary, LETTERHEAD)
    look(letter_pdf, "completion-letter")
    look(summary_pdf, "monthly-summary")
    letter_text, summary_text = pdf_text(letter_pdf), pdf_text(summary_pdf)
    assert " ".join(letter["data"]["text"].split())[:200] in letter_text
    assert "completion" in letter_text.lower() and "DC-2026-0042" in letter_text and LETTERHEAD in letter_text
    assert "Screening results: total: 2; by outcome: negative: 2" in summary_text and "2026-04" in summary_text
    # The letter reads as a letter: its own title, its paragraphs, the 42 CFR 2.32 notice once at the foot.
    assert "Letter of completion" in letter_text and "for this purpose: monitor progress in drug court." in letter_text
    for text in (letter_text, summary_text):
        assert text.count("This record which has been disclosed to you") == 1, text
        assert "None" not in text, text  # a fact not recorded is left out, not printed as Python's None
        assert "42 CFR 2.32(a)" in text and "Generated at: " + DURING in text and consent.consent_id in text


def test_every_report_type_has_a_title_on_paper():
    from domain.report_content import COMPLETED_TYPE, COMPLETION_LETTER_TYPE, REPORT_TITLES, REPORT_TYPES

    assert set(REPORT_TITLES) == {*REPORT_TYPES.values(), COMPLETED_TYPE, COMPLETION_LETTER_TYPE}
