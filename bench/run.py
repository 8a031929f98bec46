"""`make bench`: the four figures of the service, printed as one table.

(a) enrollment through the API per second, against raw Temporal starts of a no-op workflow
(b) full screening pipelines per second (for-cause selection, collection, HL7 result, final,
    disclosure delivered to a local receiver), against a no-op workflow with as many activities
(c) with N enrolled participants and their open workflows: worker RSS, API p50/p99 latency of
    GET /participants/{id} and GET /screenings?date=today, the dev server still healthy
(d) `iop simulate --workflows` over 90 days on the time-skipping server: wall time (200
    participants by default: 1,000 takes hours on two cores, see the README figures)
(e) the capacity model's inputs (bench/capacity.py): history events and state transitions per
    screening pipeline (from (b)'s workflows) and per participant-day (programs run 30 days on
    the time-skipping server), turned into the README's "Capacity" table
(f) `iop simulate` on the rules (iop/rulesim.py, in memory): 1,000 participants x 90 days and
    10,000 x 365, wall time against the targets of 10 s and 60 s

Every ratio is against its baseline measured in the same run, on the same embedded stack. The HL7
row (result end to end against raw signals) is bench/lab_ingest.py's; `make bench` runs both.

    .venv/bin/python -m bench.run [--enrollments 300] [--pipelines 50] [--participants 1000]
                                  [--simulate-participants 200] [--simulate-days 90]
                                  [--capacity-participants 20] [--capacity-days 30] [--only a,b,c,e,f]
                                  [--worker-processes N] [--api-processes N]

By default the worker and the API run in the bench process, beside the load generator and the
baselines' no-op worker. --worker-processes N measures (b) a second time with the worker in N
`iop worker` processes (what `iop dev` runs with IOP_WORKERS=N), --api-processes N measures (a) a
second time with the API as `iop api` with IOP_API_WORKERS=N; each against its own baseline, measured
on that same stack (the no-op worker stays in the bench process).

(d) is left out unless asked for (`--only a,b,c,d,e,f`): it takes about 20 minutes on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import col

from bench.capacity import namespace_cost, participant_days
from bench.harness import cpu_seconds, cpu_share, embedded_stack, rss_mib, timed
from bench.lab_ingest import oru
from bench.noop import NoopPipelineWorkflow, NoopWorkflow
from domain.clock import local_date
from domain.disclosure_ids import disclosure_id
from domain.plan import default_plan
from store.db import session_scope
from store.models import Participant
from tests.helpers import result_once_started
from tests.receiver import webhook_receiver
from workflows.contracts.disclosure import disclosure_workflow_id
from workflows.contracts.participant import ParticipantInput, ParticipantState
from workflows.participant import ParticipantWorkflow, workflow_id

PERSON: dict[str, Any] = {
    "given_name": "Bench",
    "family_name": "Person",
    "date_of_birth": "1980-01-01",
    "site": "north",
    "case_numbers": [{"system": "bench-court", "value": "B-1"}],
}
PIPELINE_ACTIVITIES, PIPELINE_LOCAL_ACTIVITIES = 3, 6  # confirm, notify, deliver; open, 4 saves, plan
ROWS: list[tuple[str, str, str]] = []
# State transitions per history event, measured on the dev server in (b): the time-skipping server of
# (e) reports no transitions, so (e) estimates them with this ratio.
MEASURED: dict[str, float] = {}


def row(measure: str, figure: str, target: str = "") -> None:
    ROWS.append((measure, figure, target))
    print(f"  {measure}: {figure} {target}", flush=True)


def processes(worker_processes: int = 0, api_processes: int = 0) -> str:
    """How a measurement's stack runs, for its rows' labels; empty for the default (all in the bench process)."""
    parts = []
    if worker_processes:
        parts.append(f"{worker_processes} `iop worker` process{'es' if worker_processes > 1 else ''}")
    if api_processes:
        parts.append(f"`iop api` with IOP_API_WORKERS={api_processes}")
    return f" [{', '.join(parts)}]" if parts else ""


async def enrollment(n: int, concurrency: int, worker_processes: int = 0, api_processes: int = 0) -> None:
    async with embedded_stack(worker_processes=worker_processes, api_processes=api_processes) as stack:
        admin = {"Authorization": f"Bearer {stack.token['admin']}"}

        async def enroll() -> None:
            response = await stack.http.post("/participants", json=PERSON, headers=admin)
            assert response.status_code == 201, response.text

        before = cpu_seconds(stack)
        wall = await timed([enroll] * n, concurrency)
        cores = cpu_share(before, cpu_seconds(stack), wall)
        ours = n / wall

        async def start() -> None:
            await stack.client.start_workflow(NoopWorkflow.run, 0, id=f"noop-{uuid.uuid4()}", task_queue="bench-noop")

        raw = n / await timed([start] * n, concurrency)
    how = processes(worker_processes, api_processes)
    row(f"(a) enrollments per second through the API{how}", f"{ours:.1f}/s")
    row(f"(a) raw Temporal starts of a no-op workflow{how}", f"{raw:.1f}/s")
    row(f"(a) ratio, enrollment vs raw no-op starts (same run){how}", f"{ours / raw:.2f}", "(target ≥ 0.9)")
    row(f"(a) cores busy during the enrollments{how}", cores)


async def pipelines(n: int, concurrency: int, worker_processes: int = 0, api_processes: int = 0) -> None:
    with webhook_receiver() as court:
        async with embedded_stack(worker_processes=worker_processes, api_processes=api_processes) as stack:
            admin = {"Authorization": f"Bearer {stack.token['admin']}"}
            lab = {"Authorization": f"Bearer {stack.token['lab']}", "Content-Type": "text/plain"}
            recipient = (
                await stack.http.post(
                    "/recipients",
                    headers=admin,
                    json={
                        "name": "bench court",
                        "kind": "court",
                        "delivery": "webhook",
                        "url": court.url,
                        "case_number_system": "bench-court",
                        "categories": ["screening-results"],
                    },
                )
            ).json()
            court.secret = recipient["signing_secret"]

            steps: dict[str, list[float]] = {}

            def lap(step: str, since: float) -> float:
                now = time.perf_counter()
                steps.setdefault(step, []).append((now - since) * 1000)
                return now

            async def pipeline() -> None:
                mark = time.perf_counter()
                pid = (await stack.http.post("/participants", json=PERSON, headers=admin)).json()["id"]
                mark = lap("enroll", mark)
                await stack.http.post(
                    f"/participants/{pid}/consents",
                    headers=admin,
                    json={
                        "recipient_id": recipient["id"],
                        "categories": ["screening-results"],
                        "purpose": "bench",
                        "disclosing_program": "bench",
                        "signer": "participant",
                        "signature_method": "electronic",
                        "signed_at": datetime.now(UTC).isoformat(),
                        "expires_at": datetime(2030, 1, 1, tzinfo=UTC).isoformat(),
                    },
                )
                mark = lap("consent", mark)
                sid = (
                    await stack.http.post(f"/participants/{pid}/screenings", json={"reason": "bench"}, headers=admin)
                ).json()["screening_id"]
                mark = lap("for-cause selection", mark)
                specimen = (
                    await stack.http.post(
                        f"/screenings/{sid}/collection",
                        headers=admin,
                        json={"specimen_type": "urine", "observed": True, "collector": "bench"},
                    )
                ).json()["specimen_id"]
                mark = lap("collection", mark)
                ack = await stack.http.post("/lab/hl7", content=oru(uuid.uuid4().hex[:12], specimen, pid), headers=lab)
                assert "MSA|AA" in ack.text, ack.text
                mark = lap("HL7 result to final", mark)
                disclosure = disclosure_workflow_id(disclosure_id(pid, sid, "screening-results", recipient["id"]))
                result = await result_once_started(stack.client, disclosure, timeout=120, every=0.02)
                assert result["status"] == "delivered", result
                lap("disclosure delivered", mark)

            before = cpu_seconds(stack)
            wall = await timed([pipeline] * n, concurrency)
            cores = cpu_share(before, cpu_seconds(stack), wall)
            ours = n / wall
            assert len(court.kept) == n
            breakdown = ", ".join(f"{step} {statistics.mean(ms):.0f}" for step, ms in steps.items())

            async def noop() -> None:
                await stack.client.execute_workflow(
                    NoopPipelineWorkflow.run,
                    args=[PIPELINE_ACTIVITIES, PIPELINE_LOCAL_ACTIVITIES],
                    id=f"noop-{uuid.uuid4()}",
                    task_queue="bench-noop",
                )

            cost = await namespace_cost(stack.client, f"TaskQueue='{stack.task_queue}'")
            raw = n / await timed([noop] * n, concurrency)
    how = processes(worker_processes, api_processes)
    row(f"(b) screening pipelines per second, enrollment to delivered report{how}", f"{ours:.2f}/s")
    row(
        f"(b) no-op workflows with {PIPELINE_ACTIVITIES} activities + {PIPELINE_LOCAL_ACTIVITIES} local{how}",
        f"{raw:.2f}/s",
    )
    row(
        f"(b) ratio, screening pipeline vs no-op with the same activities (same run){how}",
        f"{ours / raw:.2f}",
        "(target ≥ 0.7)",
    )
    row(f"(b) where a pipeline's time goes (mean ms per step under load){how}", breakdown)
    row(f"(b) cores busy during the pipelines{how}", cores)
    if how:
        return  # the capacity model's inputs are the default run's; the processes do not change a history
    MEASURED["transitions per event"] = cost.transitions / cost.events
    row(
        "(e) per screening pipeline (enrollment to delivered report): workflows, history events, state transitions",
        f"{cost.workflows / n:.1f} / {cost.events / n:.0f} / {cost.transitions / n:.0f}",
    )


async def at_scale(participants: int) -> None:
    async with embedded_stack(worker_processes=1) as stack:
        today = local_date(datetime.now(UTC), "America/New_York")
        ids = [f"p-{i:010x}" for i in range(participants)]
        with session_scope(stack.engine) as session:
            for pid in ids:
                session.add(
                    Participant(
                        id=pid,
                        **{k: v for k, v in PERSON.items() if k != "date_of_birth"},
                        date_of_birth=date(1980, 1, 1),
                        program="iop",
                        phase="phase-1",
                        start_date=today,
                        timezone="America/New_York",
                        status="enrolling",
                    )
                )
        plan = default_plan("phase-1")

        async def start(pid: str) -> None:
            state = ParticipantState(
                participant_id=pid,
                program="iop",
                site="north",
                phase="phase-1",
                start_date=today.isoformat(),
                timezone="America/New_York",
                plan=plan,
            )
            await stack.client.start_workflow(
                ParticipantWorkflow.run, ParticipantInput(state=state), id=workflow_id(pid), task_queue=stack.task_queue
            )

        started = time.perf_counter()
        await timed([functools.partial(start, pid) for pid in ids], 16)
        row(f"(c) {participants} participant workflows started", f"{time.perf_counter() - started:.0f} s")
        # Every workflow has run its first task (enrollment confirmed): then the fleet is idle, waiting on timers.
        while True:
            with session_scope(stack.engine) as session:
                pending = session.query(Participant).filter(col(Participant.status) == "enrolling").count()
            if pending == 0:
                break
            await asyncio.sleep(1)
        auditor = {"Authorization": f"Bearer {stack.token['staff']}"}
        sample = random.Random(7).sample(ids, 300)

        async def latencies(paths: list[str]) -> list[float]:
            out = []
            for path in paths:
                begun = time.perf_counter()
                response = await stack.http.get(path, headers=auditor)
                out.append((time.perf_counter() - begun) * 1000)
                assert response.status_code == 200, response.text
            return out

        one = await latencies([f"/participants/{pid}" for pid in sample])
        today_list = await latencies([f"/screenings?date={today.isoformat()}"] * 200)
        healthy = await stack.client.service_client.check_health()
        worker_rss = rss_mib(stack.worker_pid)
    for name, values in (("GET /participants/{id}", one), ("GET /screenings?date=today", today_list)):
        values.sort()
        p50, p99 = statistics.median(values), values[int(len(values) * 0.99) - 1]
        row(
            f"(c) {name} at {participants} participants, p50 / p99",
            f"{p50:.1f} / {p99:.1f} ms",
            "(target p99 < 50 ms)" if name == "GET /participants/{id}" else "(target p99 < 100 ms)",
        )
    row(f"(c) worker RSS with {participants} open workflows", f"{worker_rss:.0f} MiB", "(target < 1024 MiB)")
    row("(c) dev server healthy afterwards", "yes" if healthy else "NO")


async def simulation(participants: int, days: int) -> None:
    from iop.simulate import run_simulation

    started = time.perf_counter()
    await run_simulation(participants=participants, days=days, no_show_rate=0.1, phase="phase-1", seed=1)
    row(
        f"(d) iop simulate --workflows --participants {participants} --days {days}",
        f"{time.perf_counter() - started:.0f} s",
        "(target < 600 s)",
    )


def rules_simulation() -> None:
    from iop.rulesim import Assumptions, run_rules

    for participants, days, target in ((1_000, 90, 10), (10_000, 365, 60)):
        started = time.perf_counter()
        report = run_rules(participants, days, seed=1, assumptions=Assumptions(no_show_rate=0.1))
        wall = time.perf_counter() - started
        per = wall / (participants * days) * 1e6
        row(
            f"(f) iop simulate (rules) --participants {participants:,} --days {days}",
            f"{wall:.1f} s ({per:.1f} us per participant-day, {report.processes} process(es))",
            f"(target < {target} s)",
        )


async def capacity(participants: int, days: int, records_url: str | None) -> None:
    cost = await participant_days(participants, days, records_url)
    per_day = cost.events / (participants * days)
    ratio = MEASURED.get("transitions per event")
    transitions = f"{per_day * ratio:.1f} (at (b)'s {ratio:.2f} transitions per event)" if ratio else "run with b"
    row(
        f"(e) per participant-day ({participants} programs x {days} days, nobody collecting): history events",
        f"{per_day:.1f}",
    )
    row("(e) per participant-day: state transitions", transitions)
    row("(e) per participant-day: workflows started", f"{cost.workflows / (participants * days):.2f}")
    row(
        "(e) per participant-day: history bytes (protobuf, encrypted payloads) / records database bytes",
        f"{cost.history_bytes / (participants * days):.0f} / {cost.records_bytes / (participants * days):.0f}"
        + ("" if records_url else " (SQLite; --capacity-records-url for PostgreSQL)"),
    )


async def main(args) -> None:
    only = set(args.only.split(","))
    print(f"machine: {os.cpu_count()} cores; figures follow as they are measured", flush=True)
    if "a" in only:
        await enrollment(args.enrollments, 16)
        if args.api_processes:
            await enrollment(args.enrollments, 16, api_processes=args.api_processes)
    if "b" in only:
        await pipelines(args.pipelines, 10)
        if args.worker_processes:
            await pipelines(args.pipelines, 10, worker_processes=args.worker_processes)
    if "c" in only:
        await at_scale(args.participants)
    if "d" in only:
        await simulation(args.simulate_participants, args.simulate_days)
    if "e" in only:
        await capacity(args.capacity_participants, args.capacity_days, args.capacity_records_url)
    if "f" in only:
        rules_simulation()
    print("\n| measure | figure | target |\n|---|---|---|")
    for measure, figure, target in ROWS:
        print(f"| {measure} | {figure} | {target} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrollments", type=int, default=300)
    parser.add_argument("--pipelines", type=int, default=50)
    parser.add_argument(
        "--participants",
        type=int,
        default=1_000,
        help="(c): open participant workflows; the issue's figure is at 10,000 (~9 min to start)",
    )
    parser.add_argument("--simulate-participants", type=int, default=200)
    parser.add_argument("--simulate-days", type=int, default=90)
    parser.add_argument("--capacity-participants", type=int, default=20)
    parser.add_argument("--capacity-days", type=int, default=30)
    parser.add_argument("--capacity-records-url", default=None, help="an empty PostgreSQL schema for (e)'s sizes")
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="also measure (b) with the worker in this many `iop worker` processes (`make bench`: one per core, "
        "as IOP_WORKERS defaults to); 0: only the worker in the bench process",
    )
    parser.add_argument(
        "--api-processes",
        type=int,
        default=0,
        help="also measure (a) with the API as `iop api` with IOP_API_WORKERS set to this (`make bench`: 2); "
        "0: only the API in the bench process",
    )
    parser.add_argument("--only", default="a,b,c,e,f", help="(d), the real-workflow simulation, takes ~20 min: add it")
    asyncio.run(main(parser.parse_args()))
