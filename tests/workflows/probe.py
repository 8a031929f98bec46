"""A test-only workflow that reports one event through the same `disclose` path the program's
workflows use (a monthly summary or a lab result without a month of simulated draws)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.disclosure import DisclosureEvent
    from workflows.disclosure import disclose


@workflow.defn(name="DiscloseProbe")
class DiscloseProbe:
    @workflow.run
    async def run(self, event: DisclosureEvent) -> None:
        await disclose(event)
