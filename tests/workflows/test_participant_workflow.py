"""ParticipantWorkflow on real Temporal servers."""

import json
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.client import RPCError, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.records import RecordActivities
from iop.worker import WORKFLOWS, build_worker, workflow_runner
from store.models import Participant
from tests.workflows.scenarios import phase_changes_then_discharge, record_participant, start_participant
from workflows.contracts.participant import Discharge, PhaseChange
from workflows.participant import ParticipantWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def test_worker_accepts_every_workflow_in_the_sandbox(time_env, records_engine, task_queue):
    # Constructing the worker validates each workflow class in the sandbox: an import with side
    # effects in a workflow module fails here.
    async with build_worker(time_env.client, records_engine, task_queue) as worker:
        assert worker.task_queue == task_queue
    assert ParticipantWorkflow in WORKFLOWS


async def test_workflow_without_a_record_gives_up(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        handle = await start_participant(time_env.client, records_engine, task_queue, recorded=False)
        result = await handle.result()
    assert result.status == "enrollment-abandoned"


def test_confirming_enrollment_marks_the_record_active_and_is_idempotent(records_engine):
    activities = RecordActivities(records_engine)
    record_participant(records_engine, "p-confirm")
    env = ActivityEnvironment()
    env.run(activities.confirm_enrollment, "p-confirm")
    env.run(activities.confirm_enrollment, "p-confirm")
    with Session(records_engine) as session:
        assert session.get(Participant, "p-confirm").status == "active"
    with pytest.raises(ApplicationError, match="no enrollment record"):
        env.run(activities.confirm_enrollment, "p-missing")


async def test_updates_refused_with_reasons(dev_client, records_engine, task_queue):
    async with build_worker(dev_client, records_engine, task_queue):
        handle = await start_participant(dev_client, records_engine, task_queue)
        with pytest.raises(WorkflowUpdateFailedError) as unknown:
            await handle.execute_update(ParticipantWorkflow.discharge, Discharge("escaped", "x", "t"))
        assert "unknown discharge kind" in str(unknown.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as same:
            await handle.execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-1", "x", "t"))
        assert "already in phase-1" in str(same.value.cause)
        await handle.execute_update(ParticipantWorkflow.discharge, Discharge("withdrawn", "moved away", "t"))
        result = await handle.result()
        # The program is over: the workflow has closed and takes no more updates.
        with pytest.raises(RPCError, match="already completed"):
            await handle.execute_update(ParticipantWorkflow.change_phase, PhaseChange("phase-2", "x", "t"))
    assert result.status == "withdrawn" and result.discharge_reason == "moved away"


async def test_state_survives_continue_as_new(dev_client, records_engine, task_queue):
    """The dev server suggests continue-as-new after 50 events (see conftest)."""
    async with build_worker(dev_client, records_engine, task_queue):
        handle = await start_participant(dev_client, records_engine, task_queue)
        first_run = (await handle.describe()).run_id
        await phase_changes_then_discharge(handle, changes=16)
        result = await handle.result()
        latest = await dev_client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != first_run
    assert result.runs > 1
    assert len(result.phase_history) == 17
    assert result.status == "completed"


def _replayer() -> Replayer:
    from tests.conftest import TEST_CONVERTER

    return Replayer(
        workflows=WORKFLOWS,
        data_converter=TEST_CONVERTER,
        workflow_runner=workflow_runner(),
    )


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_saved_histories_replay(path):
    """A code change that would break running workflows fails here; guard it with workflow.patched()."""
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    await _replayer().replay_workflow(history)


async def test_screening_states_in_saved_histories_decode_with_their_interpretation():
    """Screening states in the histories carry each result's interpretation as the dict it crossed Temporal as
    before issue 14; they decode to the domain's own dataclasses, and so does an older breath test's result."""
    from domain.interpretation import Interpretation
    from tests.conftest import TEST_CONVERTER
    from workflows.contracts.screening import ScreeningState

    states = []
    for path in sorted(HISTORIES.glob("screening--*.json")):
        for event in WorkflowHistory.from_json(path.stem, json.loads(path.read_text())).events:
            if event.HasField("workflow_execution_update_completed_event_attributes"):
                payloads = event.workflow_execution_update_completed_event_attributes.outcome.success.payloads
            elif event.HasField("workflow_execution_completed_event_attributes"):
                payloads = event.workflow_execution_completed_event_attributes.result.payloads
            else:
                continue
            states += await TEST_CONVERTER.decode(list(payloads), [ScreeningState])
    results = [result for state in states for result in state.results]
    assert results and all(isinstance(r.interpretation, Interpretation) for r in results)
    assert {f.analyte for r in results for f in r.interpretation.findings} >= {"isotonitazene"}
    older = TEST_CONVERTER.payload_converter.to_payloads(
        [
            {
                **json.loads(TEST_CONVERTER.payload_converter.to_payloads([states[-1]])[0].data),
                "breath_result": {
                    "outcome": "positive",
                    "basis": "breath-alcohol-confirmed",
                    "bac": 0.04,
                    "reason": "confirmed 0.040",
                    "device_id": "EBT-7",
                },
                "results": [
                    {
                        **json.loads(TEST_CONVERTER.payload_converter.to_payloads([results[0]])[0].data),
                        "methods": [
                            {
                                "code": "14315-6",
                                "analyte": "benzoylecgonine",
                                "method": "confirm",
                                "basis": "loinc-code",
                                "note": "LOINC 14315-6 is a confirm code",
                            }
                        ],
                    }
                ],
            }
        ]
    )
    [state] = TEST_CONVERTER.payload_converter.from_payloads(older, [ScreeningState])
    assert state.breath_result.device_id == "EBT-7" and state.breath_result.basis == "breath-alcohol-confirmed"
    assert state.results[0].methods[0].note == "LOINC 14315-6 is a confirm code"


def test_there_are_saved_histories():
    assert {p.stem.split("--")[0] for p in HISTORIES.glob("*.json")} >= {
        "participant",
        "screening",
        "medication",
        "disclosure",
    }
