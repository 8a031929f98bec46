"""Stored programs: every version kept, the current one named on the program's row."""

from __future__ import annotations

from sqlmodel import Session, col, select

from domain.program import Program, program_from_dict, program_to_dict
from store.models import ProgramRecord, ProgramVersion, utcnow


def current_program(session: Session, program_id: str) -> tuple[Program, int] | None:
    """The current version of a stored program, or None for a program that is not stored (the built-in)."""
    record = session.get(ProgramRecord, program_id)
    if record is None:
        return None
    return program_version(session, program_id, record.current_version)


def program_version(session: Session, program_id: str, version: int) -> tuple[Program, int] | None:
    row = session.exec(
        select(ProgramVersion).where(ProgramVersion.program_id == program_id, ProgramVersion.version == version)
    ).first()
    if row is None:
        return None
    return program_from_dict(row.definition), row.version


def save_version(session: Session, program: Program, actor: str, note: str | None) -> int:
    """Store a new version and make it current; returns its number (1 for a new program)."""
    record = session.get(ProgramRecord, program.program_id)
    latest = session.exec(
        select(ProgramVersion.version)
        .where(ProgramVersion.program_id == program.program_id)
        .order_by(col(ProgramVersion.version).desc())
    ).first()
    version = (latest or 0) + 1
    if record is None:
        record = ProgramRecord(id=program.program_id, name=program.name, current_version=version)
    record.name, record.current_version, record.updated_at = program.name, version, utcnow()
    session.add(record)
    session.flush()
    session.add(
        ProgramVersion(
            program_id=program.program_id,
            version=version,
            definition=program_to_dict(program),
            note=note,
            created_by=actor,
        )
    )
    return version
