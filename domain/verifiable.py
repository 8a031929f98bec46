"""Verifiable random selection: commit to a secret seed per program period, reveal it afterwards.

Each program period (a calendar month, "YYYY-MM") has a fresh 256-bit seed. Its commitment,
SHA-256(seed || "|" || program || "|" || period), is published when the period opens; the seed is
revealed after the period ends. Every daily roll is HMAC-SHA256(seed, program|participant|date|purpose|beacon)
mapped to [0, 1), so once the seed is out anyone can recompute every draw, and before that nobody
outside the clinic's key holders can predict one. An optional public beacon value (e.g. a drand
round), fixed for the period after the commitment, is mixed in so the clinic could not pick a
seed favourable to anyone. The outcome of a day is then domain.selection.draw_day over the roll,
the participant's plan and recent history: pure, so an export of the inputs is checkable offline
(docs/verify_selection.py repeats these few lines with the standard library only).

Commitment schemes: NIST SP 800-90A Rev. 1 (seed material), FIPS 198-1 (HMAC), FIPS 180-4 (SHA-256).

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from domain.plan import plan_from_dict
from domain.selection import draw_day, is_collection_day, notification_time
from domain.vocab import Vocabulary

SEED_BYTES = 32


class RollPurpose(Vocabulary):
    """What a verifiable roll decides."""

    SELECT = "select"  # selected or not: requested only at or after the day's draw minute
    MINUTE = "minute"  # the draw minute itself: requested before the wait, never shown before it passes


SELECT = RollPurpose.SELECT
MINUTE = RollPurpose.MINUTE
PURPOSES = (SELECT, MINUTE)
EXPORT_FORMAT = "iop-selection-export/1"


def period_of(day: date) -> str:
    """The program period a day belongs to: its calendar month."""
    return f"{day:%Y-%m}"


def commitment(seed: bytes, program: str, period: str) -> str:
    """Hex SHA-256 of seed | program | period: published before the seed is used."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a selection seed has {SEED_BYTES} bytes; got {len(seed)}")
    return hashlib.sha256(seed + b"|" + program.encode() + b"|" + period.encode()).hexdigest()


def roll_message(program: str, participant_id: str, day: str, purpose: str, beacon: str | None) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown roll purpose {purpose!r}; purposes are {', '.join(PURPOSES)}")
    return "|".join((program, participant_id, day, purpose, beacon or "")).encode()


def roll(seed: bytes, program: str, participant_id: str, day: str, purpose: str, beacon: str | None = None) -> float:
    """Uniform in [0, 1): the top 53 bits of HMAC-SHA256(seed, message) over 2**53."""
    mac = hmac.new(seed, roll_message(program, participant_id, day, purpose, beacon), hashlib.sha256).digest()
    return (int.from_bytes(mac[:8], "big") >> 11) / float(1 << 53)


@dataclass(frozen=True)
class Finding:
    """One disagreement between an export and what its inputs give."""

    where: str  # "commitment", "seed" or "<participant> <day>"
    problem: str


def recompute(seed: bytes, program: str, beacon: str | None, entry: dict[str, Any]) -> dict[str, Any]:
    """What one exported draw must say, from the seed and the draw's recorded inputs."""
    day = date.fromisoformat(entry["day"])
    plan = plan_from_dict(entry["inputs"]["plan"])
    select_roll = roll(seed, program, entry["participant_id"], entry["day"], SELECT, beacon)
    minute_roll = roll(seed, program, entry["participant_id"], entry["day"], MINUTE, beacon)
    draw = draw_day(plan, day, select_roll, [date.fromisoformat(d) for d in entry["inputs"]["recent_selections"]],
                    entry["inputs"]["paused"], history_start=date.fromisoformat(entry["inputs"]["history_start"]))
    if entry["inputs"]["paused"] or not is_collection_day(plan, day):
        minute = plan.opens_at
    else:
        minute = notification_time(plan, day, minute_roll).strftime("%H:%M")
    return {"roll": select_roll, "time_roll": minute_roll, "selected": draw.selected, "reason": draw.reason,
            "probability": draw.probability, "draw_minute": minute}


def verify_export(export: dict[str, Any], seed_hex: str | None = None) -> list[Finding]:
    """Every disagreement in an export (empty: every draw follows from the seed). `seed_hex` overrides the
    export's own seed, e.g. the one read from GET /selection/commitments."""
    findings: list[Finding] = []
    program, period, beacon = export["program"], export["period"], export.get("beacon")
    try:
        seed = bytes.fromhex(seed_hex or export["seed"])
        published = commitment(seed, program, period)
    except (TypeError, ValueError) as exc:
        return [Finding("seed", f"not a revealed {SEED_BYTES}-byte hex seed: {exc}")]
    if published != export["commitment"]:
        findings.append(Finding("commitment", "SHA-256 of the seed, program and period is not the published "
                                              "commitment"))
    for entry in export["draws"]:
        where = f"{entry['participant_id']} {entry['day']}"
        if period_of(date.fromisoformat(entry["day"])) != period:
            findings.append(Finding(where, f"draw lies outside the period {period}"))
            continue
        expected = recompute(seed, program, beacon, entry)
        for key, value in expected.items():
            if entry.get(key) != value:
                findings.append(Finding(where, f"{key}: recorded {entry.get(key)!r}, recomputed {value!r}"))
    return findings
