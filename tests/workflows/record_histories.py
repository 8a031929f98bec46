"""Record workflow histories for the replay test: `.venv/bin/python -m tests.workflows.record_histories`.

Run it when a workflow gains a new path worth guarding, and commit the new files next to the old
ones. Never re-record an existing file to make the replay test pass: that hides exactly the break
the test is there to catch (use workflow.patched() instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.clock import local_date
from domain.disclosure_ids import disclosure_id
from domain.medication import MedicationOrder, Schedule
from domain.webhook_signing import new_webhook_secret
from iop.worker import build_worker
from store.db import make_engine
from store.migrate import upgrade
from store.models import Screening
from tests.conftest import TEST_CONVERTER, binary
from tests.receiver import webhook_receiver
from tests.workflows.scenarios import phase_changes_then_discharge, start_participant
from workflows import search
from workflows.contracts.disclosure import disclosure_workflow_id
from workflows.contracts.medication import DispenseRecord, MedicationStart
from workflows.contracts.participant import CheckIn, Discharge, ForCause, Pause, PhaseChange
from workflows.contracts.results import AnalyteIn, LabReport
from workflows.contracts.screening import Collection
from workflows.medication import MedicationWorkflow
from workflows.medication import workflow_id as medication_workflow_id
from workflows.participant import ParticipantWorkflow
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

HISTORIES = Path(__file__).parent / "histories"


@contextlib.asynccontextmanager
async def records() -> AsyncIterator[Engine]:
    """A migrated SQLite records database in a temporary folder, for one recording."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/records.db"
        upgrade(url)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@contextlib.asynccontextmanager
async def temporal(*, time_skipping: bool = False) -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal server with the project's search attributes: the dev server, or the time-skipping one."""
    if time_skipping:
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=TEST_CONVERTER, test_server_existing_path=binary("temporal-test-server")
        )
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default", search_attributes={key.name: key.indexed_value_type for key in search.ALL}
            )
        )
    else:
        env = await WorkflowEnvironment.start_local(
            data_converter=TEST_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.ALL
        )
    try:
        yield env
    finally:
        await env.shutdown()


async def collected_for_cause(env: WorkflowEnvironment, participant: WorkflowHandle, by: str):
    """A for-cause screening ordered for the participant and its observed urine collection recorded."""
    ref = await participant.execute_update(ParticipantWorkflow.order_for_cause, ForCause("odour", by))
    screening = env.client.get_workflow_handle(screening_workflow_id(ref.screening_id))
    await screening.execute_update(
        ScreeningWorkflow.record_collection, Collection(specimen_type="urine", observed=True, collector="RN")
    )
    return ref, screening


def lab_report(specimen_id: str, *analytes, **extra) -> LabReport:
    """The lab's final report on the specimen: these analytes, then the validity checks of a normal urine."""
    return LabReport(
        result_id="lr-1-1",
        lab_id="ACME REFERENCE LAB",
        message_ref="1",
        specimen_id=specimen_id,
        result_status="F",
        received_at="2026-12-01T12:00:00+00:00",
        analytes=[
            *analytes,
            AnalyteIn("creatinine", 85.0, None, "mg/dL"),
            AnalyteIn("specific_gravity", 1.015),
            AnalyteIn("ph", 6.2),
        ],
        **extra,
    )


async def main() -> None:
    async with records() as engine:
        async with temporal() as env, build_worker(env.client, engine, "record-histories"):
            handle = await start_participant(env.client, engine, "record-histories")
            await phase_changes_then_discharge(handle, changes=3)
            await handle.result()
            await save(env, handle.id, "participant--phase-changes-and-discharge")
        await thirty_days(engine)


