"""The worker's overhead as the SDK has it (type hints re-parsed for every payload, the sandbox's
code strings compiled on every call) against ours (iop/typehints.py's cache, iop/worker.py's
compile-once sandbox runner), measured in one run:

    (1) decoding typical payloads (a participant's state, a day's draw record, a screening's input):
        microseconds per payload, and typing.get_type_hints evaluations per payload;
    (2) `iop simulate` on the time-skipping server: wall time per participant-day, and
        get_type_hints evaluations per participant-day.

    .venv/bin/python -m bench.profile_worker [--participants 10] [--days 14] [--decodes 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from domain.plan import default_plan
from iop import typehints
from iop.codec import data_converter, new_key
from workflows.contracts.participant import DrawRecord, ParticipantInput, ParticipantState
from workflows.contracts.screening import ScreeningInput

MODES = ("sdk", "cached")


def _mode(mode: str, evaluations: Counter) -> None:
    """sdk: the converter's own get_type_hints and the SDK's sandbox runner; cached: ours. Both
    count real get_type_hints evaluations."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from iop import worker

    if mode == "sdk":
        worker.workflow_runner = lambda *extra: SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*worker.PASSTHROUGH, *extra)
        )
    else:
        worker.workflow_runner = _runner
    uncached = typehints.typing.get_type_hints

    def counting(obj, *args):
        evaluations["n"] += 1
        return uncached(obj, *args)

    typehints.uninstall()
    typehints._uncached = counting
    if mode == "sdk":
        typehints.install = lambda: typehints._payload_converter.__setattr__("get_type_hints", counting)
    else:
        typehints.install = _install
    typehints.install()


_install = typehints.install
_runner = __import__("iop.worker", fromlist=["workflow_runner"]).workflow_runner


def samples() -> list[tuple[object, type]]:
    state = ParticipantState(
        participant_id="p-0000000001",
        program="iop",
        site="north",
        phase="phase-1",
        start_date="2026-01-05",
        timezone="America/New_York",
        plan=default_plan("phase-1"),
    )
    draw = DrawRecord(
        participant_id="p-0000000001",
        day="2026-01-06",
        phase="phase-1",
        weekday=1,
        probability=0.25,
        roll=0.4,
        time_roll=0.2,
        selected=False,
        reason="below-probability",
        detail="",
    )
    screening = ScreeningInput(
        screening_id="s-0000000001-20260106",
        participant_id="p-0000000001",
        site="north",
        day="2026-01-06",
        reason="random",
        selected_at="2026-01-06T11:00:00+00:00",
        window_hours=6,
        timezone="America/New_York",
    )
    return [(ParticipantInput(state=state), ParticipantInput), (draw, DrawRecord), (screening, ScreeningInput)]


def decoding(decodes: int) -> dict[str, tuple[float, float]]:
    out = {}
    for mode in MODES:
        evaluations: Counter = Counter()
        _mode(mode, evaluations)
        converter = data_converter([new_key("bench")]).payload_converter
        encoded = [(converter.to_payloads([value]), kind) for value, kind in samples()]
        for payloads, kind in encoded:  # warm
            converter.from_payloads(payloads, [kind])
        evaluations.clear()
        started = time.perf_counter()
        for _ in range(decodes):
            for payloads, kind in encoded:
                converter.from_payloads(payloads, [kind])
        n = decodes * len(encoded)
        out[mode] = ((time.perf_counter() - started) / n * 1e6, evaluations["n"] / n)
    return out


async def simulation(participants: int, days: int) -> dict[str, tuple[float, float]]:
    from iop.simulate import run_simulation

    out = {}
    for mode in MODES:
        evaluations: Counter = Counter()
        _mode(mode, evaluations)
        report = await run_simulation(participants, days, no_show_rate=0.1, phase="phase-1", seed=1)
        skipping = sum(seconds for stage, seconds in report.timing.items() if stage != "setup")
        out[mode] = (skipping / (participants * days) * 1000, evaluations["n"] / (participants * days))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--decodes", type=int, default=3000)
    args = parser.parse_args()
    print("| measure | SDK | ours (cached hints, compiled once) | ratio |\n|---|---|---|---|")
    decoded = decoding(args.decodes)
    (sdk_us, sdk_n), (ours_us, ours_n) = decoded["sdk"], decoded["cached"]
    print(f"| decode one payload (3 typical contracts), µs | {sdk_us:.1f} | {ours_us:.1f} | {ours_us / sdk_us:.2f} |")
    print(f"| get_type_hints evaluations per payload | {sdk_n:.1f} | {ours_n:.3f} | |", flush=True)
    simulated = asyncio.run(simulation(args.participants, args.days))
    (sdk_ms, sdk_n), (ours_ms, ours_n) = simulated["sdk"], simulated["cached"]
    label = f"`iop simulate` {args.participants} x {args.days}"
    print(f"| {label}: ms per participant-day (after setup) | {sdk_ms:.1f} | {ours_ms:.1f} | {ours_ms / sdk_ms:.2f} |")
    print(f"| {label}: get_type_hints evaluations per participant-day | {sdk_n:.0f} | {ours_n:.2f} | |")


if __name__ == "__main__":
    main()
