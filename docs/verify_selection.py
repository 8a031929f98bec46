#!/usr/bin/env python3
"""Check a clinic's random drug-test selection for one program period, with nothing but Python 3.9+.

Usage:
    python3 verify_selection.py EXPORT.json [--seed HEX] [--commitment HEX] [--beacon TEXT]

EXPORT.json comes from `iop selection verify --program P --period YYYY-MM --export EXPORT.json`. Give the
seed, the commitment and the beacon as you obtained them yourself (GET /selection/commitments, or the notices
sent at the start and after the end of the period; --beacon '' when the period has none): then the export's
own copies are checked against them too, and the draws are recomputed with yours.

What is checked, for every draw in the export:
  1. SHA-256(seed | "|" | program | "|" | period) equals the commitment published before the period began;
  2. each roll is HMAC-SHA256(seed, program|participant|date|purpose|beacon), top 53 bits over 2**53,
     with purpose "select" for the outcome and "minute" for the time of day;
  3. the outcome (selected or not, and why) follows from the roll, the recorded plan and the participant's
     recent selections: paused, clinic closed, ceiling, floor, then roll < tests_per_week / open weekdays;
  4. the draw minute follows from the minute roll and the clinic's hours;
  5. a beacon, if any, is the drand quicknet round first produced 5 minutes after the commitment was published
     (so nobody could have chosen it); read that round at https://api.drand.sh/<chain hash>/public/<round> and
     compare its "randomness" with the one in the beacon.
and, for a program in colour mode ("colour_days": everyone of a called colour tests that day), for every colour
of every open day at each site:
  6. the colour's roll is the roll of 2. with "colour:<site>:<colour>" in place of the participant, purpose
     "select", and its outcome follows as in 3. from the colour's recorded plan and recent calls;
  7. the colours called that day are exactly those whose draw selected them, and each colour's recorded calls
     in the 6 days before are the calls the export shows on the days of the period.
Staff-ordered (for-cause) tests are not random and are listed apart ("for_cause"); they are only counted.

Exit status 0 when everything agrees, 1 with one line per mismatch otherwise. No project imports: this file
repeats domain/verifiable.py and domain/selection.py of iop-workflows so anyone can read all of it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
from datetime import UTC, date, datetime, timedelta

WINDOW_DAYS = 7
# drand quicknet (League of Entropy): round r is produced at GENESIS + (r - 1) * PERIOD seconds.
DRAND_CHAIN_HASH = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
DRAND_GENESIS, DRAND_PERIOD = 1692803367, 3
BEACON_DELAY = timedelta(minutes=5)


def commitment(seed: bytes, program: str, period: str) -> str:
    return hashlib.sha256(seed + b"|" + program.encode() + b"|" + period.encode()).hexdigest()


def roll(seed: bytes, program: str, participant: str, day: str, purpose: str, beacon: str | None) -> float:
    message = "|".join((program, participant, day, purpose, beacon or "")).encode()
    mac = hmac.new(seed, message, hashlib.sha256).digest()
    return (int.from_bytes(mac[:8], "big") >> 11) / float(1 << 53)


def beacon_round(published_at: str) -> int:
    """The only round that may be the beacon: the first produced at or after published_at + 5 minutes."""
    moment = datetime.fromisoformat(published_at)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    genesis = datetime.fromtimestamp(DRAND_GENESIS, UTC)
    after = (moment + BEACON_DELAY - genesis) // timedelta(microseconds=1)
    return max(1, -(-after // (DRAND_PERIOD * 1_000_000)) + 1)


def beacon_problem(beacon: str, published_at: str) -> str | None:
    parts = beacon.split(":")
    if len(parts) != 4 or parts[:2] != ["drand", "quicknet"] or not parts[2].isdigit() or len(parts[3]) != 64:
        return f"beacon: {beacon!r} is not drand:quicknet:<round>:<64 hex digits>"
    expected = beacon_round(published_at)
    if int(parts[2]) != expected:
        return (
            f"beacon: round {parts[2]} is not the round the commitment named ({expected}, the first produced "
            f"5 minutes after {published_at}): it could have been chosen"
        )
    return None


def collects(plan: dict, day: date) -> bool:
    return day.weekday() in plan["collection_weekdays"] and day.isoformat() not in plan["closed_dates"]


def hours(plan: dict, weekday: int) -> tuple[str, str]:
    for entry in plan.get("weekday_hours", ()):
        if entry[0] == weekday:
            return entry[1], entry[2]
    return plan["opens_at"], plan["closes_at"]


def minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


def outcome(
    plan: dict, day: date, r: float, selected_days: list[date], paused: bool, history_start: date
) -> tuple[bool, str, float]:
    """(selected, reason, probability applied): the rules of domain/selection.py draw_day, in its order."""
    recent = {d for d in selected_days if day - timedelta(days=WINDOW_DAYS - 1) <= d < day}
    if paused:
        return False, "paused", 0.0
    if not collects(plan, day):
        return False, "clinic-closed", 0.0
    if len(recent) + 1 > plan["max_per_rolling_week"]:
        return False, "ceiling-reached", 0.0
    floor = plan["min_per_rolling_week"]
    if floor:
        open_ahead, count = [], 0
        for offset in range(WINDOW_DAYS):
            count += collects(plan, day + timedelta(days=offset))
            open_ahead.append(count)
        for back in range(WINDOW_DAYS - 1, -1, -1):
            start = day - timedelta(days=back)
            if start < history_start:
                continue
            so_far = sum(1 for d in recent if d >= start)
            if floor - so_far >= open_ahead[WINDOW_DAYS - 1 - back]:
                return True, "floor-required", 1.0
    p = min(1.0, float(plan["tests_per_week"]) / len(plan["collection_weekdays"]))
    return (True, "selected", p) if r < p else (False, "not-selected", p)


def draw_minute(plan: dict, day: date, r: float, paused: bool) -> str:
    if paused or not collects(plan, day):
        return plan["opens_at"]
    opens_at, closes_at = hours(plan, day.weekday())
    opens, latest = minutes(opens_at), minutes(closes_at) - round(float(plan["collection_window_hours"]) * 60)
    minute = opens + int(r * max(0, latest - opens))
    return f"{minute // 60:02d}:{minute % 60:02d}"


def check(
    export: dict, seed_hex: str | None = None, commitment_hex: str | None = None, beacon_text: str | None = None
) -> list[str]:
    problems = []
    program, period, beacon = export["program"], export["period"], export.get("beacon")
    if beacon_text is not None:
        if beacon_text != (beacon or ""):
            problems.append(f"beacon: the export says {beacon!r}, the published one is {beacon_text!r}")
        beacon = beacon_text or None
    if beacon is not None:
        problem = beacon_problem(beacon, export["published_at"])
        if problem:
            problems.append(problem)
    if commitment_hex and commitment_hex != export["commitment"]:
        problems.append(f"commitment: the export says {export['commitment']}, the published one is {commitment_hex}")
    if seed_hex and export.get("seed") and seed_hex != export["seed"]:
        problems.append("seed: the export's seed is not the revealed one")
    try:
        seed = bytes.fromhex(seed_hex or export["seed"] or "")
    except ValueError:
        return problems + ["seed: not hex"]
    if len(seed) != 32:
        return problems + ["seed: not a revealed 32-byte seed"]
    if commitment(seed, program, period) != (commitment_hex or export["commitment"]):
        problems.append("commitment: SHA-256 of the seed, program and period is not the published commitment")
    for d in export["draws"]:
        where, inputs = f"{d['participant_id']} {d['day']}", d["inputs"]
        day = date.fromisoformat(d["day"])
        if day.strftime("%Y-%m") != period:
            problems.append(f"{where}: outside the period {period}")
            continue
        r = roll(seed, program, d["participant_id"], d["day"], "select", beacon)
        m = roll(seed, program, d["participant_id"], d["day"], "minute", beacon)
        selected, reason, p = outcome(
            inputs["plan"],
            day,
            r,
            [date.fromisoformat(x) for x in inputs["recent_selections"]],
            inputs["paused"],
            date.fromisoformat(inputs["history_start"]),
        )
        expected = {
            "roll": r,
            "time_roll": m,
            "selected": selected,
            "reason": reason,
            "probability": p,
            "draw_minute": draw_minute(inputs["plan"], day, m, inputs["paused"]),
        }
        for key, value in expected.items():
            if d.get(key) != value:
                problems.append(f"{where}: {key} recorded {d.get(key)!r}, recomputed {value!r}")
    return problems + check_colour_days(seed, program, period, beacon, export.get("colour_days", []))


def check_colour_days(seed: bytes, program: str, period: str, beacon: str | None, days: list) -> list[str]:
    problems = []
    called: dict = {}
    for day in days:
        for name in day["colours"]:
            called.setdefault((day["site"], name), set()).add(day["day"])
    first = period + "-01"
    for day in days:
        where = f"colour {day['site']} {day['day']}"
        when = date.fromisoformat(day["day"])
        if when.strftime("%Y-%m") != period:
            problems.append(f"{where}: outside the period {period}")
            continue
        for d in day["draws"]:
            inputs = d.get("inputs")
            if not inputs:
                problems.append(f"{where}: {d['colour']} has no recorded inputs")
                continue
            r = roll(seed, program, f"colour:{day['site']}:{d['colour']}", day["day"], "select", beacon)
            selected, reason, p = outcome(
                inputs["plan"],
                when,
                r,
                [date.fromisoformat(x) for x in inputs["recent_selections"]],
                inputs["paused"],
                date.fromisoformat(inputs["history_start"]),
            )
            for key, value in {"roll": r, "selected": selected, "reason": reason, "probability": p}.items():
                if d.get(key) != value:
                    problems.append(f"{where}: {d['colour']} {key} recorded {d.get(key)!r}, recomputed {value!r}")
            start = max(first, (when - timedelta(days=WINDOW_DAYS - 1)).isoformat())
            shown = sorted(x for x in called.get((day["site"], d["colour"]), ()) if start <= x < day["day"])
            recorded = sorted(x for x in inputs["recent_selections"] if x >= first)
            if shown != recorded:
                problems.append(f"{where}: {d['colour']} recorded calls before {recorded}, the export shows {shown}")
        drawn = [d["colour"] for d in day["draws"] if d.get("selected")]
        if day["colours"] != drawn:
            problems.append(f"{where}: colours called recorded {day['colours']}, the draws select {drawn}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export")
    parser.add_argument("--seed", help="the revealed seed (hex), as published")
    parser.add_argument("--commitment", help="the commitment (hex), as published at the start of the period")
    parser.add_argument("--beacon", help="the beacon as published (drand:quicknet:<round>:<randomness>; '' for none)")
    args = parser.parse_args(argv)
    with open(args.export, encoding="utf-8") as handle:
        export = json.load(handle)
    problems = check(export, args.seed, args.commitment, args.beacon)
    for problem in problems:
        print("MISMATCH", problem)
    selected = sum(1 for d in export["draws"] if d["selected"])
    colour_days = export.get("colour_days", [])
    colours = f", {len(colour_days)} colour days" if colour_days else ""
    print(
        f"{export['program']} {export['period']}: {len(export['draws'])} draws ({selected} selected){colours}, "
        f"{len(export.get('for_cause', []))} for-cause tests listed apart, {len(problems)} mismatch(es)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