async def thirty_days(engine) -> None:
    """A month of daily draws with a pause, a phase change, check-ins, a for-cause test."""
    async with temporal(time_skipping=True) as env:
        async with build_worker(env.client, engine, "record-histories-30"):
            today = local_date(await env.get_current_time(), "America/New_York")
            handle = await start_participant(env.client, engine, "record-histories-30", start=today)
            pid = (await handle.query(ParticipantWorkflow.status)).participant_id
            receiver_context = webhook_receiver()
            receiver = receiver_context.__enter__()
            _, recipient_id, _ = add_recipient_and_consent(engine, pid, receiver)
            order_id = await handle.execute_update(
                ParticipantWorkflow.start_medication,
                MedicationStart(order=medication_order(pid, today), rules="federal-otp-2024"),
            )
            medication = env.client.get_workflow_handle(medication_workflow_id(order_id))
            for dosed in (True, False, True):
                if dosed:
                    await medication.execute_update(
                        MedicationWorkflow.dispense,
                        DispenseRecord(kind="observed-dose", actor="RN", dose=60.0, unit="mg"),
                    )
                await skip(env, timedelta(days=1))
            await handle.execute_update(ParticipantWorkflow.check_in, CheckIn("kiosk", "recorder"))
            _, collected = await collected_for_cause(env, handle, "recorder")
            pause_from = today + timedelta(days=5)
            await handle.execute_update(
                ParticipantWorkflow.pause,
                Pause(pause_from.isoformat(), (pause_from + timedelta(days=3)).isoformat(), "hospital", "recorder"),
            )
            await skip(env, timedelta(days=7))
            await handle.execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-2", "progress", "r"))
            await skip(env, timedelta(days=20))
            await handle.execute_update(ParticipantWorkflow.discharge, Discharge("completed", "graduated", "r"))
            await handle.result()
            await save(env, handle.id, "participant--thirty-days")
            await medication.result()
            await save(env, medication.id, "medication--daily-observed-with-misses")
            phase_report = env.client.get_workflow_handle(
                disclosure_workflow_id(disclosure_id(pid, "phase-change-1", "phase-changes", recipient_id))
            )
            await phase_report.result()
            await save(env, phase_report.id, "disclosure--phase-change-delivered")
            receiver_context.__exit__(None, None, None)
            await save(env, collected.id, "screening--for-cause-collected-result-overdue")
            with Session(engine) as session:
                missed = session.exec(select(Screening).where(Screening.status == "missed")).first()
            await save(env, f"screening-{missed.id}", "screening--random-missed")


async def added_analyte_result() -> None:
    """A for-cause screening whose result carries an analyte an administrator added (issue 19:
    interpreted with its definition, behind the "added-analytes-interpreted" patch)."""
    from domain.analytes import AddedAnalyte

    async with records() as engine, temporal() as env:
        async with build_worker(env.client, engine, "record-histories-added"):
            handle = await start_participant(env.client, engine, "record-histories-added")
            ref, screening = await collected_for_cause(env, handle, "recorder")
            report = lab_report(
                ref.screening_id,
                AnalyteIn("isotonitazene", 2.1, None, "ng/mL", None, "confirm", "ISOTZ"),
                added_analytes=[
                    AddedAnalyte("isotonitazene", "Isotonitazene", "nitazenes", initial_cutoff=1.0, confirm_cutoff=0.5)
                ],
            )
            state = await screening.execute_update(ScreeningWorkflow.record_result, report)
            assert state.results[0].interpretation.findings[0].outcome == "confirmed-positive", state
            await save(env, screening.id, "screening--added-analyte-result")
            await handle.terminate("recorded")
            await screening.terminate("recorded")


