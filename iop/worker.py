"""The worker: every workflow and activity of the service on one task queue."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from types import CodeType

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
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker, WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance as _SandboxInstance

from activities.audit import AuditActivities
from activities.colours import ColourActivities
from activities.disclosure import DisclosureActivities, SmtpSettings
from activities.medication import MedicationActivities
from activities.notify import Notifier, WebhookNotifier
from activities.programs import ProgramActivities
from activities.reconciler import ReconcileInput, ReconcilerActivities
from activities.records import RecordActivities
from activities.screenings import ScreeningActivities
from activities.selection import SelectionActivities
from activities.worklist import Pager, WorklistActivities
from iop import takehome_rules
from iop.codec import CodecKey, encryption_codec
from iop.settings import Settings
from workflows.audit import AuditCheckpointWorkflow
from workflows.disclosure import DiscloseEventWorkflow, DisclosureWorkflow
from workflows.medication import MedicationWorkflow
from workflows.participant import ParticipantWorkflow
from workflows.reconciler import ReconcilerWorkflow
from workflows.screening import ScreeningWorkflow
from workflows.selection import SelectionNoticeWorkflow, SelectionPeriodWorkflow
from workflows.worklist import WorklistInput, WorklistWorkflow, worklist_workflow_id

WORKFLOWS = [
    ParticipantWorkflow,
    ScreeningWorkflow,
    MedicationWorkflow,
    DisclosureWorkflow,
    ReconcilerWorkflow,
    AuditCheckpointWorkflow,
    WorklistWorkflow,
    DiscloseEventWorkflow,
    SelectionPeriodWorkflow,
    SelectionNoticeWorkflow,
]

# Modules shared with the sandbox instead of re-imported for every workflow run: the pure rules and
# vocabularies (domain, the contracts, the search attributes), and the activity classes (with the
# store they import) that workflow code names but never runs. Only the workflow definitions
# themselves (WORKFLOWS' modules and the workflow modules they import) are re-imported per run, which
# is the sandbox's point; tests/workflows/test_sandbox_passthrough.py holds that to be all.
PASSTHROUGH = ("domain", "workflows.contracts", "workflows.search", "activities", "store")


# Workflow tasks one worker process runs at once (see build_worker).
WORKFLOW_TASK_SLOTS = 4


@functools.lru_cache(maxsize=128)
def _compiled(code: str) -> CodeType:
    return compile(code, "<string>", "exec")  # the name exec() gives a string


class _CompiledOnceInstance(_SandboxInstance):
    """The SDK's sandboxed instance, except that the few fixed code strings it exec()s to cross into
    the sandbox (per activation, and twice per payload for its serialization contexts) are compiled
    once per process instead of on every call: a tenth of the worker's CPU in issue 20's profile."""

    def _run_code(self, code: str, **extra_globals) -> None:  # type: ignore[override]  # same call, typed loosely
        super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]  # exec takes code too


@dataclass(frozen=True)
class CompiledOnceSandboxRunner(SandboxedWorkflowRunner):
    """SandboxedWorkflowRunner with _CompiledOnceInstance; the same restrictions and isolation."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _CompiledOnceInstance(det, self.runner_class, self.restrictions)


def workflow_runner(*passthrough: str) -> SandboxedWorkflowRunner:
    """The sandbox of the worker, the replay tests and `iop simulate`: PASSTHROUGH (and `passthrough`)
    shared with it. Falls back to the SDK's own runner if its internals ever change shape."""
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH, *passthrough)
    if callable(getattr(_SandboxInstance, "_run_code", None)):
        return CompiledOnceSandboxRunner(restrictions=restrictions)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def notifier_for(settings: Settings) -> Notifier | None:
    if settings.notify_webhook_url:
        return WebhookNotifier(
            settings.notify_webhook_url, settings.notify_webhook_secret, receipt_url=settings.notify_receipt_url
        )
    return None  # the recording notifier


def pager_for(settings: Settings) -> Pager | None:
    if settings.worklist_page_url and settings.worklist_page_secret:
        return Pager(settings.worklist_page_url, settings.worklist_page_secret)
    return None  # no paging: the worklist page shows escalated items


