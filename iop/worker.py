"""The worker: every workflow and activity of the service on one task queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.records import RecordActivities
from workflows.participant import ParticipantWorkflow

WORKFLOWS = [ParticipantWorkflow]

# Pure modules shared with the sandbox instead of re-imported for every workflow run.
PASSTHROUGH = ("domain", "workflows.contracts", "workflows.search")


def activities(engine: Engine) -> list:
    return RecordActivities(engine).all()


def build_worker(client: Client, engine: Engine, task_queue: str, *, max_activity_threads: int = 16) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=activities(engine),
        activity_executor=ThreadPoolExecutor(max_activity_threads, thread_name_prefix="activity"),
        max_concurrent_activities=max_activity_threads,
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )
