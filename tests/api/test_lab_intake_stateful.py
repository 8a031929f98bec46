"""Lab intake under interleavings (issue 12.3): several labs, reused control ids, resends with
other line endings, messages claiming another lab's sender, and the workflow service failing.

Runs against the ingest layer on a real records database (SQLite, or PostgreSQL with
IOP_TEST_RECORDS=postgresql). The one thing not real is the hand-off of a result to its
screening workflow: a recorder stands in for it (and fails while "down"), because what is
checked here is intake's own promise; tests/api/test_lab*.py file through real workflows.
After every step:
- every message sent has a stored raw row (its own, or an identical earlier one it replayed);
- every AA corresponds to results filed from a message with the same body;
- no two different bodies share one filed outcome, and nothing is filed twice;
- a reused control id with another body is stored, answered AE and held in quarantine naming
  the message that holds the control id; a message claiming another sender is stored, answered
  AR, held as sender-not-registered, and uses up no control id.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlmodel import Session, select

from domain.hl7 import parse_ack
from domain.lab_intake import SenderBinding, body_digest
from ingest.lab import LabIngest, LabSender, Receipt, TryLater
from store.db import session_scope
from store.models import LabMessage, LabResult, Participant, QuarantineItem, Screening
from tests.api.test_lab import DOB, NEGATIVE, POSITIVE, oru

LABS = ("LAB ONE", "LAB TWO", "LAB THREE")  # MSH-4; every lab's MSH-3 is ACMELAB (see oru)
SCREENINGS = 3
STEPS, EXAMPLES = 16, 40


class RecordingIngest(LabIngest):
    """LabIngest with the screening workflow replaced by a recorder that can be down."""

    def __init__(self, engine) -> None:
        super().__init__(engine, temporal=None)  # type: ignore[arg-type]
        self.down = False
        self.delivered: dict[str, tuple[str, str]] = {}  # result id -> (screening id, message ref)

    async def _deliver(self, report, screening_id: str) -> None:
        if self.down:
            raise TryLater("the result could not be filed right now (UNAVAILABLE); resend this message")
        assert report.result_id not in self.delivered, f"{report.result_id} delivered twice"
        self.delivered[report.result_id] = (screening_id, report.message_ref)


@dataclass
class Sent:
    token_lab: int
    claimed_lab: int
    control: str
    body: str
    screening: int
    receipt: Receipt

    @property
    def sender(self) -> str:
        return f"ACMELAB^{LABS[self.claimed_lab]}"

    @property
    def digest(self) -> str:
        return body_digest(self.body)


def setup_screenings(engine, prefix: str) -> list[tuple[str, str, str]]:
    """(participant id, screening id, specimen id), collected and awaiting a result."""
    made = []
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        for i in range(SCREENINGS):
            pid, sid, specimen = f"p-{prefix}-{i}", f"s-{prefix}-{i}", f"sp-{prefix}-{i}"
            session.add(
                Participant(
                    id=pid,
                    given_name="Marisol",
                    family_name="Quintanilla-Verhoeven",
                    date_of_birth=date.fromisoformat(DOB),
                    site="north",
                    program="iop",
                    phase="phase-1",
                    start_date=now.date(),
                    timezone="America/New_York",
                )
            )
            session.flush()
            session.add(
                Screening(
                    id=sid,
                    participant_id=pid,
                    site="north",
                    day=now.date(),
                    reason="random",
                    status="awaiting-result",
                    selected_at=now,
                    specimen_id=specimen,
                    collected_at=now,
                )
            )
            made.append((pid, sid, specimen))
    return made


def machine_for(engine):
    screenings = setup_screenings(engine, uuid.uuid4().hex[:8])

    class LabIntake(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.ingest = RecordingIngest(engine)
            self.prefix = uuid.uuid4().hex[:8]
            self.sent: list[Sent] = []
            self.holder: dict[tuple[int, str], str] = {}  # (lab, control) -> digest of the first body
            self.settled: dict[tuple[int, str, str], str] = {}  # (lab, control, digest) -> stored ACK

        def teardown(self) -> None:
            self.loop.close()

        # --- actions ----------------------------------------------------------------------

        def _send(
            self, token_lab: int, claimed_lab: int, control: str, screening: int, variant: int, line_end: str
        ) -> None:
            pid, _, specimen = screenings[screening]
            body = oru(
                f"{self.prefix}-{control}", specimen, pid, obx=(NEGATIVE, POSITIVE)[variant], facility=LABS[claimed_lab]
            )
            body = body.replace("\r", line_end)
            self._post(token_lab, claimed_lab, f"{self.prefix}-{control}", body, screening)

        def _post(self, token_lab: int, claimed_lab: int, control: str, body: str, screening: int) -> None:
            sender = LabSender(f"tok-{token_lab}", SenderBinding("ACMELAB", LABS[token_lab]))
            [receipt] = self.loop.run_until_complete(self.ingest.receive_hl7(body, "http", sender))
            sent = Sent(token_lab, claimed_lab, control, body, screening, receipt)
            self._expect(sent)
            self.sent.append(sent)

        def _expect(self, sent: Sent) -> None:
            """The answer the model predicts, checked on the spot."""
            ack = sent.receipt
            assert parse_ack(ack.ack).ack_code == ack.ack_code
            if sent.token_lab != sent.claimed_lab:
                assert ack.ack_code == "AR" and not ack.replayed
                assert LABS[sent.claimed_lab] in parse_ack(ack.ack).error_texts[0]
                return
            key = (sent.claimed_lab, sent.control)
            settled_key = (*key, sent.digest)
            first = self.holder.setdefault(key, sent.digest)
            if settled_key in self.settled:
                assert ack.replayed and ack.ack == self.settled[settled_key]
            elif first != sent.digest:
                assert ack.ack_code == "AE" and "already used" in parse_ack(ack.ack).error_texts[0]
                self.settled[settled_key] = ack.ack
            elif self.ingest.down:
                assert ack.ack_code == "AE" and "resend" in parse_ack(ack.ack).error_texts[0]
            else:
                assert ack.ack_code == "AA", ack.ack
                self.settled[settled_key] = ack.ack

        @rule(
            lab=st.integers(0, len(LABS) - 1),
            control=st.sampled_from("abc"),
            screening=st.integers(0, SCREENINGS - 1),
            variant=st.integers(0, 1),
            line_end=st.sampled_from(["\r", "\n", "\r\n"]),
        )
        def send(self, lab, control, screening, variant, line_end):
            self._send(lab, lab, control, screening, variant, line_end)

        @rule(data=st.data(), line_end=st.sampled_from(["\r", "\n", "\r\n"]))
        def resend_same(self, data, line_end):
            if not self.sent:
                return
            earlier = data.draw(st.sampled_from(self.sent))
            body = "\r".join(earlier.body.replace("\r\n", "\r").replace("\n", "\r").split("\r")).replace("\r", line_end)
            self._post(earlier.token_lab, earlier.claimed_lab, earlier.control, body, earlier.screening)

        @rule(data=st.data(), variant=st.integers(0, 1))
        def resend_different_body(self, data, variant):
            """The same lab and control id as an earlier message, another participant's specimen."""
            if not self.sent:
                return
            earlier = data.draw(st.sampled_from(self.sent))
            other = (earlier.screening + data.draw(st.integers(1, SCREENINGS - 1))) % SCREENINGS
            self._send(earlier.token_lab, earlier.claimed_lab, earlier.control.rsplit("-", 1)[1], other, variant, "\r")

        @rule(
            token_lab=st.integers(0, len(LABS) - 1),
            shift=st.integers(1, len(LABS) - 1),
            control=st.sampled_from("abc"),
            screening=st.integers(0, SCREENINGS - 1),
        )
        def claim_another_sender(self, token_lab, shift, control, screening):
            self._send(token_lab, (token_lab + shift) % len(LABS), control, screening, 0, "\r")

        @rule(down=st.booleans())
        def workflow_service(self, down):
            self.ingest.down = down

        # --- invariants -------------------------------------------------------------------

        def _rows(self, session: Session) -> list[LabMessage]:
            return list(session.exec(select(LabMessage).where(LabMessage.control_id.startswith(self.prefix))))

        @invariant()
        def every_message_is_stored(self):
            with Session(engine) as session:
                rows = self._rows(session)
            for sent in self.sent:
                same = [
                    r
                    for r in rows
                    if (r.sender, r.control_id, r.body_sha256) == (sent.sender, sent.control, sent.digest)
                ]
                assert same, f"no stored row for a message sent as {sent.sender} {sent.control}"
                if sent.receipt.ack_code == "AR":
                    assert any(r.raw == sent.body and r.id == sent.receipt.message_id for r in same)
            refused = [s for s in self.sent if s.receipt.ack_code == "AR"]
            assert len([r for r in rows if r.ack_code == "AR"]) == len(refused)  # each refusal kept on its own

        @invariant()
        def every_aa_is_a_filed_result_of_the_same_body(self):
            with Session(engine) as session:
                for sent in self.sent:
                    if sent.receipt.ack_code != "AA":
                        continue
                    row = session.get(LabMessage, sent.receipt.message_id)
                    assert (row.sender, row.control_id, row.body_sha256) == (sent.sender, sent.control, sent.digest)
                    results = session.exec(select(LabResult).where(LabResult.lab_message_id == row.id)).all()
                    assert results and all(r.state == "filed" for r in results)
                    for result in results:
                        assert self.ingest.delivered[result.id] == (screenings[sent.screening][1], str(row.id))

        @invariant()
        def no_two_bodies_share_a_filed_outcome(self):
            with Session(engine) as session:
                rows = {r.id: r for r in self._rows(session)}
                filed = session.exec(
                    select(LabResult).where(LabResult.lab_message_id.in_(list(rows) or [0]), LabResult.state == "filed")
                ).all()
            by_control: dict[tuple[str, str], set[str]] = {}
            for result in filed:
                row = rows[result.lab_message_id]
                by_control.setdefault((row.sender, row.control_id), set()).add(row.body_sha256)
                assert row.conflicts_with is None and row.ack_code != "AR"
            assert all(len(digests) == 1 for digests in by_control.values()), by_control
            mine = {r for r, (_, ref) in self.ingest.delivered.items() if int(ref) in rows}
            assert mine == {r.id for r in filed}  # everything handed over is recorded as filed, once

        @invariant()
        def conflicts_and_refusals_are_held(self):
            with Session(engine) as session:
                rows = {r.id: r for r in self._rows(session)}
                items = session.exec(
                    select(QuarantineItem).where(QuarantineItem.lab_message_id.in_(list(rows) or [0]))
                ).all()
            for row in rows.values():
                held = [i for i in items if i.lab_message_id == row.id]
                if row.conflicts_with is not None and row.ack is not None:
                    holder = rows[row.conflicts_with]
                    assert (holder.sender, holder.control_id) == (row.sender, row.control_id)
                    assert holder.body_sha256 != row.body_sha256 and holder.claim_key and not row.claim_key
                    assert row.ack_code == "AE" and held
                    assert all(
                        i.reason_code == "conflicting-control-id" and f"lab message {holder.id}" in i.reason
                        for i in held
                    )
                if row.ack_code == "AR":
                    assert row.claim_key is None and row.replay_key is None
                    assert [i.reason_code for i in held] == ["sender-not-registered"]
            claims = [(r.sender, r.control_id) for r in rows.values() if r.claim_key]
            assert len(claims) == len(set(claims))  # one holder per sender and control id

    return LabIntake


def test_lab_intake_keeps_every_message_and_files_each_body_once(records_engine):
    run_state_machine_as_test(
        machine_for(records_engine),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
