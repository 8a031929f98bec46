"""What the service costs Temporal, read from workflow histories: history events and state
transitions per participant-day (the daily selection cycle) and per screening pipeline (enrollment
to a delivered report), the inputs of the README's "Capacity" table.

A workflow's cost to the cluster is its history (events written, kept, replayed) and its state
transitions (the server's unit of persistence work, which Temporal's own throughput and pricing
figures are stated in). Both are counted over every run (continue-as-new) and child workflow.

    .venv/bin/python -m bench.capacity [--participants 20] [--days 30]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client

SECONDS_PER_DAY = 86_400


@dataclass
class Cost:
    workflows: int = 0  # workflow ids (a program, each screening, ...)
    runs: int = 0  # continue-as-new runs included
    events: int = 0
    transitions: int = 0  # 0 where the server does not report them (the time-skipping test server)
    history_bytes: int = 0  # the events as stored (protobuf; payloads encrypted by the codec)
    records_bytes: int = 0  # the records database's growth (PostgreSQL: tables, indexes and TOAST)

    def __iadd__(self, other: Cost) -> Cost:
        self.workflows += other.workflows
        self.runs += other.runs
        self.events += other.events
        self.transitions += other.transitions
        self.history_bytes += other.history_bytes
        self.records_bytes += other.records_bytes
        return self


async def run_cost(
    client: Client, workflow_id: str, run_id: str | None
) -> tuple[Cost, list[tuple[str, str]], str | None]:
    """One run: its events and transitions, the children it started, and the run it continued as."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    history = await handle.fetch_history()
    described = await handle.describe()
    transitions = described.raw_description.workflow_execution_info.state_transition_count
    children, next_run = [], None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
            started = event.child_workflow_execution_started_event_attributes.workflow_execution
            children.append((started.workflow_id, started.run_id))
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            next_run = event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    size = sum(event.ByteSize() for event in history.events)
    return Cost(runs=1, events=len(history.events), transitions=transitions, history_bytes=size), children, next_run


async def tree_cost(client: Client, workflow_id: str, first_run_id: str | None = None) -> Cost:
    """A workflow over all its runs, and every child workflow it started (recursively)."""
    total = Cost(workflows=1)
    run_id: str | None = first_run_id
    seen: set[str] = set()
    while True:
        cost, children, next_run = await run_cost(client, workflow_id, run_id)
        total += cost
        for child_id, child_run in children:
            total += await tree_cost(client, child_id, child_run)
        if not next_run or next_run in seen:
            return total
        seen.add(next_run)
        run_id = next_run


async def namespace_cost(client: Client, query: str) -> Cost:
    """Every workflow run a visibility query lists (the dev server): events and transitions."""
    total = Cost()
    ids: set[str] = set()
    async for execution in client.list_workflows(query):
        ids.add(execution.id)
        described = await client.get_workflow_handle(execution.id, run_id=execution.run_id).describe()
        info = described.raw_description.workflow_execution_info
        total += Cost(runs=1, events=info.history_length, transitions=info.state_transition_count)
    total.workflows = len(ids)
    return total


def records_size(engine) -> int:
    """Bytes the records database holds: PostgreSQL's own accounting of the schema's tables (with
    their indexes and TOAST), or the SQLite file's pages."""
    from sqlalchemy import text

    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            return int(
                connection.execute(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                        "AND c.relkind = 'r'"
                    )
                ).scalar()
            )
        return int(connection.execute(text("PRAGMA page_count")).scalar()) * int(
            connection.execute(text("PRAGMA page_size")).scalar()
        )


async def participant_days(participants: int, days: int, records_url: str | None = None) -> Cost:
    """`participants` enrolled programs run `days` days on the time-skipping server with the service's
    worker (draws, notifications, screenings opened and, nobody collecting, missed); their cost.
    records_url: the records database to use (a fresh, empty one: PostgreSQL for realistic sizes);
    default a temporary SQLite file."""
    from temporalio.testing import WorkflowEnvironment

    from domain.clock import local_date
    from domain.plan import default_plan
    from iop.binaries import server_binary
    from iop.codec import data_converter, new_key
    from iop.simulate import skip_until
    from iop.worker import build_worker
    from store.db import make_engine, session_scope
    from store.migrate import upgrade
    from store.models import Participant
    from workflows import search
    from workflows.contracts.participant import ParticipantInput, ParticipantState
    from workflows.participant import ParticipantWorkflow, workflow_id

    with tempfile.TemporaryDirectory(prefix="iop-capacity-") as tmp:
        url = records_url or f"sqlite:///{Path(tmp) / 'records.db'}"
        upgrade(url)
        engine = make_engine(url)
        empty = records_size(engine)
        env = await WorkflowEnvironment.start_time_skipping(
            data_converter=data_converter([new_key("capacity")]),
            test_server_existing_path=server_binary("temporal-test-server"),
        )
        try:
            await env.client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace="default",
                    search_attributes={
                        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in search.ALL
                    },
                )
            )
            start = local_date(await env.get_current_time(), "America/New_York") + timedelta(days=1)
            ids = [f"p-cap{i:07d}" for i in range(participants)]
            with session_scope(engine) as session:
                for pid in ids:
                    session.add(
                        Participant(
                            id=pid,
                            given_name="Capacity",
                            family_name="Synthetic",
                            date_of_birth=date(1980, 1, 1),
                            site="north",
                            program="iop",
                            phase="phase-1",
                            start_date=start,
                            timezone="America/New_York",
                            status="enrolling",
                        )
                    )
            plan = default_plan("phase-1")
            runs = {}
            async with build_worker(env.client, engine, "capacity"):
                for pid in ids:
                    state = ParticipantState(
                        participant_id=pid,
                        program="iop",
                        site="north",
                        phase="phase-1",
                        start_date=start.isoformat(),
                        timezone="America/New_York",
                        plan=plan,
                    )
                    handle = await env.client.start_workflow(
                        ParticipantWorkflow.run,
                        ParticipantInput(state=state),
                        id=workflow_id(pid),
                        task_queue="capacity",
                    )
                    runs[handle.id] = handle.first_execution_run_id
                target = datetime.combine(start + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
                # A day at a time with a longer deadline than env.sleep's: 30 busy days can outlast it.
                await skip_until(env, target)
                total = Cost()
                for wid, first in runs.items():
                    total += await tree_cost(env.client, wid, first)
            total.records_bytes = records_size(engine) - empty
        finally:
            await env.shutdown()
            engine.dispose()
    return total


def rates(cost: Cost, per: int) -> tuple[float, float]:
    return cost.events / per, cost.transitions / per


async def main(participants: int, days: int, records_url: str | None) -> None:
    cost = await participant_days(participants, days, records_url)
    n = participants * days
    print(
        f"{participants} participants x {days} days: {cost.workflows} workflows, {cost.runs} runs, "
        f"{cost.events} history events; per participant-day: {cost.events / n:.1f} events, "
        f"{cost.history_bytes / n:.0f} history bytes ({cost.history_bytes / max(cost.events, 1):.0f} per event), "
        f"{cost.records_bytes / n:.0f} records bytes"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--records-url",
        default=None,
        help="an empty records database (e.g. a fresh PostgreSQL schema); default temporary SQLite",
    )
    args = parser.parse_args()
    asyncio.run(main(args.participants, args.days, args.records_url))
