"""Baselines: workflows that do nothing but the Temporal work our own workflows also do."""

from datetime import timedelta

from temporalio import activity, workflow


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    """Takes signals (the raw-signal baseline) or returns at once (the raw-start baseline)."""

    def __init__(self) -> None:
        self.received = 0

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.received >= expected)
        return self.received

    @workflow.signal
    def result(self, payload: str) -> None:
        self.received += 1


class NoopActivities:
    @activity.defn(name="bench_noop")
    async def noop(self, argument: str) -> str:
        return argument

    def all(self) -> list:
        return [self.noop]


@workflow.defn(name="BenchNoopPipelineWorkflow")
class NoopPipelineWorkflow:
    """The same number of activities and local activities as one screening pipeline, doing nothing."""

    @workflow.run
    async def run(self, activities: int, local_activities: int) -> int:
        for _ in range(activities):
            await workflow.execute_activity("bench_noop", "x", start_to_close_timeout=timedelta(seconds=30))
        for _ in range(local_activities):
            await workflow.execute_local_activity("bench_noop", "x", start_to_close_timeout=timedelta(seconds=30))
        return activities + local_activities
