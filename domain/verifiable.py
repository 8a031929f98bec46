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
Public beacon: drand (League of Entropy), https://drand.love/docs/specification/ : round r of a chain is
produced at genesis_time + (r - 1) * period; its "randomness" is SHA-256 of the round's BLS signature.

The notices (commitment at the period's start, seed at its reveal) carry the program, the period and the
cryptographic values only: no participant, no Part 2 information, so no consent governs them.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from domain.colours import colour_roll_subject
from domain.plan import plan_from_dict
from domain.selection import WINDOW_DAYS, draw_day, is_collection_day, notification_time
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


def period_end(period: str) -> date:
    """The last day of a period ("YYYY-MM")."""
    year, month = int(period[:4]), int(period[5:7])
    return date(year, month, calendar.monthrange(year, month)[1])


# The seed is revealed this many days after its period's last day: by then that day is over in every time zone.
REVEAL_AFTER_DAYS = 2


def reveal_on(period: str) -> date:
    """The first day (UTC) the period's seed may be revealed."""
    return period_end(period) + timedelta(days=REVEAL_AFTER_DAYS)


def reveal_moment(period: str) -> datetime:
    """00:00 UTC of reveal_on: when the period's workflow reveals the seed on its own."""
    day = reveal_on(period)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def commitment(seed: bytes, program: str, period: str) -> str:
    """Hex SHA-256 of seed | program | period: published before the seed is used."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a selection seed has {SEED_BYTES} bytes; got {len(seed)}")
    return hashlib.sha256(seed + b"|" + program.encode() + b"|" + period.encode()).hexdigest()


# --- the public beacon (optional) ---------------------------------------------------------------
# The clinic knows its seed, so a beacon it could pick would let it try several and keep the one it likes.
# It has no pick: the beacon of a period is the one drand quicknet round produced first BEACON_DELAY after
# the commitment was published (the delay covers clock skew between the clinic and drand). Nobody knew
# that round's randomness when the seed was committed, and nobody can choose another.

DRAND_CHAIN = "quicknet"  # 3-second unchained rounds (bls-unchained-g1-rfc9380), League of Entropy
DRAND_CHAIN_HASH = "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971"
DRAND_GENESIS = 1692803367  # Unix seconds of round 1
DRAND_PERIOD_S = 3
BEACON_DELAY = timedelta(minutes=5)
_BEACON = re.compile(r"drand:(?P<chain>[a-z]+):(?P<round>[1-9][0-9]{0,11}):(?P<randomness>[0-9a-f]{64})")


def round_time(round_number: int) -> datetime:
    """When drand quicknet produces a round: genesis + (round - 1) * period."""
    return datetime.fromtimestamp(DRAND_GENESIS + (round_number - 1) * DRAND_PERIOD_S, UTC)


def round_url(round_number: int) -> str:
    """Where anyone reads a round (its randomness and BLS signature) from drand itself."""
    return f"https://api.drand.sh/{DRAND_CHAIN_HASH}/public/{round_number}"


def beacon_round(published_at: datetime) -> int:
    """The period's beacon round: the first produced at or after published_at + BEACON_DELAY."""
    if published_at.tzinfo is None:
        published_at = published_at.replace(tzinfo=UTC)
    after = (published_at + BEACON_DELAY - round_time(1)) // timedelta(microseconds=1)
    return max(1, -(-after // (DRAND_PERIOD_S * 1_000_000)) + 1)


@dataclass(frozen=True)
class Beacon:
    """One drand round: written into every roll's message as `drand:quicknet:<round>:<randomness hex>`."""

    round: int
    randomness: str

    @property
    def text(self) -> str:
        return f"drand:{DRAND_CHAIN}:{self.round}:{self.randomness}"


def drand_beacon(round_number: int, randomness: str) -> Beacon:
    """A drand quicknet round as entered by an admin; ValueError (saying what to give) otherwise."""
    if isinstance(round_number, bool) or not isinstance(round_number, int) or not 1 <= round_number < 10**12:
        raise ValueError(f"a drand round is a whole number from 1; got {round_number!r}")
    text = str(randomness).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(
            f'a drand round\'s randomness is 64 hex digits (the "randomness" field of {round_url(round_number)})'
        )
    return Beacon(round_number, text)


def parse_beacon(text: str) -> Beacon:
    """`drand:quicknet:<round>:<randomness hex>` back into its parts; ValueError otherwise."""
    found = _BEACON.fullmatch(text or "")
    if found is None or found["chain"] != DRAND_CHAIN:
        raise ValueError(
            f"a beacon is written drand:{DRAND_CHAIN}:<round>:<64 hex digits of randomness>, e.g. "
            f"drand:{DRAND_CHAIN}:12345678:{'ab' * 32}; got {text!r}"
        )
    return drand_beacon(int(found["round"]), found["randomness"])


def beacon_problem(beacon_text: str | None, published_at: datetime) -> str | None:
    """Why a beacon proves nothing for a commitment published at `published_at` (None: it is the period's)."""
    if beacon_text is None:
        return None
    try:
        parsed = parse_beacon(beacon_text)
    except ValueError as exc:
        return str(exc)
    expected = beacon_round(published_at)
    if parsed.round != expected:
        return (
            f"the beacon of a commitment published at {_utc(published_at)} is drand {DRAND_CHAIN} round "
            f"{expected} (the first produced {BEACON_DELAY.total_seconds() / 60:g} minutes after it, at "
            f"{_utc(round_time(expected))}); round {parsed.round} was produced at {_utc(round_time(parsed.round))}"
        )
    return None


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- notices to subscribing recipients ---------------------------------------------------------


# The subscription a recipient takes (Recipient.notices) to be sent each period's commitment and reveal.
class NoticeSubscription(Vocabulary):
    """Notices a recipient may subscribe to; none is about any participant."""

    SELECTION_COMMITMENTS = "selection-commitments"


SELECTION_COMMITMENTS = NoticeSubscription.SELECTION_COMMITMENTS
NOTICE_SUBSCRIPTIONS: tuple[str, ...] = tuple(NoticeSubscription)
NOTICE_FORMAT = "iop-selection-notice/1"


class NoticeKind(Vocabulary):
    """What a selection notice tells: the commitment at the period's start, or the seed after its end."""

    COMMITMENT = "commitment"  # at the start of the period: the commitment (and the beacon, if fixed)
    REVEAL = "reveal"  # once the period is over: the seed as well


NOTICE_TYPES = {NoticeKind.COMMITMENT: "selection.commitment", NoticeKind.REVEAL: "selection.reveal"}
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def notice_id(program: str, period: str, kind: str, recipient_id: str) -> str:
    """The notice's id: its webhook-id (the same on every retry) and its delivery record's key."""
    kind = NoticeKind(kind)
    digest = hashlib.sha256("|".join((program, period, kind, recipient_id)).encode()).hexdigest()[:12]
    return f"sn-{_ID_UNSAFE.sub('_', program)[:40]}-{period}-{kind}-{_ID_UNSAFE.sub('_', recipient_id)[:40]}-{digest}"


def build_notice(
    kind: str,
    notice_ref: str,
    program: str,
    period: str,
    commitment_hex: str,
    published_at: str,
    issued_at: str,
    beacon_text: str | None = None,
    seed_hex: str | None = None,
    revealed_at: str | None = None,
) -> dict[str, Any]:
    """The notice a subscribing recipient is sent: the period's commitment (at its start) and, at the reveal,
    the seed. Program and cryptographic values only: nothing about any participant."""
    kind = NoticeKind(kind)
    if kind == NoticeKind.REVEAL and not seed_hex:
        raise ValueError("a reveal notice carries the revealed seed")
    if kind == NoticeKind.COMMITMENT and seed_hex:
        raise ValueError("a commitment notice never carries the seed")
    the_round = beacon_round(datetime.fromisoformat(published_at))
    body: dict[str, Any] = {
        "format": NOTICE_FORMAT,
        "type": NOTICE_TYPES[kind],
        "id": notice_ref,
        "issued_at": issued_at,
        "program": program,
        "period": period,
        "commitment": commitment_hex,
        "published_at": published_at,
        "beacon": beacon_text,
        "reveal_on": reveal_on(period).isoformat(),
        # The only drand round that may become the period's beacon, named before its randomness exists.
        "beacon_round": the_round,
        "beacon_round_url": round_url(the_round),
        "formula": {
            "commitment": "hex SHA-256(seed | '|' | program | '|' | period)",
            "roll": "HMAC-SHA256(seed, program|participant|date|purpose|beacon), top 53 bits / 2**53; "
            "purpose 'select' (the outcome) or 'minute' (the time of day); beacon '' when none",
        },
    }
    if kind == NoticeKind.REVEAL:
        body.update(seed=seed_hex, revealed_at=revealed_at)
    return body


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

    where: str  # "commitment", "seed", "<participant> <day>" or "colour <site> <day>"
    problem: str


def recompute(seed: bytes, program: str, beacon: str | None, entry: dict[str, Any]) -> dict[str, Any]:
    """What one exported draw must say, from the seed and the draw's recorded inputs."""
    day = date.fromisoformat(entry["day"])
    plan = plan_from_dict(entry["inputs"]["plan"])
    select_roll = roll(seed, program, entry["participant_id"], entry["day"], SELECT, beacon)
    minute_roll = roll(seed, program, entry["participant_id"], entry["day"], MINUTE, beacon)
    draw = draw_day(
        plan,
        day,
        select_roll,
        [date.fromisoformat(d) for d in entry["inputs"]["recent_selections"]],
        entry["inputs"]["paused"],
        history_start=date.fromisoformat(entry["inputs"]["history_start"]),
    )
    if entry["inputs"]["paused"] or not is_collection_day(plan, day):
        minute = plan.opens_at
    else:
        minute = notification_time(plan, day, minute_roll).strftime("%H:%M")
    return {
        "roll": select_roll,
        "time_roll": minute_roll,
        "selected": draw.selected,
        "reason": draw.reason,
        "probability": draw.probability,
        "draw_minute": minute,
    }


def verify_export(
    export: dict[str, Any],
    seed_hex: str | None = None,
    *,
    commitment_hex: str | None = None,
    beacon_text: str | None = None,
) -> list[Finding]:
    """Every disagreement in an export (empty: every draw follows from the seed). `seed_hex`, `commitment_hex`
    and `beacon_text` are the values as published (GET /selection/commitments, the notices); when given, the
    export's own copies must agree with them, and the draws are recomputed with the published ones."""
    findings: list[Finding] = []
    program, period, beacon = export["program"], export["period"], export.get("beacon")
    if commitment_hex is not None and commitment_hex != export["commitment"]:
        findings.append(
            Finding("commitment", f"the export says {export['commitment']}, the published one is {commitment_hex}")
        )
    if beacon_text is not None:
        if beacon_text != (beacon or ""):
            findings.append(Finding("beacon", f"the export says {beacon!r}, the published one is {beacon_text!r}"))
        beacon = beacon_text or None
    if beacon is not None and export.get("published_at"):
        problem = beacon_problem(beacon, datetime.fromisoformat(export["published_at"]))
        if problem:
            findings.append(Finding("beacon", problem))
    try:
        seed = bytes.fromhex(seed_hex or export["seed"])
        published = commitment(seed, program, period)
    except (TypeError, ValueError) as exc:
        return [Finding("seed", f"not a revealed {SEED_BYTES}-byte hex seed: {exc}")]
    if published != (commitment_hex or export["commitment"]):
        findings.append(
            Finding("commitment", "SHA-256 of the seed, program and period is not the published commitment")
        )
    for entry in export["draws"]:
        where = f"{entry['participant_id']} {entry['day']}"
        if period_of(date.fromisoformat(entry["day"])) != period:
            findings.append(Finding(where, f"draw lies outside the period {period}"))
            continue
        expected = recompute(seed, program, beacon, entry)
        for key, value in expected.items():
            if entry.get(key) != value:
                findings.append(Finding(where, f"{key}: recorded {entry.get(key)!r}, recomputed {value!r}"))
    findings.extend(verify_colour_days(seed, program, period, beacon, export.get("colour_days", [])))
    return findings


def recompute_colour(
    seed: bytes, program: str, beacon: str | None, site: str, day: str, entry: dict[str, Any]
) -> dict[str, Any]:
    """What one colour's exported draw must say: the colour is drawn like a participant (domain.colours), its
    roll the verifiable roll with colour:<site>:<colour> in place of the participant id."""
    select_roll = roll(seed, program, colour_roll_subject(site, entry["colour"]), day, SELECT, beacon)
    inputs = entry["inputs"]
    draw = draw_day(
        plan_from_dict(inputs["plan"]),
        date.fromisoformat(day),
        select_roll,
        [date.fromisoformat(d) for d in inputs["recent_selections"]],
        inputs["paused"],
        history_start=date.fromisoformat(inputs["history_start"]),
    )
    return {"roll": select_roll, "selected": draw.selected, "reason": draw.reason, "probability": draw.probability}


def verify_colour_days(
    seed: bytes, program: str, period: str, beacon: str | None, days: list[dict[str, Any]]
) -> list[Finding]:
    """Every disagreement in a colour-mode period's colour days: each colour's draw recomputed from the seed and
    its inputs; the colours called are exactly the drawn ones; each colour's recorded history (the 6 days before,
    counted for its ceiling and floor) is its calls the export shows, for the days of the period."""
    findings: list[Finding] = []
    called: dict[tuple[str, str], set[str]] = {}
    for day in days:
        for name in day["colours"]:
            called.setdefault((day["site"], name), set()).add(day["day"])
    first = f"{period}-01"
    for day in days:
        where = f"colour {day['site']} {day['day']}"
        if period_of(date.fromisoformat(day["day"])) != period:
            findings.append(Finding(where, f"colour day lies outside the period {period}"))
            continue
        for entry in day["draws"]:
            if not entry.get("inputs"):
                findings.append(Finding(where, f"{entry['colour']}: no recorded inputs to recompute the draw from"))
                continue
            expected = recompute_colour(seed, program, beacon, day["site"], day["day"], entry)
            for key, value in expected.items():
                if entry.get(key) != value:
                    findings.append(
                        Finding(where, f"{entry['colour']} {key}: recorded {entry.get(key)!r}, recomputed {value!r}")
                    )
            window_start = (date.fromisoformat(day["day"]) - timedelta(days=WINDOW_DAYS - 1)).isoformat()
            shown = sorted(
                d for d in called.get((day["site"], entry["colour"]), ()) if max(window_start, first) <= d < day["day"]
            )
            recorded = sorted(d for d in entry["inputs"]["recent_selections"] if d >= first)
            if shown != recorded:
                findings.append(
                    Finding(
                        where,
                        f"{entry['colour']}: its recorded calls in the 6 days before are "
                        f"{recorded}, the export's colour days of the period show {shown}",
                    )
                )
        drawn = [e["colour"] for e in day["draws"] if e.get("selected")]
        if day["colours"] != drawn:
            findings.append(Finding(where, f"colours called: recorded {day['colours']}, the draws select {drawn}"))
    return findings
