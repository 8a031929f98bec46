"""The audit trail: append-only, chained, keyed, appends serialised on SQLite and PostgreSQL.

Each event's MAC covers its fields and the previous event's MAC, so editing or deleting any row breaks the
chain from that row on; `verify` names the first broken link.

What protects what, against someone who holds the database role but not the audit key:
- Since migration 0011 each event is an HMAC-SHA256 under an audit key that is not in the database
  (IOP_AUDIT_KEYS; the row names its key id, so keys rotate: the first key signs, every configured key
  verifies). Without the key nobody can write a row, or re-chain rows after an edit, that verifies.
- Rows written before 0011 carry a plain SHA-256 (`mac_alg = 'sha256'`) and still verify under it, but only
  before the cut-over: the first keyed event. That event's MAC covers the last unkeyed hash, so the unkeyed
  prefix cannot be rewritten without breaking it; where in the prefix the change was cannot be known from
  the chain (only narrowed by checkpoints taken before the cut-over).
- What the chain cannot show by itself: its end. Deleting the newest rows and setting `audit_head` back
  leaves a shorter chain that verifies; so does re-hashing every row with the unkeyed algorithm and erasing
  the cut-over marker in `audit_head`. Checkpoints close both: the head (sequence, MAC, time) and the
  cut-over are signed with the audit key and written where the database role cannot rewrite them (an
  append-only file, an auditor's webhook; iop/audit.py). `verify(checkpoints=...)` compares every checkpoint
  in the file, so a later checkpoint of a tail that was cut and grew again does not hide an earlier one at
  the same sequence. It names a removed tail (a checkpoint beyond the chain's end), a rewrite (a checkpoint's
  MAC not matching the chain), and any unkeyed row at or after the earliest cut-over any checkpoint recorded.
  A removed or rewritten tail is located at the first event after the last one signed before the checkpoint
  (event times are under the key; this trusts the writers' and the checkpointer's clocks to agree), never
  before the newest matching checkpoint taken earlier. Events newer than the last checkpoint are protected
  by the key against edits and deletions in the middle, not against truncation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.db import session_scope, table_of
from store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
LEGACY = "sha256"  # before migration 0011: no key
KEYED = "hmac-sha256"
# Any fixed number: the PostgreSQL advisory lock that serialises appends across processes.
_APPEND_LOCK = 42_4242


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print key material
        return f"AuditKey({self.key_id!r})"


class AuditKeyError(ValueError):
    """The audit keys are missing or malformed, or a row or checkpoint names a key that is not configured."""


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    role: str
    action: str
    outcome: str
    subject_type: str | None = None
    subject_id: str | None = None
    participant_id: str | None = None
    request_id: str | None = None
    source: str | None = None
    detail: str | None = None
    shown: str | None = None


_FIELDS = (
    "seq",
    "at",
    "actor",
    "role",
    "action",
    "subject_type",
    "subject_id",
    "participant_id",
    "outcome",
    "request_id",
    "source",
    "detail",
    "prev_hash",
)
_KEYED_FIELDS = (*_FIELDS, "shown", "mac_alg", "key_id")


def _canonical(row: AuditEvent, fields: Iterable[str]) -> bytes:
    values = {name: getattr(row, name) for name in fields}
    at = values["at"]
    values["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


def legacy_digest(row: AuditEvent) -> str:
    """The unkeyed algorithm of rows written before migration 0011."""
    return hashlib.sha256(_canonical(row, _FIELDS)).hexdigest()


def keyed_mac(row: AuditEvent, secret: bytes) -> str:
    return hmac.new(secret, _canonical(row, _KEYED_FIELDS), hashlib.sha256).hexdigest()


# --- which keys -------------------------------------------------------------------------------

_ENGINE_KEYS: weakref.WeakKeyDictionary[Engine, tuple[AuditKey, ...]] = weakref.WeakKeyDictionary()


def use_keys(engine: Engine, keys: Sequence[AuditKey]) -> None:
    """Appends and verifications on this engine use these keys (the API and worker set them at start)."""
    if not keys:
        raise AuditKeyError("at least one audit key is required")
    _ENGINE_KEYS[engine] = tuple(keys)


def keys_for(engine: Engine) -> tuple[AuditKey, ...]:
    """The keys set for the engine, else the process's configured ones (IOP_AUDIT_KEYS or the dev key)."""
    if engine in _ENGINE_KEYS:
        return _ENGINE_KEYS[engine]
    from iop.audit import process_keys  # settings live above the store; read only when nobody set keys

    return process_keys()