async def negative_answered_once_saved() -> None:
    """Issue 20's path (patch "result-answered-once-saved"): a negative result is answered once recorded and
    saved; the participant's workflow is told and the report disclosed afterwards, side by side."""
    from temporalio.api.enums.v1 import EventType

    async with records() as engine, temporal() as env:
        with webhook_receiver() as receiver:
            async with build_worker(env.client, engine, "record-histories-negative"):
                handle = await start_participant(env.client, engine, "record-histories-negative")
                pid = (await handle.query(ParticipantWorkflow.status)).participant_id
                receiver.secret = new_webhook_secret(b"r" * 32)
                from tests.workflows.test_disclosure_delivery import setup_records_for

                _, recipient_id, _ = setup_records_for(
                    engine, pid, receiver.url, receiver.secret, ["screening-results"]
                )
                ref, screening = await collected_for_cause(env, handle, "rec")
                report = lab_report(
                    ref.screening_id, AnalyteIn("cocaine", 12.0, None, "ng/mL", 150.0, "screen", "3393-6")
                )
                state = await screening.execute_update(ScreeningWorkflow.record_result, report)
                assert state.final_outcome == "negative", state
                report_id = disclosure_id(pid, ref.screening_id, "screening-results", recipient_id)
                for _ in range(600):  # the announcement runs after the answer: until its child is started
                    history = await screening.fetch_history()
                    kinds = [e.event_type for e in history.events]
                    if (
                        EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED in kinds
                        and kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
                    ):
                        break
                    await asyncio.sleep(0.05)
                await env.client.get_workflow_handle(disclosure_workflow_id(report_id)).result()
                await save(env, screening.id, "screening--negative-answered-once-saved")
                await handle.terminate("recorded")
                await screening.terminate("recorded")


def add_recipient_and_consent(engine, participant_id: str, receiver) -> tuple[str, str, str]:
    from tests.workflows.test_disclosure_delivery import setup_records_for

    receiver.secret = new_webhook_secret(b"r" * 32)
    return setup_records_for(engine, participant_id, receiver.url, receiver.secret, ["phase-changes", "program-status"])


def medication_order(participant_id: str, start) -> MedicationOrder:
    return MedicationOrder(
        order_id=f"m-{participant_id[-6:]}",
        participant_id=participant_id,
        drug="methadone",
        dose=60.0,
        unit="mg",
        route="oral",
        schedule=Schedule("daily-observed"),
        start_date=start.isoformat(),
        prescriber="Dr. Okafor",
    )


async def skip(env: WorkflowEnvironment, span: timedelta) -> None:
    while span > timedelta(0):
        step = min(span, timedelta(days=1))
        await env.sleep(step)
        span -= step


async def save(env: WorkflowEnvironment, workflow_id: str, name: str) -> None:
    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
    path = HISTORIES / f"{name}.json"
    if path.exists():
        raise SystemExit(f"{path} exists: histories are never re-recorded (see this module's docstring)")
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    print(f"saved {path}")


async def program_calendar() -> None:
    """Issue 15's paths: a stored program with a closed weekend and a holiday (patch "program-as-data"), and a
    gateway outage longer than the window (patch "notice-delivery-and-miss-honesty")."""
    from activities.notify import WebhookNotifier
    from tests.receiver import sms_gateway
    from tests.workflows.test_program_calendar import _for_cause_with_gateway, enroll, store_program

    async with records() as engine, temporal(time_skipping=True) as env:
        with sms_gateway() as gateway:
            gateway.down = True
            notifier = WebhookNotifier(gateway.url, "gateway-secret", timeout=5)
            async with build_worker(env.client, engine, "record-histories-15", notifier=notifier):
                today = local_date(await env.get_current_time(), "America/New_York")
                store_program(engine, "weekday-court", {(today + timedelta(days=3)).isoformat(): "holiday"})
                handle = await enroll(env, engine, "record-histories-15", "weekday-court", today)
                await skip(env, timedelta(days=10))
                await handle.execute_update(ParticipantWorkflow.discharge, Discharge("completed", "done", "r"))
                await handle.result()
                await save(env, handle.id, "participant--program-calendar-closed-days")
                participant, screening, _ = await _for_cause_with_gateway(
                    env, engine, "record-histories-15", "+15555550100"
                )
                await skip(env, timedelta(hours=40))
                await screening.result()
                await save(env, screening.id, "screening--gateway-outage-not-notified")
                await participant.terminate("recorded")


