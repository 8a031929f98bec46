"""Audit keys come from the settings like the codec keys; checkpoints go to a file and an auditor's webhook;
the CLI verifies against a checkpoint file."""

import base64
import os
import stat
import subprocess
import sys

import pytest
from sqlalchemy import text

from api.app import create_app
from domain.webhook_signing import new_webhook_secret
from iop.audit import audit_keys, format_audit_key, parse_audit_keys, write_checkpoint
from iop.settings import Settings
from store.audit import AuditEntry, AuditKey, AuditKeyError, append, read_checkpoints, use_keys, verify
from tests.receiver import Receiver, webhook_receiver

KEY = AuditKey("audit-1", bytes(range(32)))


def test_production_refuses_to_start_without_audit_keys(tmp_path, records_engine):
    with pytest.raises(AuditKeyError, match="IOP_AUDIT_KEYS is required in production"):
        audit_keys(Settings(env="production", data_dir=tmp_path))
    app = create_app(
        Settings(env="production", data_dir=tmp_path, codec_keys="k:" + base64.b64encode(bytes(32)).decode()),
        engine=records_engine,
    )
    with pytest.raises(AuditKeyError):
        with_lifespan(app)
    assert not (tmp_path / "audit-key").exists()


def with_lifespan(app):
    import asyncio

    async def run():
        async with app.router.lifespan_context(app):
            pass

    asyncio.run(run())


def test_development_generates_one_private_key_and_keeps_it(tmp_path):
    first = audit_keys(Settings(data_dir=tmp_path))
    assert stat.S_IMODE(os.stat(tmp_path / "audit-key").st_mode) == 0o600
    assert audit_keys(Settings(data_dir=tmp_path)) == first


def test_keys_parse_like_codec_keys_and_the_first_signs():
    spec = ",".join(format_audit_key(k) for k in (KEY, AuditKey("old", bytes(32))))
    assert [k.key_id for k in audit_keys(Settings(audit_keys=spec))] == ["audit-1", "old"]
    for bad, message in (
        ("nokey", "must look like"),
        ("a:!!", "base64"),
        ("a:" + base64.b64encode(b"x").decode(), "32 bytes"),
        (f"{spec},{spec}", "twice"),
    ):
        with pytest.raises(AuditKeyError, match=message):
            parse_audit_keys(bad)
    assert "secret" not in repr(KEY) and repr(Settings(audit_keys=spec)).count(spec) == 0


def test_a_checkpoint_goes_to_the_file_and_to_the_auditors_webhook(migrated_engine, tmp_path):
    for i in range(3):
        append(migrated_engine, AuditEntry(actor="system", role="-", action="test", outcome=str(i)), keys=[KEY])
    secret = new_webhook_secret(bytes(range(32)))
    with webhook_receiver(receiver=Receiver(url="", secret=secret)) as auditor:
        settings = Settings(
            data_dir=tmp_path,
            audit_keys=format_audit_key(KEY),
            audit_checkpoint_url=auditor.url,
            audit_checkpoint_secret=secret,
        )
        point = write_checkpoint(migrated_engine, settings)
    [sent] = auditor.kept.values()
    assert auditor.requests[0]["verified"] and sent["checkpoint"]["seq"] == 3 == point.seq
    assert sent["checkpoint"]["mac"] == point.mac == read_checkpoints(tmp_path / "audit-checkpoints.jsonl")[0].mac
    with pytest.raises(AuditKeyError, match="SECRET"):
        write_checkpoint(
            migrated_engine,
            Settings(data_dir=tmp_path, audit_keys=format_audit_key(KEY), audit_checkpoint_url=auditor.url),
        )


def test_the_cli_checkpoints_and_names_a_removed_tail(migrated_engine, db_url, tmp_path):
    use_keys(migrated_engine, [KEY])
    for i in range(6):
        append(migrated_engine, AuditEntry(actor="system", role="-", action="test", outcome=str(i)))
    env = {
        **os.environ,
        "IOP_DATABASE_URL": db_url,
        "IOP_DATA_DIR": str(tmp_path),
        "IOP_AUDIT_KEYS": format_audit_key(KEY),
        "IOP_AUDIT_CHECKPOINT_FILE": str(tmp_path / "elsewhere.jsonl"),
    }
    cli = [sys.executable, "-m", "iop.cli", "audit"]
    taken = subprocess.run([*cli, "checkpoint"], env=env, capture_output=True, text=True)
    assert taken.returncode == 0 and "checkpoint at event 6" in taken.stdout, taken.stderr
    copy = tmp_path / "copy.jsonl"
    copy.write_text((tmp_path / "elsewhere.jsonl").read_text())
    ok = subprocess.run([*cli, "verify", "--checkpoints", str(copy)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "6 events checked against 1 checkpoints" in ok.stdout, ok.stderr
    with migrated_engine.begin() as conn:
        four = conn.execute(text("SELECT hash FROM audit_events WHERE seq = 4")).scalar_one()
        conn.execute(text("DELETE FROM audit_events WHERE seq > 4"))
        conn.execute(text("UPDATE audit_head SET seq = 4, hash = :h"), dict(h=four))
    assert verify(migrated_engine).ok  # the database alone cannot tell
    broken = subprocess.run([*cli, "verify", "--checkpoints", str(copy)], env=env, capture_output=True, text=True)
    assert broken.returncode == 1 and "BROKEN at event 5" in broken.stderr and "removed" in broken.stderr
    default = subprocess.run([*cli, "verify"], env=env, capture_output=True, text=True)  # the configured file
    assert default.returncode == 1 and "BROKEN at event 5" in default.stderr
    missing = subprocess.run(
        [*cli, "verify", "--checkpoints", str(tmp_path / "nope")],
        env={**env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "does not exist" in missing.stderr
