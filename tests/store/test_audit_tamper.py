"""Tampering by someone who holds the database role but not the audit key: every kind is detected and the
first missing or changed event is named. Checkpoints outside the database pin what the chain cannot."""

import hashlib
import json
import os
import stat
from datetime import UTC

from sqlalchemy import text
from sqlmodel import Session, col, select

from store.audit import (
    AuditEntry,
    AuditKey,
    append,
    append_checkpoint_file,
    make_checkpoint,
    read_checkpoints,
    verify,
)
from store.models import AuditEvent

KEYS = [AuditKey("audit-1", bytes(range(32)))]
LEGACY_FIELDS = (
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


def entry(i: int) -> AuditEntry:
    return AuditEntry(
        actor=f"t{i % 3}",
        role="staff",
        action="GET /participants/{participant_id}",
        outcome="200",
        subject_type="participant",
        subject_id=f"p-{i}",
        participant_id=f"p-{i}",
        request_id=f"r{i}",
    )


def chain(engine, n: int, keys=KEYS) -> None:
    for i in range(n):
        append(engine, entry(i), keys=keys)


def legacy_hash(values: dict) -> str:
    """The published pre-0011 algorithm: plain SHA-256, no key. An attacker can compute it."""
    values = dict(values)
    at = values["at"]
    values["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rehash_with_the_old_algorithm(engine, edit_seq: int | None = None) -> None:
    """What the database role can do: change a row, then recompute every hash and the head so each link holds."""
    with Session(engine) as session:
        rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
        prev = "0" * 64
        fixed = []
        for row in rows:
            values = {name: getattr(row, name) for name in LEGACY_FIELDS}
            if row.seq == edit_seq:
                values["outcome"] = "403"
            values["prev_hash"] = prev
            prev = legacy_hash(values)
            fixed.append((row.seq, values["outcome"], values["prev_hash"], prev))
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET hash = 'x' || CAST(seq AS VARCHAR(20))"))  # unique while rewriting
        for seq, outcome, prev_hash, digest in fixed:
            conn.execute(
                text(
                    "UPDATE audit_events SET outcome = :o, prev_hash = :p, hash = :h, mac_alg = 'sha256', "
                    "key_id = NULL WHERE seq = :s"
                ),
                dict(o=outcome, p=prev_hash, h=digest, s=seq),
            )
        conn.execute(
            text("UPDATE audit_head SET seq = :s, hash = :h, keyed_from = NULL"), dict(s=fixed[-1][0], h=fixed[-1][3])
        )


def insert_legacy_rows(engine, n: int) -> None:
    """Rows as the code before migration 0011 wrote them (plain SHA-256, no key id)."""
    append(engine, entry(0), keys=KEYS)  # a real row to copy columns from, then rewritten as legacy
    rehash_with_the_old_algorithm(engine)
    with Session(engine) as session:
        first = session.exec(select(AuditEvent)).one()
        values = {name: getattr(first, name) for name in LEGACY_FIELDS}
    prev = first.hash
    with engine.begin() as conn:
        for seq in range(2, n + 1):
            values = {**values, "seq": seq, "request_id": f"legacy-{seq}", "prev_hash": prev}
            prev = legacy_hash(values)
            conn.execute(
                text(
                    "INSERT INTO audit_events (seq, at, actor, role, action, subject_type, subject_id, participant_id, "
                    "outcome, request_id, source, detail, prev_hash, hash, mac_alg) VALUES (:seq, :at, :actor, :role, "
                    ":action, :subject_type, :subject_id, :participant_id, :outcome, :request_id, :source, :detail, "
                    ":prev_hash, :hash, 'sha256')"
                ),
                {**values, "hash": prev},
            )
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h, keyed_from = NULL"), dict(s=n, h=prev))


def take_checkpoint(engine, path, keys=KEYS):
    point = make_checkpoint(engine, keys=keys)
    append_checkpoint_file(path, point)
    return point


# --- the four kinds of tampering ----------------------------------------------------------


def test_an_edited_row_is_located_even_when_its_hash_is_recomputed(migrated_engine):
    chain(migrated_engine, 10)
    with Session(migrated_engine) as session:
        row = session.get(AuditEvent, 6)
        values = {name: getattr(row, name) for name in LEGACY_FIELDS}
    with migrated_engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET outcome = '403', hash = :h WHERE seq = 6"),
            dict(h=legacy_hash({**values, "outcome": "403"})),
        )
    result = verify(migrated_engine, keys=KEYS)
    assert not result.ok and result.first_broken_seq == 6 and result.checked == 5


def test_a_deleted_row_is_located(migrated_engine, tmp_path):
    chain(migrated_engine, 10)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    with migrated_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.first_broken_seq == 4 and "missing" in result.problem


def test_a_truncated_tail_with_a_fixed_head_is_found_by_a_checkpoint(migrated_engine, tmp_path):
    chain(migrated_engine, 10)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    with migrated_engine.begin() as conn:
        seven = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 7")).scalar_one()
        conn.execute(text("DELETE FROM audit_events WHERE seq > 7"))
        conn.execute(text("UPDATE audit_head SET seq = 7, hash = :h"), dict(h=seven))
    # The database alone cannot tell: every remaining link holds and the head agrees.
    assert verify(migrated_engine, keys=KEYS).ok
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.first_broken_seq == 8
    assert "removed" in result.problem and "10" in result.problem


def truncate_and_fix_the_head(engine, keep: int) -> None:
    with engine.begin() as conn:
        last = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), dict(s=keep)).scalar_one()
        conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), dict(s=keep))
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), dict(s=keep, h=last))


