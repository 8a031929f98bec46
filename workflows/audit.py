"""AuditCheckpointWorkflow: one signed checkpoint of the audit chain's head, started by the Temporal
schedule "audit-checkpoint" at a fixed interval (iop/audit.py ensure_checkpoint_schedule)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.audit import CheckpointTaken


@workflow.defn(name="AuditCheckpointWorkflow")
class AuditCheckpointWorkflow:
    @workflow.run
    async def run(self) -> CheckpointTaken:
        taken: CheckpointTaken = await workflow.execute_activity(
            "audit_checkpoint",
            result_type=CheckpointTaken,
            # A database read, a file append and at most one POST (15 s timeout).
            start_to_close_timeout=timedelta(seconds=60),
            # Give up before the next scheduled run would start anyway.
            schedule_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1)),
        )
        return taken