# --- appending --------------------------------------------------------------------------------


def append(engine: Engine, entry: AuditEntry, keys: Sequence[AuditKey] | None = None) -> AuditEvent:
    """Add one event at the end of the chain (one writer at a time), signed with the first key."""
    signer = (keys or keys_for(engine))[0]
    with session_scope(engine) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection().execute(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_APPEND_LOCK))
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
        row = AuditEvent(
            seq=(last.seq + 1) if last else 1,
            at=datetime.now(UTC),
            prev_hash=last.hash if last else GENESIS,
            hash="",
            mac_alg=KEYED,
            key_id=signer.key_id,
            **{k: (_storable(v)[: _limit(k)] if isinstance(v, str) else v) for k, v in entry.__dict__.items()},
        )
        row.hash = keyed_mac(row, signer.secret)
        session.add(row)
        head = session.get(AuditHead, 1) or AuditHead(id=1, seq=0, hash=GENESIS)
        head.seq, head.hash = row.seq, row.hash
        head.keyed_from = head.keyed_from or row.seq
        session.add(head)
        return row


def _storable(text: str) -> str:
    # A request path can carry a NUL, which PostgreSQL will not store: the trail shows it escaped.
    return text.replace("\x00", "\\x00")


def _limit(name: str) -> int:
    column = table_of(AuditEvent).columns[name]
    return getattr(column.type, "length", None) or 1_000_000


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment and the cut-over to keyed rows, signed with an audit key."""

    seq: int
    hash: str
    at: str
    keyed_from: int | None
    key_id: str
    mac: str = ""

    def signed_part(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "mac"}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def sign(self, key: AuditKey) -> Checkpoint:
        unsigned = Checkpoint(self.seq, self.hash, self.at, self.keyed_from, key.key_id)
        return Checkpoint(
            **{**asdict(unsigned), "mac": hmac.new(key.secret, unsigned.signed_part(), hashlib.sha256).hexdigest()}
        )

    def authentic(self, keys: Sequence[AuditKey]) -> bool:
        key = next((k for k in keys if k.key_id == self.key_id), None)
        return key is not None and hmac.compare_digest(self.sign(key).mac, self.mac)

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read as checkpoints."""


def make_checkpoint(engine: Engine, keys: Sequence[AuditKey] | None = None) -> Checkpoint:
    """Sign the current head. `keyed_from` is the first keyed event; while there is none, the next event
    (every event from now on is keyed), so a checkpoint taken before the cut-over pins it too."""
    signer = (keys or keys_for(engine))[0]
    with Session(engine) as session:
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)).first()
        head = session.get(AuditHead, 1)
        first_keyed = session.exec(
            select(AuditEvent.seq).where(AuditEvent.mac_alg == KEYED).order_by(col(AuditEvent.seq)).limit(1)
        ).first()
    seq, digest = (last.seq, last.hash) if last else (0, GENESIS)
    evidence = [s for s in (head.keyed_from if head else None, first_keyed) if s]
    keyed_from = min(evidence) if evidence else seq + 1
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    return Checkpoint(seq, digest, at, keyed_from, signer.key_id).sign(signer)


