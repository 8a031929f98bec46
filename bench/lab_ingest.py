"""Lab results end to end: POST /lab/hl7 for existing collected screenings, against raw
Temporal signals to no-op workflows on the same dev server.

    .venv/bin/python -m bench.lab_ingest [--messages 300] [--concurrency 16] [--profile FILE]
                                         [--worker-processes N]

--worker-processes N measures a second time, on a new stack, with the worker in N `iop worker`
processes instead of the bench process (the API, the load generator and the no-op worker stay there).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import uuid

from bench.capacity import namespace_cost
from bench.harness import cpu_seconds, cpu_share, embedded_stack, timed
from bench.noop import NoopWorkflow

DOB = "1980-01-01"


def oru(control: str, specimen: str, participant_id: str) -> str:
    return (
        "\r".join(
            [
                f"MSH|^~\\&|BENCHLAB|BENCH LAB|IOPW|NORTH|20261123101500||ORU^R01^ORU_R01|{control}|P|2.5.1",
                f"PID|1||{participant_id}^^^IOP^PI||Person^Bench||{DOB.replace('-', '')}|F",
                f"OBR|1|{specimen}|B-{control}|PANEL^Panel^L|||20261123090000||||||||||||||||||F",
                "OBX|1|NM|3393-6^Benzoylecgonine^LN||12|ng/mL|<150|N|||F",
                "OBX|2|NM|2161-8^Creatinine^LN||85|mg/dL||||F",
                "OBX|3|NM|2965-2^Specific gravity^LN||1.015|||||F",
                "OBX|4|NM|2756-5^pH^LN||6.2|||||F",
            ]
        )
        + "\r"
    )


async def measure(
    messages: int, concurrency: int, per_participant: int = 20, profile: str | None = None, worker_processes: int = 0
) -> list[str]:
    """One stack, one measurement: the table rows, each against the raw signals measured on the same stack."""
    async with embedded_stack(worker_processes=worker_processes) as stack:
        admin = {"Authorization": f"Bearer {stack.token['admin']}"}
        lab = {"Authorization": f"Bearer {stack.token['lab']}", "Content-Type": "text/plain"}
        specimens: list[tuple[str, str]] = []

        async def participant() -> None:
            body = {"given_name": "Bench", "family_name": "Person", "date_of_birth": DOB, "site": "north"}
            enrolled = await stack.http.post("/participants", json=body, headers=admin)
            assert enrolled.status_code == 201, enrolled.text
            pid = enrolled.json()["id"]
            for _ in range(per_participant):
                ordered = await stack.http.post(
                    f"/participants/{pid}/screenings", json={"reason": "bench"}, headers=admin
                )
                assert ordered.status_code == 201, ordered.text
                sid = ordered.json()["screening_id"]
                collected = await stack.http.post(
                    f"/screenings/{sid}/collection",
                    headers=admin,
                    json={"specimen_type": "urine", "observed": True, "collector": "bench"},
                )
                assert collected.status_code == 200, collected.text
                specimens.append((collected.json()["specimen_id"], pid))

        how = f" [{worker_processes} `iop worker` processes]" if worker_processes else ""
        print(f"setting up {messages} collected screenings{how} ...", flush=True)
        await timed([participant] * -(-messages // per_participant), concurrency=8)

        async def post(specimen: str, pid: str) -> None:
            response = await stack.http.post("/lab/hl7", content=oru(uuid.uuid4().hex[:16], specimen, pid), headers=lab)
            assert "MSA|AA" in response.text, response.text

        jobs = [lambda s=s, p=p: post(s, p) for s, p in specimens[:messages]]
        query = f"TaskQueue='{stack.task_queue}'"
        before = await namespace_cost(stack.client, query)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        cpu = cpu_seconds(stack)
        ours = await timed(jobs, concurrency)
        cores = cpu_share(cpu, cpu_seconds(stack), ours)
        if profiler and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        after = await namespace_cost(stack.client, query)

        # Each no-op workflow waits for exactly the signals it is sent: with a last, partial one when `messages` is
        # not a multiple of per_participant (it waited for signals that never came, and the run hung).
        counts = [min(per_participant, messages - i) for i in range(0, messages, per_participant)]
        noop = [
            await stack.client.start_workflow(
                NoopWorkflow.run, count, id=f"noop-{uuid.uuid4()}", task_queue="bench-noop"
            )
            for count in counts
        ]
        signals = [
            lambda h=h: h.signal(NoopWorkflow.result, "x")
            for h, count in zip(noop, counts, strict=True)
            for _ in range(count)
        ]
        raw = await timed(signals, concurrency)
        await asyncio.gather(*(h.result() for h in noop))

        ours_rate, raw_rate = messages / ours, messages / raw
        rows = [
            f"| HL7 result end to end (store, parse, match, interpret, record){how} | {messages} | {ours:.1f} "
            f"| {ours_rate:.1f} |",
            f"| raw Temporal signal to a no-op workflow{how} | {messages} | {raw:.1f} | {raw_rate:.1f} |",
            f"| HL7 ratio, result end to end vs raw signals (same run){how} | | | {ours_rate / raw_rate:.2f} "
            "(target ≥ 0.5) |",
        ]
        print("\n".join(rows), flush=True)
        print(
            f"per HL7 result (capacity model){how}: {(after.events - before.events) / messages:.1f} history events, "
            f"{(after.transitions - before.transitions) / messages:.1f} state transitions, "
            f"{(after.workflows - before.workflows) / messages:.2f} new workflows",
            flush=True,
        )
        rows.append(f"| cores busy while the results were posted{how} | | | {cores} |")
        print(rows[-1], flush=True)
        return rows


async def main(messages: int, concurrency: int, profile: str | None = None, worker_processes: int = 0) -> None:
    rows = await measure(messages, concurrency, profile=profile)
    if worker_processes:
        rows += await measure(messages, concurrency, worker_processes=worker_processes)
    print(f"\n| measure (concurrency {concurrency}) | messages | seconds | per second |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--profile",
        default=None,
        help="write a cProfile of this process (API, worker, client) while the results are posted",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="measure a second time with the worker in this many `iop worker` processes (`make bench`: one per core, "
        "as IOP_WORKERS defaults to); 0: only the worker in the bench process",
    )
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.concurrency, profile=args.profile, worker_processes=args.worker_processes))