async def selection_period() -> None:
    """Issue 21: a selection period's workflow from its commitment to its reveal on its own timer, with a
    subscribing recipient whose first delivery of the commitment notice fails and is retried."""
    from activities.selection import ensure_period_workflow
    from domain import verifiable
    from iop.codec import seal_text
    from store.db import session_scope
    from store.models import Recipient
    from tests.conftest import TEST_KEYS
    from workflows.contracts.selection import selection_notice_workflow_id, selection_period_workflow_id

    async with records() as engine, temporal(time_skipping=True) as env:
        with webhook_receiver() as court:
            court.secret = new_webhook_secret(bytes(range(32)))
            court.script = [(503, {})]
            with session_scope(engine) as session:
                session.add(
                    Recipient(
                        id="r-court",
                        name="court",
                        kind="court",
                        delivery="webhook",
                        url=court.url,
                        secret_sealed=seal_text(TEST_KEYS, court.secret),
                        categories=[],
                        notices=[verifiable.SELECTION_COMMITMENTS],
                    )
                )
            queue = "record-histories-21"
            async with build_worker(env.client, engine, queue):
                period = f"{await env.get_current_time():%Y-%m}"
                await ensure_period_workflow(env.client, queue, "court-a", period)
                handle = env.client.get_workflow_handle(selection_period_workflow_id(queue, "court-a", period))
                now = await env.get_current_time()
                await skip(env, verifiable.reveal_moment(period) + timedelta(hours=1) - now)
                await handle.result()
                await save(env, handle.id, "selection--period-commitment-to-reveal")
                notice = verifiable.notice_id("court-a", period, "commitment", "r-court")
                await save(env, selection_notice_workflow_id(notice), "selection--notice-retried-delivered")


async def colour_mode() -> None:
    """Issue 15's later paths: a colour-mode program (patch "colour-mode") whose phase requires a check-in and
    makes a missed one reportable (patch "missed-check-in-disclosed"), with reminders (patch
    "reminder-before-close") for the screenings of called colours."""
    from domain.program import program_from_dict
    from store.db import session_scope
    from store.models import Participant
    from store.programs import save_version
    from tests.workflows.test_program_calendar import WEEKDAYS, ZONE, enroll

    async with records() as engine, temporal(time_skipping=True) as env:
        async with build_worker(env.client, engine, "record-histories-15c"):
            today = local_date(await env.get_current_time(), ZONE)
            with session_scope(engine) as session:
                save_version(
                    session,
                    program_from_dict(
                        {
                            "program_id": "colour-court",
                            "name": "Colour court",
                            "mode": "colour",
                            "reminder_hours_before_close": 2,
                            "sites": {"north": {"timezone": ZONE, "hours": WEEKDAYS, "closed": {}}},
                            "phases": [
                                {
                                    "name": "phase-1",
                                    "tests_per_week": 1,
                                    "min_per_rolling_week": 0,
                                    "max_per_rolling_week": 3,
                                    "check_in_required": True,
                                    "missed_check_in_reportable": True,
                                }
                            ],
                            "colours": [
                                {
                                    "name": "red",
                                    "tests_per_week": 5,
                                    "min_per_rolling_week": 5,
                                    "max_per_rolling_week": 5,
                                }
                            ],
                        }
                    ),
                    "recorder",
                    None,
                )
            handle = await enroll(env, engine, "record-histories-15c", "colour-court", today)
            participant_id = (await handle.query(ParticipantWorkflow.status)).participant_id
            with session_scope(engine) as session:
                session.get(Participant, participant_id).colour = "red"
            await skip(env, timedelta(days=8))
            await handle.execute_update(ParticipantWorkflow.discharge, Discharge("completed", "done", "r"))
            await handle.result()
            await save(env, handle.id, "participant--colour-mode-missed-check-ins")
            with Session(engine) as session:
                first = session.exec(
                    select(Screening).where(Screening.participant_id == participant_id).order_by(Screening.day)
                ).first()
            screening = env.client.get_workflow_handle(screening_workflow_id(first.id))
            await screening.result()
            await save(env, screening.id, "screening--colour-called-reminded-missed")


if __name__ == "__main__":
    import sys

    # `... record_histories added-analyte` (or `program-calendar`, `colour-mode`) records only that history (the others
    # exist already).
    only = {
        "added-analyte": added_analyte_result,
        "program-calendar": program_calendar,
        "negative-answered-once-saved": negative_answered_once_saved,
        "selection-period": selection_period,
        "colour-mode": colour_mode,
    }
    asyncio.run(only[sys.argv[1]]() if sys.argv[1:2] and sys.argv[1] in only else main())
