"""A selection period's life (domain/verifiable.py): commitment, notices, and the reveal once it is over.

SelectionPeriodWorkflow (`selection-period--{task queue}--{program}--{period}`) is started by the period's first
roll (or by an admin opening the period ahead). It makes sure the commitment is published (audited), sends the
commitment notice to every subscribing recipient, sleeps on a durable Temporal timer until two days after the
period's last day (domain.verifiable.reveal_moment), reveals the seed (audited, served at GET
/selection/commitments) and sends the reveal notice. The seed never passes through its history: the activities
read it from the database.

SelectionNoticeWorkflow (`selection-notice--{notice id}`) delivers one notice to one recipient, on the retry
schedule of every report (domain.delivery_retry.DeliveryPolicy); the webhook id stays the same across attempts.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.selection import SelectionActivities
    from domain.delivery_retry import Decision, DeliveryPolicy, retry_delay
    from domain.verifiable import NoticeKind
    from workflows.contracts.delivery import AttemptResult
    from workflows.contracts.selection import (
        NoticePlan,
        RevealRequest,
        SelectionPeriodInput,
        SelectionPeriodState,
        selection_notice_workflow_id,
    )
    from workflows.options import ActivityOptions

POLICY = DeliveryPolicy()
STEP: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)
ATTEMPT: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2)),
)


@workflow.defn(name="SelectionPeriodWorkflow")
class SelectionPeriodWorkflow:
    def __init__(self) -> None:
        self.state = SelectionPeriodState()
        self.deliveries: list[workflow.ChildWorkflowHandle[SelectionNoticeWorkflow, str]] = []

    @workflow.run
    async def run(self, request: SelectionPeriodInput) -> SelectionPeriodState:
        self.state.program, self.state.period = request.program, request.period
        opened = await workflow.execute_activity_method(SelectionActivities.open_selection_period, request, **STEP)
        self.state.commitment, self.state.reveal_at = opened.commitment, opened.reveal_at
        self.state.status = "committed"
        await self._notify(request, NoticeKind.COMMITMENT)
        reveal_at = datetime.fromisoformat(opened.reveal_at)
        while (wait := (reveal_at - workflow.now()).total_seconds()) > 0:
            await asyncio.sleep(wait)  # a durable timer: a month is nothing to Temporal
        await workflow.execute_activity_method(
            SelectionActivities.reveal_selection_period,
            RevealRequest(request.program, request.period, workflow.now().isoformat()),
            **STEP,
        )
        self.state.status = "revealed"
        await self._notify(request, NoticeKind.REVEAL)
        # The period is over once every notice is settled (delivered, or failed after the whole retry schedule).
        for delivery in self.deliveries:
            try:
                await delivery
            except ChildWorkflowError:
                pass  # terminated by an operator: its record says so
        return self.state

    @workflow.query
    def status(self) -> SelectionPeriodState:
        return self.state

    async def _notify(self, request: SelectionPeriodInput, kind: str) -> None:
        planned = await workflow.execute_activity_method(
            SelectionActivities.plan_selection_notices, NoticePlan(request.program, request.period, kind), **STEP
        )
        for notice_id in planned:
            try:
                self.deliveries.append(
                    await workflow.start_child_workflow(
                        SelectionNoticeWorkflow.run,
                        notice_id,
                        id=selection_notice_workflow_id(notice_id),
                        # Deliveries retry for days, whatever happens to the period's workflow meanwhile.
                        parent_close_policy=ParentClosePolicy.ABANDON,
                    )
                )
            except WorkflowAlreadyStartedError:
                pass  # planned and started before
            self.state.notices.append(notice_id)


@workflow.defn(name="SelectionNoticeWorkflow")
class SelectionNoticeWorkflow:
    def __init__(self) -> None:
        self.last: AttemptResult | None = None
        self.attempts = 0

    @workflow.run
    async def run(self, notice_id: str) -> str:
        retries = 0
        while True:
            result = await workflow.execute_activity_method(
                SelectionActivities.attempt_selection_notice, notice_id, **ATTEMPT
            )
            self.attempts += 1
            self.last = result
            if result.kind != "retry":
                return result.kind
            delay = retry_delay(POLICY, retries, Decision(result.kind, result.delay_s, result.reason))
            if delay is None:
                reason = f"no delivery after {self.attempts} attempts over the whole retry schedule"
                await workflow.execute_activity_method(
                    SelectionActivities.settle_selection_notice, args=[notice_id, "failed", reason], **STEP
                )
                return "failed"
            retries += 1
            await asyncio.sleep(delay)

    @workflow.query
    def status(self) -> AttemptResult | None:
        return self.last
