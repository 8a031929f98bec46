"""Retries, cut-off clients and reused keys, interleaved at random (hypothesis stateful test) on a
real Temporal dev server with a worker: every Idempotency-Key has at most one effect, every answer
for a key is the first one, and a key reused with another body changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlmodel import Session, select

from store.models import IdempotentAnswer
from tests.conftest import TEST_CONVERTER, binary, unique
from tests.helpers import api_stack
from workflows import search
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id


class Loop:
    """One event loop in a thread for the whole machine: the server, the worker and the API live in it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


RUN: dict = {}


class RetriedOrders(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = RUN["stack"]
        self.pid = RUN["loop"].run(self.stack.enroll())["id"]
        self.first_body: dict[str, str] = {}  # key -> the body of its first attempt that reached the API
        self.answer: dict[str, str] = {}  # key -> the screening id it was answered with

    def _post(self, key: str, reason: str):
        return self.stack.http.post(
            f"/participants/{self.pid}/screenings",
            json={"reason": reason},
            headers={**self.stack.auth("staff"), "Idempotency-Key": key},
        )

    @rule(k=st.integers(0, 2), reason=st.sampled_from(["a", "b"]))
    def order(self, k: int, reason: str) -> None:
        key = f"{self.pid}-{k}"
        response = RUN["loop"].run(self._post(key, reason))
        RUN["steps"] = RUN.get("steps", 0) + 1
        if self.first_body.get(key, reason) != reason:
            assert response.status_code == 422 and "different request body" in response.text
            return
        assert response.status_code == 201, response.text
        self.first_body.setdefault(key, reason)
        screening_id = response.json()["screening_id"]
        assert self.answer.setdefault(key, screening_id) == screening_id  # the first answer, again

    @rule(k=st.integers(0, 2), reason=st.sampled_from(["a", "b"]))
    def order_cut_off(self, k: int, reason: str) -> None:
        """The client gives up once the API has taken the request (a timeout, a closed laptop)."""
        key = f"{self.pid}-{k}"
        if self.first_body.get(key, reason) != reason:
            return  # covered by `order`
        RUN["loop"].run(self._cut_off(key, reason))
        RUN["steps"] = RUN.get("steps", 0) + 1
        self.first_body.setdefault(key, reason)

    async def _cut_off(self, key: str, reason: str) -> None:
        request = asyncio.create_task(self._post(key, reason))
        for _ in range(400):
            if request.done() or _claimed(self.stack.engine, key):
                break
            await asyncio.sleep(0.02)  # polling the database, bounded
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request

    @invariant()
    def at_most_one_effect_per_key(self) -> None:
        state = RUN["loop"].run(
            self.stack.temporal.get_workflow_handle(participant_workflow_id(self.pid)).query(ParticipantWorkflow.status)
        )
        assert len(self.answer) <= state.for_cause_count <= len(self.first_body)

    def teardown(self) -> None:
        # Every key retried once more: now each has exactly one effect and its first answer.
        for key, reason in self.first_body.items():
            response = RUN["loop"].run(self._post(key, reason))
            assert response.status_code == 201, response.text
            assert self.answer.setdefault(key, response.json()["screening_id"]) == response.json()["screening_id"]
        state = RUN["loop"].run(
            self.stack.temporal.get_workflow_handle(participant_workflow_id(self.pid)).query(ParticipantWorkflow.status)
        )
        assert state.for_cause_count == len(self.first_body) == len(set(self.answer.values()))


def _claimed(engine, key: str) -> bool:
    with Session(engine) as session:
        return session.exec(select(IdempotentAnswer.id).where(IdempotentAnswer.key == key)).first() is not None


def test_retried_orders_have_one_effect_per_key(records_engine, tmp_path):
    from temporalio.testing import WorkflowEnvironment

    loop = Loop()
    environment = stack_context = None
    try:

        async def start():
            env = await WorkflowEnvironment.start_local(
                data_converter=TEST_CONVERTER, dev_server_existing_path=binary("temporal"), search_attributes=search.ALL
            )
            context = api_stack(env.client, records_engine, unique("tq"), tmp_path)
            return env, context, await context.__aenter__()

        environment, stack_context, RUN["stack"] = loop.run(start())
        RUN["loop"] = loop
        machine = settings(
            max_examples=10, stateful_step_count=8, deadline=None, suppress_health_check=list(HealthCheck)
        )(RetriedOrders)
        machine.TestCase().runTest()
        print(f"retry machine: {RUN.get('steps', 0)} steps over at most 10 examples")
        assert RUN.get("steps", 0) >= 8, "the machine hardly ran: the test proved nothing"
    finally:
        if stack_context is not None:
            loop.run(stack_context.__aexit__(None, None, None))
        if environment is not None:
            loop.run(environment.shutdown())
        loop.close()
        RUN.clear()
