"""The audit checkpoint activity: sign the chain's head and send it out of the database (iop/audit.py).

Retrying it writes one more checkpoint, which only pins the chain more often."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity

from iop.settings import Settings, get_settings
from workflows.contracts.audit import CheckpointTaken


class AuditActivities:
    def __init__(self, engine: Engine, settings: Settings | None = None) -> None:
        self.engine = engine
        self.settings = settings

    @activity.defn(name="audit_checkpoint")
    def checkpoint(self) -> CheckpointTaken:
        from iop.audit import write_checkpoint

        point = write_checkpoint(self.engine, self.settings or get_settings())
        return CheckpointTaken(seq=point.seq, at=point.at)

    def all(self) -> list:
        return [self.checkpoint]
