"""Migration 0007 on SQLite and PostgreSQL: disclosures recorded under the old ids survive it, and
the longer participant-scoped ids fit everywhere a disclosure id is stored."""

from sqlalchemy import insert as sa_insert
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session

from domain.disclosure_ids import MAX_DISCLOSURE_ID, disclosure_id
from store import audit
from store.db import make_engine, session_scope
from store.migrate import upgrade
from store.models import AlertRecord, AuditEvent, Disclosure, EmailOutbox, Participant, Recipient, utcnow
from tests.store.test_store import a_participant


def _revision_before(revision: str) -> str:
    from pathlib import Path

    from alembic.script import ScriptDirectory

    import store

    scripts = ScriptDirectory(str(Path(store.__file__).parent / "migrations"))
    return scripts.get_revision(revision).down_revision


BEFORE_0007 = _revision_before("0007")


def test_old_rows_survive_and_the_longest_new_ids_fit(db_url):
    upgrade(db_url, BEFORE_0007)
    engine = make_engine(db_url)
    try:
        old_id = "phase-change-1--phase-changes--r-1"
        with session_scope(engine) as session:
            # The participant as the table stood then: only the columns it had (the model has gained some since,
            # e.g. colour in 0023).
            had = {c["name"] for c in sa_inspect(session.connection()).get_columns("participants")}
            person = a_participant("p-1")
            session.execute(
                sa_insert(Participant.__table__).values(
                    {c.name: getattr(person, c.key) for c in Participant.__table__.columns if c.name in had}
                )
            )
            # Only the columns of that time (the model has gained some since, e.g. content_hash in 0020, notices
            # in 0025).
            session.execute(
                sa_insert(Recipient.__table__).values(
                    id="r-1",
                    name="court",
                    kind="court",
                    delivery="webhook",
                    categories=[],
                    status="active",
                    created_at=utcnow(),
                )
            )
            session.execute(
                sa_insert(Disclosure.__table__).values(
                    id=old_id,
                    participant_id="p-1",
                    recipient_id="r-1",
                    category="phase-changes",
                    event_ref="phase-change-1",
                    facts={"to_phase": "phase-2"},
                    status="delivered",
                    attempts=0,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        upgrade(db_url)
        longest = disclosure_id("p-" + "1" * 38, "e" * 120, "c" * 40, "r-" + "1" * 38, corrects=old_id)
        assert len(longest) == MAX_DISCLOSURE_ID
        with session_scope(engine) as session:
            session.add(
                Disclosure(
                    id=longest,
                    participant_id="p-1",
                    recipient_id="r-1",
                    category="phase-changes",
                    event_ref="e" * 120,
                    facts={},
                    corrects=longest,
                )
            )
            session.add(EmailOutbox(id=longest, recipient_id="r-1", to_address="x@example.org", subject="s", body="b"))
            session.add(AlertRecord(kind="disclosure-failed", participant_id="p-1", subject_id=longest, detail="d"))

        audit.append(
            engine,
            audit.AuditEntry(
                actor="system",
                role="system",
                action="disclosure.phase-changes",
                outcome="blocked",
                subject_type="disclosure",
                subject_id=longest,
                participant_id="p-1",
                detail="test",
            ),
        )
        with Session(engine) as session:
            assert session.get(Disclosure, old_id).facts == {"to_phase": "phase-2"}
            assert session.get(Disclosure, longest).corrects == longest
            assert session.get(AuditEvent, 1).subject_id == longest
    finally:
        engine.dispose()
