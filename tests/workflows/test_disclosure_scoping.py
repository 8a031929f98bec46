"""Issue 12.1: a report about one participant must never go out as another's. Two participants, one
recipient, the same kinds of event (discharge, phase change, monthly summary): each report is the
participant's own, and each participant's accounting lists exactly their own reports."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from activities.disclosure import DisclosureActivities
from domain.consent import consent_from_dict, consent_to_dict
from domain.report_facts import ReportFacts
from domain.webhook_signing import new_webhook_secret
from store.db import session_scope
from store.models import AuditEvent, ConsentRecord, Disclosure, utcnow
from tests.conftest import TEST_KEYS
from tests.receiver import webhook_receiver
from tests.workflows.disclosure_world import world
from tests.workflows.scenarios import record_participant
from tests.workflows.test_disclosure_delivery import setup_records_for
from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput
from workflows.contracts.participant import Discharge, PhaseChange
from workflows.participant import ParticipantWorkflow, monthly_summary_event

CATEGORIES = ["program-status", "phase-changes", "periodic-summary"]


def reports(receiver, category: str) -> dict[str, dict]:
    return {wid: p for wid, p in receiver.kept.items() if p["category"] == category}


async def own_accounting(w, pid: str) -> list[dict]:
    items = await w.accounting(pid)
    assert all(d["participant_id"] == pid for d in items)
    for d in items:  # every payload sent for this participant names this participant
        if d["payload"]:
            assert d["payload"]["subject"] == {"case_number": w.case_numbers[pid]}, d["id"]
    return items


async def test_discharge_after_anothers_failed_discharge_is_the_second_participants_own(
    time_env, records_engine, task_queue, tmp_path
):
    async with world(time_env, records_engine, task_queue, tmp_path, receivers=1) as (w, [court]):
        rid = await w.add_recipient(court, "court", CATEGORIES)
        c, b = await w.add_participant("DC-C"), await w.add_participant("DC-B")
        for pid in (c, b):
            await w.grant(pid, rid, CATEGORIES)
        court.script = [(400, {})]  # C's discharge report is refused by the court: failed, surfaced
        await w.participants[c].execute_update(
            ParticipantWorkflow.discharge, Discharge("administrative", "rules", "tester")
        )
        await w.settle()
        await w.participants[b].execute_update(ParticipantWorkflow.discharge, Discharge("withdrawn", "moved", "t"))
        await w.settle()
        [(webhook_id, sent)] = reports(court, "program-status").items()
        assert sent["subject"] == {"case_number": "DC-B"}
        assert sent["data"]["discharge_kind"] == "withdrawn"  # B's facts, not C's
        mine = await own_accounting(w, b)
        assert [(d["category"], d["status"], d["id"]) for d in mine] == [("program-status", "delivered", webhook_id)]
        theirs = await own_accounting(w, c)
        assert [(d["category"], d["status"]) for d in theirs] == [("program-status", "failed")]
        assert theirs[0]["id"] != webhook_id


async def test_first_phase_change_is_sent_though_another_participants_was_blocked(
    time_env, records_engine, task_queue, tmp_path
):
    async with world(time_env, records_engine, task_queue, tmp_path, receivers=1) as (w, [court]):
        rid = await w.add_recipient(court, "court", CATEGORIES)
        a, b = await w.add_participant("DC-A"), await w.add_participant("DC-B")
        await w.grant(b, rid, CATEGORIES)  # A has no consent: A's report is blocked
        await w.participants[a].execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-2", "x", "t"))
        await w.settle()
        await w.participants[b].execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-3", "y", "t"))
        await w.settle()
        [sent] = reports(court, "phase-changes").values()
        assert sent["subject"] == {"case_number": "DC-B"} and sent["data"]["to_phase"] == "phase-3"
        blocked = await own_accounting(w, a)
        assert [(d["status"], d["category"]) for d in blocked] == [("blocked", "phase-changes")]
        assert "consent" in blocked[0]["reason"].lower()
        delivered = await own_accounting(w, b)
        assert [(d["status"], d["category"], d["id"]) for d in delivered] == [
            ("delivered", "phase-changes", sent["disclosure_id"])
        ]


async def test_monthly_summaries_of_two_participants_are_two_reports(time_env, records_engine, task_queue, tmp_path):
    async with world(time_env, records_engine, task_queue, tmp_path, receivers=1) as (w, [court]):
        rid = await w.add_recipient(court, "court", CATEGORIES)
        a, b = await w.add_participant("DC-A"), await w.add_participant("DC-B")
        await w.participants[b].execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-2", "y", "t"))
        for pid in (a, b):
            await w.grant(pid, rid, CATEGORIES)
            state = await w.participants[pid].query(ParticipantWorkflow.status)
            # The event ParticipantWorkflow sends on the first draw of a month, built by the same function.
            await w.probe(monthly_summary_event(state, date(2027, 6, 1)))
        await w.settle()
        summaries = reports(court, "periodic-summary")
        assert sorted(p["subject"]["case_number"] for p in summaries.values()) == ["DC-A", "DC-B"]
        for pid in (a, b):
            [mine] = [d for d in await own_accounting(w, pid) if d["category"] == "periodic-summary"]
            assert mine["status"] == "delivered" and mine["id"] in summaries
        with Session(records_engine) as session:
            rows = session.exec(select(Disclosure).where(Disclosure.category == "periodic-summary")).all()
        assert sorted(r.participant_id for r in rows) == sorted([a, b])


# --- the activities, on rows recorded before ids named their participant --------------------------


def two_participants_one_recipient(engine, receiver, categories):
    """A and B, each with a consent to one webhook recipient (identified to it by participant id)."""
    a, b = f"p-{secrets.token_hex(5)}", f"p-{secrets.token_hex(5)}"
    record_participant(engine, a)
    record_participant(engine, b)
    receiver.secret = new_webhook_secret(secrets.token_bytes(32))
    _, rid, _ = setup_records_for(engine, a, receiver.url, receiver.secret, categories)
    add_consent(engine, b, rid, categories)
    return a, b, rid


def add_consent(engine, pid: str, rid: str, categories: list[str]) -> None:
    now = datetime.now(UTC)
    cid = f"c-{secrets.token_hex(3)}"
    consent = consent_from_dict(
        {
            "consent_id": cid,
            "participant_id": pid,
            "recipient_id": rid,
            "recipient_kind": "court",
            "categories": categories,
            "purpose": "monitoring",
            "disclosing_program": "Northside IOP",
            "signer": "participant",
            "signed_at": (now - timedelta(days=1)).isoformat(),
            "signature_method": "electronic",
            "effective_from": (now - timedelta(days=1)).isoformat(),
            "expires_at": (now + timedelta(days=90)).isoformat(),
        }
    )
    with session_scope(engine) as session:
        session.add(
            ConsentRecord(
                id=cid, participant_id=pid, recipient_id=rid, consent=consent_to_dict(consent), created_by="test"
            )
        )


def old_row(engine, pid: str, rid: str, event_ref: str, category: str, facts: dict, status: str = "pending") -> str:
    """A disclosure recorded by the code before this fix, under its id of then."""
    old_id = f"{event_ref}--{category}--{rid}".replace(".", "_")
    with session_scope(engine) as session:
        session.add(
            Disclosure(
                id=old_id,
                participant_id=pid,
                recipient_id=rid,
                category=category,
                event_ref=event_ref,
                facts=facts,
                status=status,
                delivered_at=utcnow() if status == "delivered" else None,
            )
        )
    return old_id


RESULT = {"collected_on": "2026-11-20", "specimen_type": "urine", "observed": True, "outcome": "negative"}


def test_a_correction_looks_only_at_the_same_participants_deliveries(records_engine):
    with webhook_receiver() as receiver:
        a, b, rid = two_participants_one_recipient(records_engine, receiver, ["screening-results"])
    activities = DisclosureActivities(records_engine, TEST_KEYS)
    delivered = old_row(records_engine, a, rid, "s-shared", "screening-results", RESULT, status="delivered")
    corrected = {**RESULT, "outcome": "invalid"}
    # B was never told about this event: nothing of B's is corrected; B's result goes out as B's own first report
    # (issue 16: a result withheld before, e.g. a presumptive screen, is reported once it is final).
    [first] = activities.plan_disclosures(
        DisclosureEvent(b, "screening-results", "s-shared", ReportFacts(**corrected), True)
    )
    assert first.corrects is None and first.disclosure_id == f"{b}--s-shared--screening-results--{rid}"
    [plan] = activities.plan_disclosures(
        DisclosureEvent(a, "screening-results", "s-shared", ReportFacts(**corrected), True)
    )
    assert plan.corrects == delivered  # A's delivery under the old id is still found
    assert plan.disclosure_id.startswith(f"{a}--s-shared--screening-results--{rid}--correction-")
    with Session(records_engine) as session:
        assert session.get(Disclosure, plan.disclosure_id).participant_id == a


def test_a_delivery_asked_for_one_participant_never_sends_anothers_record(records_engine):
    with webhook_receiver() as receiver:
        a, b, rid = two_participants_one_recipient(records_engine, receiver, ["program-status"])
        facts = {"status": "discharged", "effective_on": "2026-11-30T10:00:00+00:00", "discharge_kind": "withdrawn"}
        shared = old_row(records_engine, a, rid, "program-status", "program-status", facts, status="failed")
        result = DisclosureActivities(records_engine, TEST_KEYS).attempt_delivery(
            DisclosureInput(shared, b, rid, "program-status")
        )
    assert result.kind == "blocked" and "another participant" in result.reason
    assert receiver.requests == []
    with Session(records_engine) as session:
        assert session.get(Disclosure, shared).status == "failed"  # A's record is left as it was
        [entry] = session.exec(select(AuditEvent).where(AuditEvent.subject_id == shared)).all()
    assert (entry.participant_id, entry.outcome) == (b, "blocked")


def test_rows_recorded_under_old_ids_keep_working(records_engine):
    with webhook_receiver() as receiver:
        a, _, rid = two_participants_one_recipient(records_engine, receiver, ["phase-changes"])
        facts = {"from_phase": "phase-1", "to_phase": "phase-2", "effective_on": "2026-11-24"}
        old_id = old_row(records_engine, a, rid, "phase-change-1", "phase-changes", facts)
        activities = DisclosureActivities(records_engine, TEST_KEYS)
        # The same event planned again (a plan re-run across the upgrade) keeps the id it was recorded under.
        [plan] = activities.plan_disclosures(
            DisclosureEvent(a, "phase-changes", "phase-change-1", ReportFacts(**facts))
        )
        assert plan.disclosure_id == old_id
        result = activities.attempt_delivery(DisclosureInput(old_id, a, rid, "phase-changes"))
    assert result.kind == "delivered"
    assert list(receiver.kept) == [old_id] and receiver.kept[old_id]["subject"] == {"recipient_reference": a}
    with Session(records_engine) as session:
        assert len(session.exec(select(Disclosure).where(Disclosure.participant_id == a)).all()) == 1
