"""/healthz latency while a large HL7 message is parsed (issue 13: a 2.5 MB message with 60,000 OBX made
/healthz take 14.7 s when the parse ran on the event loop). The figure lives here, not in a timed test:
tests/api/test_lab_interfaces.py only asserts that /healthz keeps answering.

    .venv/bin/python -m bench.healthz_under_parse [--obx 60000] [--rounds 3]

Each round posts one message to /lab/hl7 (unknown specimen, so it is parsed, stored and quarantined)
and calls /healthz back to back until the post is answered; it prints the latency of those calls
(max, p99, median) next to /healthz on an idle API.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from bench.harness import embedded_stack


def big_oru(control: str, obx: int) -> str:
    """An ORU^R01 of `obx` numeric results for a specimen the system does not know (it is held)."""
    segments = [
        f"MSH|^~\\&|BENCHLAB|BENCH LAB|IOPW|NORTH|20261123101500||ORU^R01^ORU_R01|{control}|P|2.5.1",
        "PID|1||p-bench^^^IOP^PI||Person^Bench||19800101|F",
        f"OBR|1|s-unknown-bench-{control}|B-{control}|PANEL^Panel^L|||20261123090000||||||||||||||||||F",
    ]
    segments += [f"OBX|{i + 1}|NM|L{i}^^L||{i}|ng/mL|||F" for i in range(obx)]  # 60,000 of them: about 2.5 MB
    return "\r".join(segments) + "\r"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


async def main(obx: int, rounds: int) -> None:
    async with embedded_stack() as stack:
        lab = {"Authorization": f"Bearer {stack.token['lab']}", "Content-Type": "text/plain"}
        idle = []
        for _ in range(50):
            started = time.perf_counter()
            assert (await stack.http.get("/healthz")).status_code == 200
            idle.append(time.perf_counter() - started)
        during: list[float] = []
        slow: list[tuple[float, int, float]] = []  # (latency, round, seconds into the post)
        posts: list[float] = []
        size = 0
        for round_ in range(rounds):
            text = big_oru(f"BENCH-BIG-{round_}", obx)
            size = len(text.encode())
            started_post = time.perf_counter()
            posting = asyncio.create_task(stack.http.post("/lab/hl7", content=text.encode(), headers=lab))
            while not posting.done():
                started = time.perf_counter()
                health = await stack.http.get("/healthz")
                during.append(time.perf_counter() - started)
                slow.append((during[-1], round_, started - started_post))
                assert health.status_code == 200, health.text
            answer = await posting
            posts.append(time.perf_counter() - started_post)
            assert answer.status_code == 200 and "MSA|" in answer.text, answer.text[:300]

        def ms(value: float) -> str:
            return f"{value * 1000:.1f}"

        print(
            f"\n/healthz while POST /lab/hl7 parses a {size / 1e6:.2f} MB message of {obx} OBX "
            f"({rounds} round(s), POST answered in {', '.join(f'{p:.1f}' for p in posts)} s)\n"
        )
        print("| /healthz | calls | max ms | p99 ms | median ms |")
        print("|---|---|---|---|---|")
        print(
            f"| idle | {len(idle)} | {ms(max(idle))} | {ms(percentile(idle, 0.99))} | {ms(statistics.median(idle))} |"
        )
        print(
            f"| during the parse | {len(during)} | {ms(max(during))} | {ms(percentile(during, 0.99))} | "
            f"{ms(statistics.median(during))} |"
        )
        worst = sorted(slow, reverse=True)[:5]
        print(
            "\nslowest calls: "
            + ", ".join(f"{ms(w)} ms (round {r + 1}, {at:.1f} s into the post)" for w, r, at in worst)
        )
        print(f"load average when done: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obx", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.obx, args.rounds))
