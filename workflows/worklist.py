"""WorklistWorkflow: escalates worklist items nobody resolved in time, on Temporal timers.

One long-running workflow per task queue (started by the worker, iop.worker.ensure_worklist_workflow).
Each pass escalates what is due (activities/worklist.py) and learns when the next escalation is; the
workflow then sleeps until then, but never longer than the shortest first escalation of any kind
(domain.worklist.shortest_first_escalation), so an item opened while it slept is never escalated late.
A `wake` signal starts a pass at once. It continues as new every few hundred passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.worklist import EscalationPass, WorklistActivities
    from domain.worklist import shortest_first_escalation
    from workflows.options import ActivityOptions

PASS: ActivityOptions = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)),
)
PASSES_PER_RUN = 200


@dataclass
class WorklistInput:
    backfill: bool = True  # the first run opens items for sources older than the worklist


def worklist_workflow_id(task_queue: str) -> str:
    return f"worklist--{task_queue}"


@workflow.defn(name="WorklistWorkflow")
class WorklistWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self.passes = 0

    @workflow.signal
    def wake(self) -> None:
        self._woken = True

    @workflow.query
    def pass_count(self) -> int:
        return self.passes

    @workflow.run
    async def run(self, input: WorklistInput) -> None:
        backfill = input.backfill
        cap = shortest_first_escalation()
        while True:
            now = workflow.now()
            self._woken = False
            report = await workflow.execute_activity_method(
                WorklistActivities.escalate_due, EscalationPass(now.isoformat(), backfill), **PASS
            )
            backfill = False
            self.passes += 1
            if self.passes >= PASSES_PER_RUN or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(WorklistInput(backfill=False))
            wake_at = now + cap
            if report.next_at:
                wake_at = min(wake_at, datetime.fromisoformat(report.next_at))
            delay = max((wake_at - workflow.now()).total_seconds(), 1.0)
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=timedelta(seconds=delay))
            except TimeoutError:
                pass
