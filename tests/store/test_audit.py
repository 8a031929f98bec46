"""The hash-chained audit trail on SQLite and PostgreSQL: tampering is found, appends serialise."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from iop.audit import format_audit_key
from store.audit import AuditEntry, AuditKey, append, verify


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


def test_an_untouched_chain_verifies(migrated_engine):
    for i in range(20):
        append(migrated_engine, entry(i))
    result = verify(migrated_engine)
    assert result.ok and result.checked == 20


def test_an_edited_row_breaks_the_chain_at_that_row(migrated_engine):
    for i in range(10):
        append(migrated_engine, entry(i))
    with migrated_engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET outcome = '403' WHERE seq = 6"))
    result = verify(migrated_engine)
    assert not result.ok and result.first_broken_seq == 6 and result.checked == 5


def test_a_deleted_row_breaks_the_chain_at_that_row(migrated_engine):
    for i in range(10):
        append(migrated_engine, entry(i))
    with migrated_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 4"))
    result = verify(migrated_engine)
    assert not result.ok and result.first_broken_seq == 4


def test_a_deleted_tail_is_found_too(migrated_engine):
    for i in range(5):
        append(migrated_engine, entry(i))
    with migrated_engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 5"))
    result = verify(migrated_engine)
    assert not result.ok and result.first_broken_seq == 5 and "removed" in result.problem


def test_concurrent_appends_keep_one_valid_chain(migrated_engine):
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: append(migrated_engine, entry(i)), range(240)))
    result = verify(migrated_engine)
    assert result.ok and result.checked == 240


def test_the_cli_names_the_broken_link(migrated_engine, db_url, tmp_path):
    key = AuditKey("audit-1", bytes(range(32)))
    for i in range(4):
        append(migrated_engine, entry(i), keys=[key])
    env = {
        **os.environ,
        "IOP_DATABASE_URL": db_url,
        "IOP_DATA_DIR": str(tmp_path),
        "IOP_AUDIT_KEYS": format_audit_key(key),
    }
    ok = subprocess.run([sys.executable, "-m", "iop.cli", "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "4 events checked" in ok.stdout
    with migrated_engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'someone-else' WHERE seq = 2"))
    broken = subprocess.run(
        [sys.executable, "-m", "iop.cli", "audit", "verify"], env=env, capture_output=True, text=True
    )
    assert broken.returncode == 1 and "BROKEN at event 2" in broken.stderr