def test_a_replaced_event_is_found_although_a_later_checkpoint_saw_the_replacement(migrated_engine, tmp_path):
    # Found by the interleaving test: both checkpoints pin event 2; the newer one must not hide the older one.
    chain(migrated_engine, 2)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    truncate_and_fix_the_head(migrated_engine, 1)
    append(migrated_engine, entry(7), keys=KEYS)  # the app carries on: a new event 2
    take_checkpoint(migrated_engine, tmp_path / "cp")
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.checkpoints == 2
    assert result.first_broken_seq == 2 and result.checked == 1 and "event 2" in result.problem


def test_a_truncated_tail_that_grew_again_is_located_at_the_first_replaced_event(migrated_engine, tmp_path):
    # Found by the interleaving test: the chain ends before the checkpoint, and its last event is not the original.
    chain(migrated_engine, 3)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    truncate_and_fix_the_head(migrated_engine, 1)
    append(migrated_engine, entry(7), keys=KEYS)
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.first_broken_seq == 2 and result.checked == 1
    assert "removed or replaced" in result.problem and "3" in result.problem


def test_a_checkpoint_taken_after_the_tampering_does_not_move_its_location(migrated_engine, tmp_path):
    chain(migrated_engine, 5)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    truncate_and_fix_the_head(migrated_engine, 2)
    append(migrated_engine, entry(7), keys=KEYS)
    take_checkpoint(migrated_engine, tmp_path / "cp")  # pins the new event 3: it matches, yet 3 is what changed
    chain(migrated_engine, 2)
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.first_broken_seq == 3 and "replaced" in result.problem


def test_rehashing_every_row_with_the_old_algorithm_is_found_with_a_checkpoint(migrated_engine, tmp_path):
    chain(migrated_engine, 10)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    rehash_with_the_old_algorithm(migrated_engine, edit_seq=4)
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    # Every row's hash was replaced, so the first changed entry is the first one; signing began there.
    assert not result.ok and result.first_broken_seq == 1 and "not signed" in result.problem


def test_rehashing_with_the_old_algorithm_is_found_from_the_database_marker_too(migrated_engine):
    chain(migrated_engine, 10)
    rehash_with_the_old_algorithm(migrated_engine, edit_seq=4)
    with migrated_engine.begin() as conn:  # a careless attacker leaves the cut-over marker in place
        conn.execute(text("UPDATE audit_head SET keyed_from = 1"))
    result = verify(migrated_engine, keys=KEYS)
    assert not result.ok and result.first_broken_seq == 1


def test_appending_old_style_rows_after_signed_ones_is_found(migrated_engine, tmp_path):
    chain(migrated_engine, 6)
    take_checkpoint(migrated_engine, tmp_path / "cp")
    with Session(migrated_engine) as session:
        last = session.get(AuditEvent, 6)
        values = {
            **{name: getattr(last, name) for name in LEGACY_FIELDS},
            "seq": 7,
            "prev_hash": last.hash,
            "request_id": "forged",
        }
    with migrated_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (seq, at, actor, role, action, subject_type, subject_id, participant_id, "
                "outcome, request_id, source, detail, prev_hash, hash, mac_alg) "
                "VALUES (:seq, :at, :actor, :role, :action, :subject_type, :subject_id, :participant_id, :outcome, "
                ":request_id, :source, :detail, :prev_hash, :hash, 'sha256')"
            ),
            {**values, "hash": legacy_hash(values)},
        )
        conn.execute(text("UPDATE audit_head SET seq = 7, hash = :h, keyed_from = NULL"), dict(h=legacy_hash(values)))
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert not result.ok and result.first_broken_seq == 7 and "not signed" in result.problem


