"""Issue 16 on the time-skipping server with a real receiver: what a court is told about a screening rests
on a stated basis, a breath alcohol test has a reported result, and excusing a reported miss withdraws it."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from domain.clock import local_date
from domain.disclosure_ids import disclosure_id
from domain.program import program_from_dict
from domain.webhook_signing import new_webhook_secret
from ingest.lab import LabIngest
from iop.worker import build_worker
from store.db import session_scope
from store.models import Disclosure
from store.programs import save_version
from tests.helpers import refused
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.test_disclosure_delivery import setup_records_for
from tests.workflows.test_program_calendar import ZONE, enroll
from tests.workflows.test_screening_program import _for_cause, _report, skip
from workflows.contracts.disclosure import disclosure_workflow_id
from workflows.contracts.participant import ForCause, Pause
from workflows.contracts.results import AnalyteIn, Review
from workflows.contracts.screening import Admission, Collection, Excuse
from workflows.participant import ParticipantWorkflow
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

SCREEN_ONLY_COCAINE = AnalyteIn("benzoylecgonine", 640.0, units="ng/mL", method="screen")
CONFIRMED_COCAINE = AnalyteIn("benzoylecgonine", 640.0, units="ng/mL", method="confirm")
CATEGORIES = ["screening-results", "missed-tests", "refusals"]


@pytest.fixture
async def program(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        yield time_env, records_engine, task_queue


@pytest.fixture
def court():
    secret = new_webhook_secret(secrets.token_bytes(32))
    with webhook_receiver(receiver=Receiver(url="", secret=secret)) as receiver:
        yield receiver


async def _linked_screening(program, court):
    env, engine, queue = program
    participant, screening, ref = await _for_cause(env, engine, queue)
    pid = (await screening.query(ScreeningWorkflow.status)).participant_id
    _, rid, _ = setup_records_for(engine, pid, court.url, court.secret, CATEGORIES)
    court.recipient_id = rid
    return participant, screening, pid


async def _settled(env, engine, pid: str) -> list[Disclosure]:
    """Every disclosure of the participant, each delivery workflow finished (time skipped as needed)."""
    with Session(engine) as session:
        ids = [
            row.id
            for row in session.exec(
                select(Disclosure).where(Disclosure.participant_id == pid).order_by(col(Disclosure.created_at))
            ).all()
        ]
    for the_id in ids:
        async with env.time_skipping_unlocked():
            await env.client.get_workflow_handle(disclosure_workflow_id(the_id)).result()
    with Session(engine) as session:
        return list(
            session.exec(
                select(Disclosure).where(Disclosure.participant_id == pid).order_by(col(Disclosure.created_at))
            ).all()
        )


def _received(court: Receiver) -> list[dict]:
    import json

    return [json.loads(r["body"]) for r in court.requests if 200 <= r["status"] < 300]


async def test_a_clinicians_confirm_of_a_screen_only_positive_is_never_reported_as_confirmed(program, court):
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    await screening.execute_update(
        ScreeningWorkflow.record_collection, Collection(specimen_type="urine", observed=True, collector="RN-7")
    )
    await screening.execute_update(ScreeningWorkflow.record_result, _report("r1", "F", SCREEN_ONLY_COCAINE))
    final = await screening.execute_update(ScreeningWorkflow.review, Review("confirm", "no prescription", "md-1"))
    assert final.final_outcome == "positive"
    await _settled(env, engine, pid)
    # The program does not report presumptive screens: nothing reaches the court, let alone "confirmed".
    assert [p["data"] for p in _received(court)] == []

    # The lab's confirmation (LC-MS/MS) comes in as a corrected result: now it is reported, confirmed.
    await screening.execute_update(ScreeningWorkflow.record_result, _report("r2", "C", CONFIRMED_COCAINE))
    await screening.execute_update(ScreeningWorkflow.review, Review("confirm", "confirmed by LC-MS/MS", "md-1"))
    rows = await _settled(env, engine, pid)
    [report] = _received(court)
    assert report["data"]["outcome"] == "positive" and report["data"]["confirmed"] is True
    assert report["basis"] == report["data"]["basis"] == "laboratory-confirmed" and report["forensic"] is True
    assert [r.status for r in rows] == ["delivered"]
    await participant.terminate("test over")


async def test_breath_alcohol_0_12_confirmed_is_a_reported_result(program, court):
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    now = await env.get_current_time()
    state = await screening.execute_update(
        ScreeningWorkflow.record_collection,
        Collection(
            specimen_type="breath",
            observed=True,
            collector="RN-7",
            collected_at=now.isoformat(),
            breath_alcohol=0.12,
            breath_confirmation=0.118,
            breath_confirmation_at=(now + timedelta(minutes=16)).isoformat(),
            breath_device_id="EBT-0042",
        ),
    )
    assert state.status == "final" and state.final_outcome == "positive"
    assert state.breath_result.basis == "breath-alcohol-confirmed"
    await _settled(env, engine, pid)
    [report] = _received(court)
    assert report["data"] == {
        "collected_on": now.date().isoformat(),
        "specimen_type": "breath",
        "observed": True,
        "outcome": "positive",
        "breath_alcohol": 0.118,
        "device_id": "EBT-0042",
        "basis": "breath-alcohol-confirmed",
        "confirmed": True,
        "positive_for": ["ethanol"],
    }
    await participant.terminate("test over")


async def test_breath_alcohol_without_the_15_minute_confirmation_is_presumptive(program, court):
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    now = await env.get_current_time()
    state = await screening.execute_update(
        ScreeningWorkflow.record_collection,
        Collection(
            specimen_type="breath",
            observed=True,
            collector="RN-7",
            collected_at=now.isoformat(),
            breath_alcohol=0.12,
            breath_confirmation=0.11,
            breath_confirmation_at=(now + timedelta(minutes=5)).isoformat(),
        ),
    )
    assert state.status == "final" and state.breath_result.basis == "presumptive-screen"
    await _settled(env, engine, pid)
    assert _received(court) == []  # presumptive screens are not reported by this program
    await participant.terminate("test over")


async def test_excusing_a_reported_miss_sends_its_retraction(program, court):
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    await env.sleep(timedelta(hours=9))
    state = await screening.query(ScreeningWorkflow.status)
    assert state.status == "missed"
    # The miss is reported just after it is recorded: wait for it to reach the court.
    expected = disclosure_id(pid, state.screening_id, "missed-tests", court.recipient_id)
    assert await asyncio.to_thread(court.wait_for, expected)
    [miss] = await _settled(env, engine, pid)
    assert miss.status == "delivered"
    await screening.execute_update(ScreeningWorkflow.excuse, Excuse("ER visit, discharge papers seen", "tester"))
    rows = await _settled(env, engine, pid)
    first, retraction = _received(court)
    assert first["type"] == "screening.missed" and first["disclosure_id"] == miss.id
    assert retraction["type"] == "screening.missed.retracted" and retraction["amends"] == miss.id
    assert retraction["data"] == {"retracted": True, "retraction_reason": "excused"}
    assert [r.status for r in rows] == ["delivered", "delivered"]
    await participant.terminate("test over")


async def test_the_programs_breath_alcohol_cutoff_reads_the_test(program, court):
    """A program whose cutoff is 0.04 g/210 L: a confirmed 0.03 is negative there (0.02 is only the default)."""
    env, engine, queue = program
    definition = {
        "program_id": "bac-004",
        "name": "Program with a 0.04 breath cutoff",
        "breath_alcohol_cutoff": 0.04,
        "sites": {
            "north": {
                "timezone": ZONE,
                "hours": {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
                "closed": {},
            }
        },
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 2.5,
                "min_per_rolling_week": 1,
                "max_per_rolling_week": 4,
                "specimen_types": ["urine"],
                "criteria": "first 90 days",
            }
        ],
    }
    with session_scope(engine) as session:
        save_version(session, program_from_dict(definition), "tester", "initial")
    now = await env.get_current_time()
    participant = await enroll(env, engine, queue, "bac-004", local_date(now, ZONE))
    ref = await participant.execute_update(ParticipantWorkflow.order_for_cause, ForCause("smelled of alcohol", "t"))
    screening = env.client.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(ref.screening_id))
    state = await screening.execute_update(
        ScreeningWorkflow.record_collection,
        Collection(
            specimen_type="breath",
            observed=True,
            collector="RN-7",
            collected_at=now.isoformat(),
            breath_alcohol=0.03,
            breath_confirmation=0.03,
            breath_confirmation_at=(now + timedelta(minutes=16)).isoformat(),
            breath_device_id="EBT-0042",
        ),
    )
    assert state.final_outcome == "negative" and state.breath_result.outcome == "negative"
    assert "0.040" in state.breath_result.reason
    await participant.terminate("test over")


async def test_a_correction_31_days_after_final_still_amends_the_courts_report(program, court):
    """The screening's workflow closes 30 days after its final result; a correction after that reopens it, and the
    court that was told the positive is sent the amendment, referencing the original."""
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    await screening.execute_update(
        ScreeningWorkflow.record_collection, Collection(specimen_type="urine", observed=True, collector="RN-7")
    )
    await screening.execute_update(ScreeningWorkflow.record_result, _report("r1", "F", CONFIRMED_COCAINE))
    await screening.execute_update(ScreeningWorkflow.review, Review("confirm", "no prescription", "md-1"))
    [original] = await _settled(env, engine, pid)
    today = local_date(await env.get_current_time(), ZONE)
    await participant.execute_update(
        ParticipantWorkflow.pause,
        Pause(today.isoformat(), (today + timedelta(days=40)).isoformat(), "no random tests in this test", "tester"),
    )
    await skip(env, timedelta(days=31))
    closed = await screening.result()
    assert closed.status == "final" and closed.final_outcome == "positive"
    # The lab corrects its result (HL7 result status C), through the same path every lab result takes.
    await LabIngest(engine, env.client)._deliver(
        _report("r2", "C", AnalyteIn("benzoylecgonine", 10.0, units="ng/mL", method="confirm")), closed.screening_id
    )
    reopened = await screening.query(ScreeningWorkflow.status)
    assert reopened.final_outcome == "negative" and reopened.corrected_after_final and reopened.reopened_at
    rows = await _settled(env, engine, pid)
    first, amendment = _received(court)
    assert first["disclosure_id"] == original.id and first["data"]["outcome"] == "positive"
    assert amendment["amends"] == original.id and amendment["data"]["outcome"] == "negative"
    assert [r.status for r in rows] == ["delivered", "delivered"]
    await participant.terminate("test over")


async def test_an_admission_of_use_is_reported_with_its_basis_and_witness(program, court):
    env, engine, _ = program
    participant, screening, pid = await _linked_screening(program, court)
    with refused("who witnessed"):
        await screening.execute_update(ScreeningWorkflow.record_admission, Admission(["cocaine"], " ", "used Friday"))
    state = await screening.execute_update(
        ScreeningWorkflow.record_admission,
        Admission(["cocaine"], "J. Rivera, CADC", "said they used cocaine on Friday night", "staff-1"),
    )
    assert state.status == "final" and state.final_outcome == "positive" and state.admission.admitted_at
    await _settled(env, engine, pid)
    [report] = _received(court)
    assert report["basis"] == "admitted-use" and report["data"] == {
        "collected_on": state.admission.admitted_at[:10],
        "outcome": "positive",
        "positive_for": ["cocaine"],
        "basis": "admitted-use",
        "confirmed": False,
        "admission_witnessed_by": "J. Rivera, CADC",
    }
    assert "Friday" not in str(report)  # the statement stays in the record
    await participant.terminate("test over")
