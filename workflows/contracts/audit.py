"""AuditCheckpointWorkflow (workflows/audit.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CheckpointTaken:
    """An audit checkpoint was signed and written (no PHI: a sequence number and a time)."""

    seq: int
    at: str
