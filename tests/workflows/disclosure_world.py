"""Several participants and recipients on the time-skipping server: participants' workflows, a
worker that also runs the test-only DiscloseProbe, the API for consents and the accounting, and
real HTTP receivers that can be switched to fail and recover."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from iop.worker import PASSTHROUGH, WORKFLOWS, activities
from store.db import session_scope
from store.models import Disclosure, Participant
from tests.conftest import TEST_KEYS
from tests.helpers import Stack, api_stack
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.probe import DiscloseProbe
from tests.workflows.scenarios import initial_state
from workflows.contracts.disclosure import DisclosureEvent
from workflows.contracts.participant import ParticipantInput
from workflows.participant import ParticipantWorkflow, workflow_id

CASE_SYSTEM = "county-drug-court"
NOW = datetime.now(UTC)
# Far enough ahead that no daily draw runs while a test lets time pass (hours, not months).
FAR_START = date.today() + timedelta(days=120)


class SwitchableReceiver(Receiver):
    """Answers 503 with Retry-After while `failing`; 200 otherwise."""

    failing: bool = False
    retry_after_s: int = 3600

    def answer(self) -> tuple[int, dict[str, str]]:
        if self.failing:
            return 503, {"Retry-After": str(self.retry_after_s)}
        return super().answer()


def probe_worker(client: Client, engine: Engine, task_queue: str) -> Worker:
    """iop.worker.build_worker plus the probe workflow."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[*WORKFLOWS, DiscloseProbe],
        activities=activities(engine, TEST_KEYS),
        activity_executor=ThreadPoolExecutor(8, thread_name_prefix="activity"),
        max_concurrent_activities=8,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )


