"""DisclosureWorkflow: one report to one recipient, sent only under a covering consent.

Each attempt is one activity that checks the consent at that instant and then sends; failures are
retried on a schedule that spans more than three days; a revoked consent cancels it between
attempts; the webhook id stays the same across attempts, so the recipient keeps one copy.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.disclosure import DisclosureActivities
    from activities.records import RecordActivities
    from domain.delivery_retry import Decision, DeliveryPolicy, retry_delay
    from domain.vocab import DisclosureStatus
    from workflows import search
    from workflows.contracts.alerts import Alert
    from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput, DisclosureState, disclosure_workflow_id
    from workflows.options import ActivityOptions

POLICY = DeliveryPolicy()
# An amendment waiting for the report it amends looks again this often; waiting spends no retry.
AMENDMENT_WAIT = timedelta(minutes=5)
ATTEMPT: ActivityOptions = dict(
    # One POST (15 s timeout) and a few small writes; a worker that died mid-attempt is noticed soon.
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2)),
)
PLAN: ActivityOptions = dict(
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)),
)


@workflow.defn(name="DisclosureWorkflow")
class DisclosureWorkflow:
    def __init__(self) -> None:
        self.state = DisclosureState(disclosure_id="")
        self.cancel_reason: str | None = None

    @workflow.run
    async def run(self, request: DisclosureInput) -> DisclosureState:
        self.state.disclosure_id = request.disclosure_id
        workflow.upsert_search_attributes(
            [search.PARTICIPANT_ID.value_set(request.participant_id), search.STATUS.value_set("pending")]
        )
        retries = 0
        while True:
            if self.cancel_reason:
                return await self._end(request, "cancelled", self.cancel_reason)
            result = await workflow.execute_activity_method(DisclosureActivities.attempt_delivery, request, **ATTEMPT)
            self.state.attempts += 1
            self.state.last_status_code = result.status_code
            self.state.reason = result.reason
            if result.kind == "waiting":
                try:
                    await workflow.wait_condition(lambda: self.cancel_reason is not None, timeout=AMENDMENT_WAIT)
                except TimeoutError:
                    pass
                continue
            if result.kind in (DisclosureStatus.DELIVERED, DisclosureStatus.BLOCKED, DisclosureStatus.CANCELLED):
                self.state.status = result.kind
                workflow.upsert_search_attributes([search.STATUS.value_set(result.kind)])
                return self.state
            if result.kind != "retry":
                await self._alert(request, f"report to {request.recipient_id} not delivered: {result.reason}")
                self.state.status = "failed"
                workflow.upsert_search_attributes([search.STATUS.value_set("failed")])
                return self.state
            delay = retry_delay(POLICY, retries, Decision(result.kind, result.delay_s, result.reason))
            if delay is None:
                reason = f"no delivery after {self.state.attempts} attempts over the whole retry schedule"
                await self._alert(request, reason)
                return await self._end(request, "failed", reason)
            retries += 1
            self.state.status = "retrying"
            try:
                await workflow.wait_condition(lambda: self.cancel_reason is not None, timeout=delay)
            except TimeoutError:
                pass

    @workflow.signal
    def cancel(self, reason: str) -> None:
        """The consent was revoked: stop between attempts (each attempt checks consent anyway)."""
        self.cancel_reason = reason

    @workflow.query
    def status(self) -> DisclosureState:
        return self.state

    async def _end(self, request: DisclosureInput, status: str, reason: str) -> DisclosureState:
        self.state.status, self.state.reason = status, reason
        workflow.upsert_search_attributes([search.STATUS.value_set(status)])
        if status == "cancelled":
            self.state.cancelled_because = reason
        await workflow.execute_activity_method(
            DisclosureActivities.settle_disclosure, args=[request, status, reason], **PLAN
        )
        return self.state

    async def _alert(self, request: DisclosureInput, detail: str) -> None:
        await workflow.execute_activity_method(
            RecordActivities.raise_alert,
            Alert("disclosure-failed", request.participant_id, request.disclosure_id, detail),
            **PLAN,
        )


@workflow.defn(name="DiscloseEventWorkflow")
class DiscloseEventWorkflow:
    """Reports one event decided outside the workflows that usually report (staff made a screening clinical
    after it was reported: its retraction), through the same `disclose` path."""

    @workflow.run
    async def run(self, event: DisclosureEvent) -> None:
        await disclose(event)


async def disclose(event: DisclosureEvent) -> None:
    """From any workflow: start one DisclosureWorkflow per recipient that wants this event."""
    planned = await workflow.execute_local_activity_method(DisclosureActivities.plan_disclosures, event, **PLAN)
    for plan in planned:
        try:
            await workflow.start_child_workflow(
                DisclosureWorkflow.run,
                DisclosureInput(
                    plan.disclosure_id, event.participant_id, plan.recipient_id, plan.category or event.category
                ),
                id=disclosure_workflow_id(plan.disclosure_id),
                # Deliveries go on for days, whatever happens to the workflow that asked for them.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            pass  # planned and started before (an event reported twice changes nothing)
