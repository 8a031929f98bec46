"""The worker: every workflow and activity of the service on one task queue."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.engine import Engine
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from activities.disclosure import DisclosureActivities
from activities.medication import MedicationActivities
from activities.programs import ProgramActivities
from activities.notify import Notifier, WebhookNotifier
from activities.reconciler import ReconcileInput, ReconcilerActivities
from activities.records import RecordActivities
from activities.screenings import ScreeningActivities
from iop.codec import CodecKey
from iop.settings import Settings
from workflows.audit import AuditCheckpointWorkflow
from workflows.disclosure import DisclosureWorkflow
from workflows.medication import MedicationWorkflow
from workflows.participant import ParticipantWorkflow
from workflows.reconciler import ReconcilerWorkflow
from workflows.screening import ScreeningWorkflow

WORKFLOWS = [ParticipantWorkflow, ScreeningWorkflow, MedicationWorkflow, DisclosureWorkflow, ReconcilerWorkflow,
             AuditCheckpointWorkflow]

# Pure modules shared with the sandbox instead of re-imported for every workflow run.
PASSTHROUGH = ("domain", "workflows.contracts", "workflows.search")


def notifier_for(settings: Settings) -> Notifier | None:
    if settings.notify_webhook_url:
        return WebhookNotifier(settings.notify_webhook_url, settings.notify_webhook_secret,
                               receipt_url=settings.notify_receipt_url)
    return None  # the recording notifier


def activities(engine: Engine, keys: Sequence[CodecKey], notifier: Notifier | None = None) -> list:
    return (RecordActivities(engine).all() + ScreeningActivities(engine, notifier).all()
            + MedicationActivities(engine).all() + DisclosureActivities(engine, keys).all()
            + AuditActivities(engine).all() + ProgramActivities(engine).all())


def build_worker(client: Client, engine: Engine, task_queue: str, *, notifier: Notifier | None = None,
                 max_activity_threads: int = 16) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        # Recipients' signing secrets are sealed with the payload keys the client already holds.
        activities=activities(engine, client.data_converter.payload_codec.keys, notifier)
        + ReconcilerActivities(engine, client, task_queue).all(),
        activity_executor=ThreadPoolExecutor(max_activity_threads, thread_name_prefix="activity"),
        max_concurrent_activities=max_activity_threads,
        # On SIGTERM, activities in flight get this long to finish before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=15),
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
    )


def reconciler_schedule_id(task_queue: str) -> str:
    return f"iop-reconciler--{task_queue}"


async def ensure_reconciler_schedule(client: Client, settings: Settings) -> str:
    """Create the reconciler's schedule, or bring an existing one up to the current settings.
    Idempotent: every worker start calls it. Returns the schedule id."""
    every = timedelta(seconds=settings.reconcile_every_seconds)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcilerWorkflow.run,
            ReconcileInput(stuck_after_seconds=settings.reconcile_stuck_after_seconds,
                           lab_staff_after_seconds=settings.reconcile_lab_staff_after_seconds),
            id=f"reconciler--{settings.task_queue}",
            task_queue=settings.task_queue,
            # A pass nobody picks up (no worker) does not outlive the next few.
            execution_timeout=max(every * 5, timedelta(minutes=10)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    schedule_id = reconciler_schedule_id(settings.task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(schedule_id).update(lambda _: ScheduleUpdate(schedule=schedule))
    return schedule_id