def smtp_for(settings: Settings) -> SmtpSettings | None:
    """The mail relay from IOP_SMTP_*; None when no host is set (email reports then wait, never "delivered")."""
    if not settings.smtp_host:
        return None
    return SmtpSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )


def activities(
    engine: Engine,
    keys: Sequence[CodecKey],
    notifier: Notifier | None = None,
    pager: Pager | None = None,
    smtp: SmtpSettings | None = None,
    letterhead: str = "Intensive outpatient program",
) -> list:
    return (
        RecordActivities(engine).all()
        + ScreeningActivities(engine, notifier).all()
        + MedicationActivities(engine).all()
        + DisclosureActivities(engine, keys, smtp=smtp, letterhead=letterhead).all()
        + AuditActivities(engine).all()
        + WorklistActivities(engine, pager).all()
        + ProgramActivities(engine).all()
        + SelectionActivities(engine, keys, smtp=smtp).all()
        + ColourActivities(engine, keys).all()
    )


def build_worker(
    client: Client,
    engine: Engine,
    task_queue: str,
    *,
    notifier: Notifier | None = None,
    pager: Pager | None = None,
    max_activity_threads: int = 16,
    smtp: SmtpSettings | None = None,
    letterhead: str = "Intensive outpatient program",
) -> Worker:
    takehome_rules.install()  # validated at start: a malformed rule file stops the worker here
    codec = encryption_codec(client.data_converter)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        # Recipients' signing secrets are sealed with the payload keys the client already holds.
        activities=activities(engine, codec.keys, notifier, pager, smtp, letterhead)
        + ReconcilerActivities(engine, client, task_queue).all(),
        activity_executor=ThreadPoolExecutor(max_activity_threads, thread_name_prefix="activity"),
        max_concurrent_activities=max_activity_threads,
        # Workflow tasks are CPU-bound Python under one GIL: running more at once only makes each slower.
        # Every task a worker has taken but not finished when it dies times out (10 s, longer from the
        # 4th attempt) and counts as a failed attempt; from the 3rd, Temporal refuses updates to that
        # workflow ("Workflow Task in failed state"). With the SDK's 100 slots a busy worker held up to
        # 18 tasks at once under tests/faults' load and a SIGKILL lost up to 14; with a few slots the
        # rest stay queued (not started: no attempt lost) and a crash costs at most WORKFLOW_TASK_SLOTS.
        max_concurrent_workflow_tasks=WORKFLOW_TASK_SLOTS,
        max_concurrent_workflow_task_polls=WORKFLOW_TASK_SLOTS,
        # On SIGTERM, activities in flight get this long to finish before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=15),
        # A worker that dies leaves the workflows it had cached on its own (sticky) queue; their next
        # task waits this long for it before any other worker may take it. The default, 10 s, is most
        # of an update's wait (see tests/faults): 3 s is ample for a live worker to poll again.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=3),
        workflow_runner=workflow_runner(),
    )


async def ensure_worklist_workflow(client: Client, task_queue: str) -> str:
    """Start the worklist's escalation workflow unless it runs already (every worker start calls it)."""
    workflow_id = worklist_workflow_id(task_queue)
    try:
        await client.start_workflow(WorklistWorkflow.run, WorklistInput(), id=workflow_id, task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        pass
    return workflow_id


def reconciler_schedule_id(task_queue: str) -> str:
    return f"iop-reconciler--{task_queue}"


async def ensure_reconciler_schedule(client: Client, settings: Settings) -> str:
    """Create the reconciler's schedule, or bring an existing one up to the current settings.
    Idempotent: every worker start calls it. Returns the schedule id."""
    every = timedelta(seconds=settings.reconcile_every_seconds)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcilerWorkflow.run,
            ReconcileInput(
                stuck_after_seconds=settings.reconcile_stuck_after_seconds,
                lab_staff_after_seconds=settings.reconcile_lab_staff_after_seconds,
            ),
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
