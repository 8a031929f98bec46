"""The audit trail's keys and checkpoints, from the settings.

Keys: IOP_AUDIT_KEYS, "key-id:base64(32 bytes)" entries like IOP_CODEC_KEYS (the first signs new events,
every one verifies). In development a key is generated once into data_dir/audit-key (0600); production
refuses to start without IOP_AUDIT_KEYS. Checkpoints: the signed head goes to an append-only file and, if
configured, to an auditor's webhook; the worker takes one on a Temporal schedule (workflows/audit.py),
`iop audit checkpoint` and `POST /audit/checkpoints` on demand.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from domain.webhook_signing import encode_payload, webhook_headers
from iop.settings import Settings, get_settings
from store.audit import AuditKey, AuditKeyError, Checkpoint, append_checkpoint_file, make_checkpoint

SCHEDULE_ID = "audit-checkpoint"


def parse_audit_keys(spec: str) -> list[AuditKey]:
    """Parse "id:base64,id2:base64" (first = signing)."""
    keys: list[AuditKey] = []
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not key_id:
            raise AuditKeyError("each IOP_AUDIT_KEYS entry must look like 'key-id:base64-of-32-bytes'")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AuditKeyError(f"audit key {key_id!r} is not valid base64") from exc
        if len(secret) != 32:
            raise AuditKeyError(f"audit key {key_id!r} must be 32 bytes, got {len(secret)}")
        keys.append(AuditKey(key_id, secret))
    if len({k.key_id for k in keys}) != len(keys):
        raise AuditKeyError("IOP_AUDIT_KEYS names the same key id twice")
    return keys


def format_audit_key(key: AuditKey) -> str:
    return f"{key.key_id}:{base64.b64encode(key.secret).decode()}"


def new_audit_key(key_id: str | None = None) -> AuditKey:
    return AuditKey(key_id or f"a-{secrets.token_hex(4)}", secrets.token_bytes(32))


def _load_or_create_dev_key(path: Path) -> list[AuditKey]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(format_audit_key(new_audit_key("dev-1")) + "\n")
    keys = parse_audit_keys(path.read_text())
    if not keys:
        raise AuditKeyError(f"{path} holds no audit key")
    return keys


def audit_keys(settings: Settings) -> list[AuditKey]:
    if settings.audit_keys:
        keys = parse_audit_keys(settings.audit_keys)
        if keys:
            return keys
    if settings.env == "production":
        raise AuditKeyError(
            "IOP_AUDIT_KEYS is required in production: set it to 'key-id:base64-of-32-bytes' "
            "(generate one with `iop audit new-key`); it must not be stored in the database"
        )
    return _load_or_create_dev_key(settings.data_dir / "audit-key")


@lru_cache
def process_keys() -> tuple[AuditKey, ...]:
    """The keys of this process's settings, for code that was handed an engine but no keys."""
    return tuple(audit_keys(get_settings()))


def checkpoint_target_problem(settings: Settings) -> str | None:
    if settings.audit_checkpoint_url and not settings.audit_checkpoint_secret:
        return "IOP_AUDIT_CHECKPOINT_URL is set but IOP_AUDIT_CHECKPOINT_SECRET (a whsec_ secret) is not"
    return None


def write_checkpoint(engine: Engine, settings: Settings) -> Checkpoint:
    """Sign the head; append it to the checkpoint file, then POST it to the auditor's webhook if configured.
    A failed POST raises after the file line is written (a retry adds another checkpoint: harmless)."""
    problem = checkpoint_target_problem(settings)
    if problem:
        raise AuditKeyError(problem)
    point = make_checkpoint(engine, audit_keys(settings))
    append_checkpoint_file(settings.audit_checkpoint_path, point)
    if settings.audit_checkpoint_url:
        body = encode_payload({"type": "audit.checkpoint", "checkpoint": point.__dict__})
        msg_id = f"audit-checkpoint-{point.seq}-{uuid.uuid4().hex[:12]}"
        now = int(datetime.now(UTC).timestamp())
        response = httpx.post(
            settings.audit_checkpoint_url,
            content=body,
            timeout=15.0,
            follow_redirects=False,
            headers={
                "content-type": "application/json",
                **webhook_headers(settings.audit_checkpoint_secret, msg_id, now, body),
            },
        )
        response.raise_for_status()
    return point


async def ensure_checkpoint_schedule(client, task_queue: str, minutes: int) -> None:
    """The Temporal schedule that starts AuditCheckpointWorkflow every `minutes` (0: remove it)."""
    from datetime import timedelta

    from temporalio.client import (
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleIntervalSpec,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleUpdate,
    )
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.audit import AuditCheckpointWorkflow

    handle = client.get_schedule_handle(SCHEDULE_ID)
    if minutes <= 0:
        try:
            await handle.delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(AuditCheckpointWorkflow.run, id=SCHEDULE_ID, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=minutes))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
