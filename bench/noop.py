"""A workflow that does nothing but take signals: the baseline our overhead is measured against."""

from temporalio import workflow


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    def __init__(self) -> None:
        self.received = 0

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.received >= expected)
        return self.received

    @workflow.signal
    def result(self, payload: str) -> None:
        self.received += 1