@dataclass
class World:
    env: object  # the time-skipping WorkflowEnvironment
    stack: Stack
    engine: Engine
    task_queue: str
    receivers: dict[str, SwitchableReceiver] = field(default_factory=dict)  # recipient id -> receiver
    participants: dict[str, WorkflowHandle] = field(default_factory=dict)
    case_numbers: dict[str, str] = field(default_factory=dict)  # participant id -> case number
    starters: list[WorkflowHandle] = field(default_factory=list)  # every workflow that may have disclosed
    settled: set[str] = field(default_factory=set)  # disclosure workflow ids already closed
    # The case-number system linking this world's participants to its recipients (and no others').
    case_system: str = CASE_SYSTEM

    @property
    def client(self) -> Client:
        return self.env.client

    async def add_recipient(self, receiver: SwitchableReceiver, kind: str, categories: list[str]) -> str:
        response = await self.stack.http.post(
            "/recipients",
            headers=self.stack.auth("admin"),
            json={
                "name": f"test {kind}",
                "kind": kind,
                "delivery": "webhook",
                "url": receiver.url,
                "case_number_system": self.case_system,
                "categories": categories,
            },
        )
        assert response.status_code == 201, response.text
        receiver.secret = response.json()["signing_secret"]
        self.receivers[response.json()["id"]] = receiver
        return response.json()["id"]

    async def add_participant(self, case_number: str) -> str:
        pid = f"p-{secrets.token_hex(5)}"
        with session_scope(self.engine) as session:
            session.add(
                Participant(
                    id=pid,
                    given_name="Test",
                    family_name="Person",
                    date_of_birth=date(1980, 1, 1),
                    site="north",
                    program="iop",
                    phase="phase-1",
                    start_date=FAR_START,
                    timezone="America/New_York",
                    case_numbers=[{"system": self.case_system, "value": case_number}],
                    status="enrolling",
                )
            )
        handle = await self.client.start_workflow(
            ParticipantWorkflow.run,
            ParticipantInput(state=initial_state(pid, start=FAR_START)),
            id=workflow_id(pid),
            task_queue=self.task_queue,
        )
        self.participants[pid], self.case_numbers[pid] = handle, case_number
        self.starters.append(handle)
        return pid

    async def grant(self, pid: str, recipient_id: str, categories: list[str]) -> str:
        body = {
            "recipient_id": recipient_id,
            "categories": categories,
            "purpose": "monitor progress in treatment",
            "disclosing_program": "Northside IOP",
            "signer": "the participant",
            "signed_at": (NOW - timedelta(days=2)).isoformat(),
            "signature_method": "electronic",
            "expires_at": (NOW + timedelta(days=365)).isoformat(),
        }
        response = await self.stack.http.post(
            f"/participants/{pid}/consents", json=body, headers=self.stack.auth("staff")
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    async def revoke(self, consent_id: str) -> None:
        response = await self.stack.http.post(
            f"/consents/{consent_id}/revoke", json={"reason": "participant asked"}, headers=self.stack.auth("staff")
        )
        assert response.status_code == 200, response.text

    async def probe(self, event: DisclosureEvent) -> None:
        """Report `event` through workflows.disclosure.disclose, as the program's workflows do."""
        handle = await self.client.start_workflow(
            DiscloseProbe.run, event, id=f"probe-{secrets.token_hex(6)}", task_queue=self.task_queue
        )
        await handle.result()
        self.starters.append(handle)

    async def accounting(self, pid: str) -> list[dict]:
        response = await self.stack.http.get(
            f"/disclosures?participant_id={pid}&limit=200", headers=self.stack.auth("auditor")
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def disclosure_workflows(self) -> list[str]:
        """Every DisclosureWorkflow any participant or probe started (or tried to), from their histories."""
        ids: list[str] = []
        for handle in self.starters:
            async for event in handle.fetch_history_events():
                if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                    child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
                    if child.startswith("disclosure-") and child not in ids:
                        ids.append(child)
        return ids

    async def settle(self, parked: Iterable[str] = ()) -> None:
        """Without sleeping: each delivery in `parked` (a disclosure id whose receiver is failing) has
        made its first attempt - its request reached the receiver, so its consent check is done - and
        waits for its retry (Retry-After keeps that an hour away); every other delivery has finished
        (its result awaited, the server skipping time as needed)."""
        parked = set(parked)
        for wid in await self.disclosure_workflows():
            disclosure = wid.removeprefix("disclosure-")
            if wid in self.settled:
                continue
            if disclosure in parked:
                with Session(self.engine) as session:
                    row = session.get(Disclosure, disclosure)
                receiver = self.receivers[row.recipient_id]
                if row.corrects in parked:
                    # An amendment of a report still retrying waits for it without asking anyone: its
                    # consent check comes when the original has been delivered.
                    continue
                assert await asyncio.to_thread(receiver.wait_for, disclosure), f"{disclosure} never attempted"
                continue
            await self._result(wid)
            self.settled.add(wid)

    async def _result(self, wid: str) -> None:
        # A handle from get_workflow_handle does not unlock the test server's clock by itself. The V1 test
        # server's history long poll can end empty ("No completion event found"): poll again, a few times.
        for attempt in range(3):
            try:
                async with self.env.time_skipping_unlocked():
                    await self.client.get_workflow_handle(wid).result()
                return
            except RuntimeError:
                if attempt == 2:
                    state = await self.client.get_workflow_handle(wid).query("status")
                    raise AssertionError(f"{wid} did not finish: {state}") from None


@contextlib.asynccontextmanager
async def world(time_env, engine: Engine, task_queue: str, tmp_path, receivers: int = 2):
    async with contextlib.AsyncExitStack() as stack:
        started = [stack.enter_context(webhook_receiver(receiver=SwitchableReceiver(url=""))) for _ in range(receivers)]
        await stack.enter_async_context(probe_worker(time_env.client, engine, task_queue))
        api = await stack.enter_async_context(
            api_stack(time_env.client, engine, task_queue, tmp_path, with_worker=False)
        )
        yield World(time_env, api, engine, task_queue), started
