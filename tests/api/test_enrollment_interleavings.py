"""Enrollments, crashes, Temporal outages, retries and reconciler passes, interleaved at random
(hypothesis stateful test), with the invariants of issue 12.2 checked after every step."""

import asyncio
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus

from activities.reconciler import ReconcileInput
from api.routers import participants as participants_router
from store.models import IdempotencyRecord, Participant
from tests.conftest import unique
from tests.helpers import enrollment
from workflows.reconciler import ReconcilerWorkflow

FAULTS = [None, "crash-before-start", "crash-after-start", "temporal-down"]


class Crash(BaseException):
    """The process dying: no `except Exception` handler sees it."""


async def test_enrollment_crashes_retries_and_reconciler_interleaved(stack, monkeypatch):
    loop = asyncio.get_running_loop()
    real_start = participants_router._start_program
    fault: list[str | None] = [None]

    async def start_with_faults(services, participant):
        if fault[0] == "crash-before-start":
            raise Crash()
        if fault[0] == "temporal-down":
            raise RuntimeError("Failed client connect: connection refused")
        await real_start(services, participant)
        if fault[0] == "crash-after-start":
            raise Crash()

    monkeypatch.setattr(participants_router, "_start_program", start_with_faults)

    def run(coro):
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    class Enrollments(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.prefix = uuid.uuid4().hex[:8]
            self.answered: dict[str, str] = {}  # key -> the participant id a 201 named
            self.reconciled = False

        def key(self, n: int) -> str:
            return f"{self.prefix}-{n}"

        @rule(n=st.integers(0, 2), injected=st.sampled_from(FAULTS))
        def enroll(self, n, injected):
            fault[0] = injected
            self.reconciled = False
            try:
                response = run(
                    stack.http.post(
                        "/participants",
                        json=enrollment(),
                        headers={**stack.auth("staff"), "Idempotency-Key": self.key(n)},
                    )
                )
            except BaseException:  # noqa: BLE001 - the injected crash: no answer
                assert injected in ("crash-before-start", "crash-after-start")
                return
            finally:
                fault[0] = None
            if injected == "temporal-down" and response.status_code == 503:
                return  # a key whose enrollment is complete is answered without Temporal (201 below)
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "active"
            pid = self.answered.setdefault(self.key(n), response.json()["id"])
            assert response.json()["id"] == pid  # one key, one participant, always

        @rule()
        def reconcile(self):
            run(
                stack.temporal.execute_workflow(
                    ReconcilerWorkflow.run,
                    ReconcileInput(stuck_after_seconds=0),
                    id=unique("reconciler"),
                    task_queue=stack.task_queue,
                )
            )
            self.reconciled = True

        @invariant()
        def one_participant_per_key_and_complete(self):
            with Session(stack.engine) as session:
                keys = session.exec(
                    select(IdempotencyRecord).where(IdempotencyRecord.key.in_([self.key(n) for n in range(3)]))
                ).all()
                rows = {k.key: session.get(Participant, k.resource_id) for k in keys}
            assert len(keys) == len({k.key for k in keys})
            for key, row in rows.items():
                assert row is not None, "an idempotency key points at no record"
                if key in self.answered:
                    assert row.id == self.answered[key]
                assert row.status in ("enrolling", "active")
                if self.reconciled:
                    assert row.status == "active", "the reconciler left a half-done enrollment"
                if row.status == "active":
                    described = run(stack.temporal.get_workflow_handle(f"participant-{row.id}").describe())
                    assert described.status == WorkflowExecutionStatus.RUNNING

    def drive():
        run_state_machine_as_test(
            Enrollments,
            settings=settings(
                max_examples=6, stateful_step_count=8, deadline=None, suppress_health_check=list(HealthCheck)
            ),
        )

    await asyncio.to_thread(drive)