# --- keys, rotation and the cut-over from unkeyed rows --------------------------------------


def test_rows_name_their_key_and_rotation_keeps_old_rows_verifiable(migrated_engine):
    old, new = KEYS[0], AuditKey("audit-2", bytes(range(32, 64)))
    chain(migrated_engine, 3, keys=[old])
    chain(migrated_engine, 3, keys=[new, old])
    with Session(migrated_engine) as session:
        ids = [r.key_id for r in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()]
    assert ids == ["audit-1"] * 3 + ["audit-2"] * 3
    assert verify(migrated_engine, keys=[new, old]).ok
    retired = verify(migrated_engine, keys=[new])
    assert not retired.ok and retired.first_broken_seq == 1 and "audit-1" in retired.problem


def test_a_different_key_cannot_extend_the_chain(migrated_engine):
    chain(migrated_engine, 4)
    append(migrated_engine, entry(9), keys=[AuditKey("audit-1", bytes(32))])  # same id, another secret
    result = verify(migrated_engine, keys=KEYS)
    assert not result.ok and result.first_broken_seq == 5


def test_unkeyed_rows_before_the_cut_over_still_verify(migrated_engine, tmp_path):
    insert_legacy_rows(migrated_engine, 5)
    chain(migrated_engine, 3)
    assert verify(migrated_engine, keys=KEYS).ok
    point = take_checkpoint(migrated_engine, tmp_path / "cp")
    assert point.keyed_from == 6 and point.seq == 8
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    assert result.ok and result.checked == 8 and result.keyed_from == 6 and result.checkpoints == 1


def test_rewriting_unkeyed_rows_breaks_the_first_signed_link(migrated_engine, tmp_path):
    insert_legacy_rows(migrated_engine, 5)
    take_checkpoint(migrated_engine, tmp_path / "cp")  # before any signed row: pins the unkeyed prefix and cut-over
    chain(migrated_engine, 3)
    with Session(migrated_engine) as session:
        rows = {r.seq: r for r in session.exec(select(AuditEvent).where(AuditEvent.seq <= 5)).all()}
    prev = rows[2].hash
    with migrated_engine.begin() as conn:  # edit event 3 and re-hash 3..5 with the old algorithm
        conn.execute(text("UPDATE audit_events SET hash = 'x' || CAST(seq AS VARCHAR(20)) WHERE seq >= 3 AND seq <= 5"))
        for seq in (3, 4, 5):
            values = {name: getattr(rows[seq], name) for name in LEGACY_FIELDS}
            values.update(prev_hash=prev, outcome="403" if seq == 3 else values["outcome"])
            prev = legacy_hash(values)
            conn.execute(
                text("UPDATE audit_events SET outcome = :o, prev_hash = :p, hash = :h WHERE seq = :s"),
                dict(o=values["outcome"], p=values["prev_hash"], h=prev, s=seq),
            )
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(tmp_path / "cp"))
    # Unkeyed rows cannot be told apart one by one: the range after the last matching checkpoint is named.
    assert not result.ok and result.first_broken_seq == 1 and "5" in result.problem
    alone = verify(migrated_engine, keys=KEYS)
    assert not alone.ok and alone.first_broken_seq == 1 and "6" in alone.problem


# --- the checkpoint file ------------------------------------------------------------------


def test_the_checkpoint_file_is_private_and_only_appended_to(migrated_engine, tmp_path):
    chain(migrated_engine, 2)
    path = tmp_path / "cps" / "audit-checkpoints.jsonl"
    take_checkpoint(migrated_engine, path)
    first = path.read_text()
    chain(migrated_engine, 2)
    take_checkpoint(migrated_engine, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith(first)
    assert [c.seq for c in read_checkpoints(path)] == [2, 4]
    assert verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(path)).checkpoints == 2


def test_a_forged_or_edited_checkpoint_is_refused(migrated_engine, tmp_path):
    chain(migrated_engine, 3)
    path = tmp_path / "cp"
    take_checkpoint(migrated_engine, path)
    line = json.loads(path.read_text())
    line["seq"] = 2
    path.write_text(json.dumps(line) + "\n")
    result = verify(migrated_engine, keys=KEYS, checkpoints=read_checkpoints(path))
    assert not result.ok and "checkpoint" in result.problem and "signature" in result.problem
