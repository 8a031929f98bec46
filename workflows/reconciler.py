"""ReconcilerWorkflow: one pass over what a crash can leave half done.

Run by a Temporal schedule (iop.worker.ensure_reconciler_schedule, created when the worker
starts), so nothing depends on a client retrying: enrollment records still `enrolling` and raw lab
messages still `received` after a bounded time are finished (the program workflow started under
its deterministic id; the message processed through the lab intake path), rolled back (a record
that cannot start a program) or put before staff (a message that still cannot be processed).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reconciler import (
        LabRetry,
        ReconcileInput,
        ReconcilerActivities,
        ReconcileReport,
        StuckQuery,
    )
    from workflows.options import ActivityOptions

FIND: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=60),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5),
)
# One item's repair; a failing item is left for the next pass, not allowed to stop the others.
REPAIR: ActivityOptions = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
)


@workflow.defn(name="ReconcilerWorkflow")
class ReconcilerWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileReport:
        now = workflow.now()
        stuck = await workflow.execute_activity_method(
            ReconcilerActivities.find_stuck,
            StuckQuery(before=(now - timedelta(seconds=input.stuck_after_seconds)).isoformat(), limit=input.limit),
            **FIND,
        )
        report = ReconcileReport()
        for participant_id in stuck.participants:
            try:
                report.enrollments[participant_id] = await workflow.execute_activity_method(
                    ReconcilerActivities.finish_enrollment, participant_id, **REPAIR
                )
            except ActivityError:
                report.enrollments[participant_id] = "failed-retry-next-pass"
        staff_before = (now - timedelta(seconds=input.lab_staff_after_seconds)).isoformat()
        for message_id in stuck.lab_messages:
            try:
                report.lab_messages[str(message_id)] = await workflow.execute_activity_method(
                    ReconcilerActivities.reprocess_lab_message, LabRetry(message_id, staff_before), **REPAIR
                )
            except ActivityError:
                report.lab_messages[str(message_id)] = "failed-retry-next-pass"
        return report
