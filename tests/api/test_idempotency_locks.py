"""An Idempotency-Key never makes a route wait on the database's write lock for itself: the key's answer is
stored once the route's own session is closed (on SQLite that session may still hold the write lock when the
route returns). And a database that stays locked is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import secrets

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from store.db import make_engine, session_scope, writing
from store.models import IdempotentAnswer, LabMessage, QuarantineItem, WorklistItem
from tests.conftest import migrated
from tests.helpers import api_stack


def _short_busy_timeout(dbapi_connection, _record) -> None:
    # After the engine's own pragmas (30 s): a lock that is never released shows in a second, not in 30.
    dbapi_connection.execute("PRAGMA busy_timeout=1000")


@pytest.fixture
def impatient_engine(request, tmp_path):
    """SQLite's busy timeout is what these tests are about: records on SQLite only."""
    url = f"sqlite:///{tmp_path / 'records.db'}"
    migrated(url, request)
    engine = make_engine(url)
    event.listen(engine, "connect", _short_busy_timeout)
    yield engine
    engine.dispose()


@pytest_asyncio.fixture
async def stack(dev_env, impatient_engine, task_queue, tmp_path):
    async with api_stack(dev_env.client, impatient_engine, task_queue, tmp_path, with_worker=False) as s:
        yield s


def _worklist_item(engine) -> int:
    with session_scope(engine) as session:
        message = LabMessage(
            sender="ACMELAB^ACME", control_id=secrets.token_hex(4), transport="http", raw="MSH|...", raw_sha256="0" * 64
        )
        session.add(message)
        session.flush()
        held = QuarantineItem(lab_message_id=message.id, reason_code="unknown-specimen", reason="held")
        session.add(held)
        session.flush()
        ref = str(held.id)
    with Session(engine) as session:
        return session.exec(select(WorklistItem.id).where(WorklistItem.source_ref == ref)).one()


async def test_a_comment_with_an_idempotency_key_is_stored_once_and_replayed(stack):
    item = _worklist_item(stack.engine)
    headers = {**stack.auth("staff"), "Idempotency-Key": "comment-1"}
    first = await stack.http.post(f"/worklist/{item}/comments", json={"note": "left a voicemail"}, headers=headers)
    assert first.status_code == 201, first.text
    again = await stack.http.post(f"/worklist/{item}/comments", json={"note": "left a voicemail"}, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert [n["what"] for n in again.json()["notes"]].count("comment") == 1
    with Session(stack.engine) as session:
        [stored] = session.exec(select(IdempotentAnswer).where(IdempotentAnswer.key == "comment-1")).all()
        assert stored.status_code == 201
        row = session.get(WorklistItem, item)
    assert [n["text"] for n in row.notes if n["what"] == "comment"] == ["left a voicemail"]


@pytest.mark.parametrize("path", ["claim", "release", "resolve"])
async def test_every_worklist_post_with_a_key_answers(stack, path):
    item = _worklist_item(stack.engine)
    body = {"outcome": "duplicate"} if path == "resolve" else {}
    if path == "release":
        claimed = await stack.http.post(f"/worklist/{item}/claim", json={}, headers=stack.auth("staff"))
        assert claimed.status_code == 200, claimed.text
    headers = {**stack.auth("staff"), "Idempotency-Key": f"{path}-1"}
    answer = await stack.http.post(f"/worklist/{item}/{path}", json=body, headers=headers)
    # resolve of a held lab message is refused (409): it is resolved where it is held; the key is freed.
    assert answer.status_code == (409 if path == "resolve" else 200), answer.text
    retry = await stack.http.post(f"/worklist/{item}/{path}", json=body, headers=headers)
    assert retry.status_code == answer.status_code


async def test_a_locked_database_is_a_503_with_retry_after(stack):
    item = _worklist_item(stack.engine)
    # Another connection holds the write lock for the whole request (its audit event included: the answer is
    # then given by the outermost error handler, which a client over HTTP sees; the test client would raise).
    transport = httpx.ASGITransport(app=stack.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://iop.test") as http:
        with writing(stack.engine).connect() as holder:
            held = holder.begin()  # BEGIN IMMEDIATE (store/db.py): the write lock, until the rollback
            answer = await http.post(
                f"/worklist/{item}/comments",
                json={"note": "x"},
                headers={**stack.auth("staff"), "Idempotency-Key": "locked-1"},
            )
            held.rollback()
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json" and answer.headers["Retry-After"]
    assert "busy" in answer.json()["detail"]
    # Once the lock is gone, the retry with the same key goes through.
    retried = await stack.http.post(
        f"/worklist/{item}/comments", json={"note": "x"}, headers={**stack.auth("staff"), "Idempotency-Key": "locked-1"}
    )
    assert retried.status_code == 201, retried.text


def test_only_transient_database_errors_are_503():
    from api.problems import transient_database_error

    def error(message: str) -> OperationalError:
        return OperationalError("SELECT 1", {}, Exception(message))

    assert transient_database_error(error("database is locked"))
    assert transient_database_error(error("database table is locked"))
    assert not transient_database_error(error("no such table: participants"))
    assert not transient_database_error(ValueError("database is locked"))