def append_checkpoint_file(path: Path, checkpoint: Checkpoint) -> None:
    """One line at the end of the file: opened O_APPEND (a write never lands anywhere but the end), 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (checkpoint.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_checkpoints(content: str, source: str = "checkpoints") -> list[Checkpoint]:
    points = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            points.append(
                Checkpoint(
                    seq=int(raw["seq"]),
                    hash=str(raw["hash"]),
                    at=str(raw["at"]),
                    keyed_from=None if raw.get("keyed_from") is None else int(raw["keyed_from"]),
                    key_id=str(raw["key_id"]),
                    mac=str(raw["mac"]),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{source} line {number} is not a checkpoint ({type(exc).__name__})") from exc
    return points


def read_checkpoints(path: Path) -> list[Checkpoint]:
    return parse_checkpoints(Path(path).read_text(), str(path))


# --- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None
    checkpoints: int = 0  # how many checkpoints the chain was compared against
    keyed_from: int | None = None  # the cut-over: events from here on must be keyed


def verify(
    engine: Engine, keys: Sequence[AuditKey] | None = None, checkpoints: Sequence[Checkpoint] = (), batch: int = 5000
) -> Verification:
    """Walk the chain from the start against its keys and the given checkpoints; the first event that is
    missing or changed (for unkeyed rows: the first that may have been)."""
    keys = tuple(keys or keys_for(engine))
    secrets = {k.key_id: k.secret for k in keys}
    for number, point in enumerate(checkpoints, start=1):
        if not point.authentic(keys):
            return Verification(
                False,
                0,
                None,
                f"checkpoint {number} (event {point.seq}, {point.at}) does not carry "
                f"a valid signature of a configured audit key ({point.key_id!r}): "
                f"the checkpoint record was altered or forged",
            )
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
        evidence = [p.keyed_from for p in checkpoints if p.keyed_from] + (
            [head.keyed_from] if head and head.keyed_from else []
        )
        keyed_from = min(evidence) if evidence else None
        walk = _Walk(secrets, checkpoints, keyed_from)
        broken = None
        while broken is None:
            rows = session.exec(
                select(AuditEvent).where(AuditEvent.seq >= walk.expected_seq).order_by(col(AuditEvent.seq)).limit(batch)
            ).all()
            if not rows:
                break
            broken = next(filter(None, map(walk.step, rows)), None)
        return walk.verdict(session, broken, head, batch)


class _Walk:
    def __init__(self, secrets: dict[str, bytes], checkpoints: Sequence[Checkpoint], keyed_from: int | None) -> None:
        self.secrets, self.points, self.keyed_from = secrets, tuple(checkpoints), keyed_from
        self.pinned = {p.seq for p in checkpoints if p.seq > 0}
        self.seen: dict[int, str] = {}  # the chain's MAC at each checkpointed sequence
        self.expected_prev, self.expected_seq, self.checked = GENESIS, 1, 0
        self.last_match = 0  # the newest checkpointed event that matched

    def broken(self, seq: int | None, problem: str) -> Verification:
        return Verification(False, self.checked, seq, problem, len(self.points), self.keyed_from)

    def step(self, row: AuditEvent) -> Verification | None:
        """Check one event against its key and its link; checkpoints are compared once the walk has ended."""
        seq = row.seq
        if seq != self.expected_seq:
            return self.broken(self.expected_seq, f"event {self.expected_seq} is missing (the next present is {seq})")
        if row.mac_alg == KEYED and self.keyed_from is None:
            self.keyed_from = seq  # a keyed row is evidence too: nothing after it may be unkeyed
        if row.prev_hash != self.expected_prev:
            if row.mac_alg == KEYED and seq == self.keyed_from and seq > 1:
                return self.broken(
                    self.last_match + 1,
                    f"event {seq}, the first keyed event, does not link to event "
                    f"{seq - 1}: an unkeyed event from {self.last_match + 1} to {seq - 1} was changed "
                    f"(unkeyed events cannot be told apart one by one)",
                )
            return self.broken(seq, f"event {seq} does not link to event {seq - 1}")
        if row.mac_alg == LEGACY:
            if self.keyed_from is not None and seq >= self.keyed_from:
                return self.broken(
                    seq,
                    f"event {seq} is not signed with an audit key, but every event from "
                    f"{self.keyed_from} on was: it was re-hashed or inserted after the fact",
                )
            if legacy_digest(row) != row.hash:
                return self.broken(seq, f"event {seq} was altered after it was written")
        elif row.mac_alg == KEYED:
            if row.key_id not in self.secrets:
                return self.broken(
                    seq,
                    f"event {seq} is signed with audit key {row.key_id!r}, which is not "
                    f"configured: add it to IOP_AUDIT_KEYS (after the signing key) to verify",
                )
            if not hmac.compare_digest(keyed_mac(row, self.secrets[row.key_id]), row.hash):
                return self.broken(seq, f"event {seq} was altered after it was written")
        else:
            return self.broken(seq, f"event {seq} names an unknown algorithm {row.mac_alg!r}")
        if seq in self.pinned:
            self.seen[seq] = row.hash
            if any(p.seq == seq and hmac.compare_digest(p.hash, row.hash) for p in self.points):
                self.last_match = seq
        self.expected_prev, self.expected_seq, self.checked = row.hash, seq + 1, self.checked + 1
        return None

    def verdict(
        self, session: Session, broken: Verification | None, head: AuditHead | None, batch: int
    ) -> Verification:
        """The earliest of: the link or key that broke the walk, every checkpoint the chain does not match (each
        one, not only the newest at its sequence), and a head beyond the chain's end."""
        last = self.expected_seq - 1  # events 1..last passed the walk
        findings = [(broken.first_broken_seq or 0, 0, broken.problem or "")] if broken else []
        for seq, problem in self._checkpoint_findings(session, last, whole=broken is None, batch=batch):
            findings.append((seq, 1, problem))
        if not broken and head is not None and (head.seq, head.hash) != (last, self.expected_prev):
            findings.append(
                (
                    last + 1,
                    2,
                    f"the chain ends at event {last} but was last extended to "
                    f"event {head.seq}: events were removed from its end",
                )
            )
        if not findings:
            return Verification(True, self.checked, checkpoints=len(self.points), keyed_from=self.keyed_from)
        seq, _, problem = min(findings)
        return Verification(False, min(self.checked, max(seq - 1, 0)), seq, problem, len(self.points), self.keyed_from)

    def _checkpoint_findings(self, session: Session, last: int, whole: bool, batch: int) -> list[tuple[int, str]]:
        """Each checkpoint the chain contradicts, located. A checkpoint's MAC pins events 1..seq as the chain was
        when it was taken. The events up to the newest checkpoint that matches and was taken before it are
        proven the same; after those, an event signed (with its time under the key) before the checkpoint was
        taken was in the chain it saw, so the chain is the same up to it; the first event after is the first one
        missing or replaced. (That step trusts the clocks of the writers and the checkpointer to agree.)"""
        matched: list[int] = []  # sequences of the matching checkpoints taken so far, in file order
        failing: list[tuple[int, Checkpoint]] = []
        for point in self.points:
            if point.seq > last and not whole:
                continue  # beyond an event that already broke the walk: nothing to compare
            if point.seq == 0 or (point.seq <= last and hmac.compare_digest(self.seen[point.seq], point.hash)):
                matched.append(point.seq)
                continue
            failing.append((1 + max((s for s in matched if s < point.seq), default=0), point))
        findings: list[tuple[int, str]] = []
        for floor, point in sorted(failing, key=lambda f: f[0]):
            if findings and floor >= min(findings)[0]:
                break
            older = _newest_signed_before(session, point, floor, min(point.seq, last), batch)
            if point.seq > last:
                seq = older + 1 if older is not None else floor
                gone = (
                    f"events {last + 1} to {point.seq} were removed"
                    if seq > last
                    else f"events {seq} to {point.seq} were removed or replaced (events {seq} to {last} are not "
                    f"signed as older than that checkpoint)"
                )
                findings.append(
                    (
                        seq,
                        f"the chain ends at event {last} but the checkpoint of {point.at} saw it "
                        f"reach event {point.seq}: {gone}",
                    )
                )
            elif older is not None and older < point.seq:
                findings.append(
                    (
                        older + 1,
                        f"the chain at event {point.seq} is not the one checkpointed at "
                        f"{point.at}: events {older + 1} to {point.seq} were replaced (they are "
                        f"signed after that checkpoint, event {older} before it)",
                    )
                )
            else:
                findings.append(
                    (
                        floor,
                        f"the chain at event {point.seq} is not the one checkpointed at {point.at}: "
                        f"an event from {floor} to {point.seq} was rewritten",
                    )
                )
        return findings


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _newest_signed_before(session: Session, point: Checkpoint, low: int, high: int, batch: int) -> int | None:
    """The newest event from `low` to `high` whose signed time is before the checkpoint's; None if there is none
    (an unkeyed event's time proves nothing, and no keyed event comes before an unkeyed one)."""
    try:
        taken = _utc(datetime.fromisoformat(point.at))
    except ValueError:
        return None
    while high >= low:
        rows = session.exec(
            select(AuditEvent.seq, AuditEvent.at, AuditEvent.mac_alg)
            .where(AuditEvent.seq >= low, AuditEvent.seq <= high)
            .order_by(col(AuditEvent.seq).desc())
            .limit(batch)
        ).all()
        for seq, at, mac_alg in rows:
            if mac_alg != KEYED:
                return None
            if _utc(at) < taken:
                return seq
        if not rows:
            return None
        high = rows[-1][0] - 1
    return None
