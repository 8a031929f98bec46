"""The records store on SQLite and on PostgreSQL."""

from datetime import date, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.tokens import TokenRejected, authenticate, issue_token
from store.db import session_scope
from store.migrate import current_heads
from store.models import ApiToken, IdempotencyRecord, Participant, utcnow


def a_participant(pid: str = "p-1") -> Participant:
    return Participant(
        id=pid,
        given_name="Rosa",
        family_name="Diaz",
        date_of_birth=date(1990, 4, 2),
        phone="+15555550100",
        site="north",
        program="iop",
        phase="phase-1",
        start_date=date(2026, 11, 1),
        timezone="America/Chicago",
        case_numbers=[{"system": "county-drug-court", "value": "DC-2026-0042"}],
    )


def test_migrations_create_every_table_at_head(migrated_engine):
    tables = set(inspect(migrated_engine).get_table_names())
    assert {"participants", "api_tokens", "idempotency_keys", "alembic_version"} <= tables
    with migrated_engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() in current_heads()


def test_participant_round_trip_keeps_case_numbers_and_dates(migrated_engine):
    with session_scope(migrated_engine) as session:
        session.add(a_participant())
    with Session(migrated_engine) as session:
        row = session.get(Participant, "p-1")
        assert row.date_of_birth == date(1990, 4, 2)
        assert row.case_numbers == [{"system": "county-drug-court", "value": "DC-2026-0042"}]
        assert row.status == "active"


def test_session_scope_rolls_back_on_error(migrated_engine):
    with pytest.raises(RuntimeError):
        with session_scope(migrated_engine) as session:
            session.add(a_participant("p-2"))
            session.flush()
            raise RuntimeError("boom")
    with Session(migrated_engine) as session:
        assert session.get(Participant, "p-2") is None


def test_idempotency_key_is_unique_per_actor_and_scope(migrated_engine):
    with session_scope(migrated_engine) as session:
        session.add(IdempotencyRecord(actor="t1", scope="participants", key="k", request_sha256="a", resource_id="p-1"))
        session.add(IdempotencyRecord(actor="t2", scope="participants", key="k", request_sha256="a", resource_id="p-2"))
    with pytest.raises(IntegrityError):
        with session_scope(migrated_engine) as session:
            session.add(
                IdempotencyRecord(actor="t1", scope="participants", key="k", request_sha256="b", resource_id="p-3")
            )


def test_tokens_are_stored_hashed_and_checked(migrated_engine):
    with session_scope(migrated_engine) as session:
        row, plaintext = issue_token(session, name="front desk", role="staff")
        expired, expired_plain = issue_token(session, name="old", role="staff", expires_at=utcnow() - timedelta(days=1))
    secret = plaintext.rsplit("_", 1)[1]
    with Session(migrated_engine) as session:
        stored = session.exec(select(ApiToken)).all()
        assert all(secret not in (t.secret_sha256 + t.id + t.name) for t in stored)
        assert authenticate(session, plaintext).role == "staff"
        with pytest.raises(TokenRejected, match="not valid"):
            authenticate(session, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B"))
        with pytest.raises(TokenRejected, match="expired"):
            authenticate(session, expired_plain)
        with pytest.raises(TokenRejected, match="malformed"):
            authenticate(session, "Bearer-nonsense")
    with session_scope(migrated_engine) as session:
        session.get(ApiToken, row.id).revoked_at = utcnow()
    with Session(migrated_engine) as session:
        with pytest.raises(TokenRejected, match="revoked"):
            authenticate(session, plaintext)


def test_unknown_role_is_refused(migrated_engine):
    with Session(migrated_engine) as session:
        with pytest.raises(ValueError, match="unknown role"):
            issue_token(session, name="x", role="superuser")
