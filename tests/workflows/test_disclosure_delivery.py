"""Delivery through outages, 410 and revocation, on the time-skipping server with a real receiver."""

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from activities.disclosure import DisclosureActivities
from domain.consent import consent_from_dict, consent_to_dict, revoke
from domain.report_facts import ReportFacts
from domain.webhook_signing import new_webhook_secret
from iop.codec import seal_text
from iop.worker import build_worker
from store.db import session_scope
from store.models import ConsentRecord, Disclosure, Recipient
from tests.conftest import TEST_KEYS
from tests.ports import free_port
from tests.receiver import Receiver, webhook_receiver
from tests.workflows.scenarios import record_participant
from tests.workflows.test_screening_program import skip
from workflows.contracts.disclosure import DisclosureEvent, DisclosureInput, disclosure_workflow_id
from workflows.disclosure import DisclosureWorkflow


def setup_records(engine, url: str, secret: str) -> tuple[str, str, str]:
    pid = f"p-{secrets.token_hex(4)}"
    record_participant(engine, pid)
    return setup_records_for(engine, pid, url, secret, ["missed-tests"])


def setup_records_for(engine, pid: str, url: str, secret: str, categories: list[str]) -> tuple[str, str, str]:
    """A webhook recipient wanting `categories` and a consent covering them for a year."""
    rid, cid = f"r-{secrets.token_hex(3)}", f"c-{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.add(
            Recipient(
                id=rid,
                name="drug court",
                kind="court",
                delivery="webhook",
                url=url,
                secret_sealed=seal_text(TEST_KEYS, secret),
                categories=categories,
            )
        )
        session.flush()
        consent = consent_from_dict(
            {
                "consent_id": cid,
                "participant_id": pid,
                "recipient_id": rid,
                "recipient_kind": "court",
                "categories": categories,
                "purpose": "monitoring",
                "disclosing_program": "Northside IOP",
                "signer": "participant",
                "signed_at": (now - timedelta(days=1)).isoformat(),
                "signature_method": "electronic",
                "effective_from": (now - timedelta(days=1)).isoformat(),
                "expires_at": (now + timedelta(days=90)).isoformat(),
            }
        )
        session.add(
            ConsentRecord(
                id=cid, participant_id=pid, recipient_id=rid, consent=consent_to_dict(consent), created_by="test"
            )
        )
    return pid, rid, cid


async def start_delivery(env, engine, pid: str):
    event = DisclosureEvent(
        pid,
        "missed-tests",
        f"s-{pid}",
        ReportFacts(scheduled_on="2026-11-20", window_closed_at="2026-11-20T16:00:00+00:00"),
    )
    [plan] = DisclosureActivities(engine, TEST_KEYS).plan_disclosures(event)
    return await env.client.start_workflow(
        DisclosureWorkflow.run,
        DisclosureInput(plan.disclosure_id, pid, plan.recipient_id, "missed-tests"),
        id=disclosure_workflow_id(plan.disclosure_id),
        task_queue=env.task_queue,
    ), plan.disclosure_id


@pytest.fixture
async def env(time_env, records_engine, task_queue):
    async with build_worker(time_env.client, records_engine, task_queue):
        time_env.task_queue = task_queue
        yield time_env


async def test_two_days_down_then_delivered_exactly_once(env, records_engine):
    port, secret = free_port(), new_webhook_secret(secrets.token_bytes(32))
    receiver = Receiver(url=f"http://127.0.0.1:{port}/reports", secret=secret)
    pid, _, _ = setup_records(records_engine, receiver.url, secret)
    handle, disclosure_id = await start_delivery(env, records_engine, pid)
    await skip(env, timedelta(days=1))  # nothing listens: connection refused
    receiver.script = [(500, {})] * 50
    with webhook_receiver(port, receiver):
        await skip(env, timedelta(days=1))  # up, but failing
        failures = len(receiver.requests)
        receiver.script.clear()  # back for good
        result = await handle.result()
    assert failures >= 1 and result.status == "delivered" and result.attempts > failures
    assert list(receiver.kept) == [disclosure_id]
    assert {r["headers"]["webhook-id"] for r in receiver.requests} == {disclosure_id}
    with Session(records_engine) as session:
        row = session.get(Disclosure, disclosure_id)
    assert row.status == "delivered" and row.attempts == result.attempts


async def test_revocation_during_retries_cancels(env, records_engine):
    with webhook_receiver() as receiver:
        receiver.secret = new_webhook_secret(secrets.token_bytes(32))
        receiver.script = [(503, {"Retry-After": "3600"})] * 10
        pid, _, cid = setup_records(records_engine, receiver.url, receiver.secret)
        handle, disclosure_id = await start_delivery(env, records_engine, pid)
        await skip(env, timedelta(minutes=30))
        with session_scope(records_engine) as session:
            row = session.get(ConsentRecord, cid)
            row.consent = consent_to_dict(
                revoke(consent_from_dict(row.consent), datetime.now(UTC).isoformat(), "participant revoked")
            )
        await handle.signal(DisclosureWorkflow.cancel, "consent revoked")
        result = await handle.result()
    assert result.status == "cancelled" and receiver.kept == {}
    with Session(records_engine) as session:
        assert session.get(Disclosure, disclosure_id).status == "cancelled"
