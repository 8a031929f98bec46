"""Lab interfaces (issue 13): what a lab is told when identifiers disagree, the MLLP listener's
peer allowlist and audit trail, body limits and a responsive event loop under a large message."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import httpx
import uvicorn
from sqlmodel import Session, col, select

from api.app import create_app
from domain.hl7 import MllpDecoder, mllp_frame, parse_ack
from ingest import mllp
from ingest.lab import LabIngest
from iop.settings import Settings
from store.models import AuditEvent, LabMessage
from tests.api.test_lab import DOB, collected, oru, post_hl7, quarantine
from tests.helpers import LAB_FACILITY

GENERIC = "identifiers do not match our records"
SECRET_PARTS = ("birth", "PID-7", "family", "PID-5", "1970", "19870314", DOB, "Quintanilla")


def _without_ids(texts) -> list[str]:
    return [re.sub(r"lr-\d+-\d+", "lr-N", t) for t in texts]


# --- 1. identifiers: the lab learns that they disagree, never which -------------------------------


async def test_a_lab_is_not_told_which_identifier_disagreed_staff_are(stack):
    pid, sid, specimen = await collected(stack)
    _, wrong_dob = await post_hl7(stack, oru("ID-1", specimen, pid, dob="1970-01-01"))
    family = oru("ID-2", specimen, pid).replace("Quintanilla-Verhoeven^Marisol", "Smith^Marisol")
    _, wrong_name = await post_hl7(stack, family)
    for ack in (wrong_dob, wrong_name):
        assert ack.ack_code == "AE"
        assert GENERIC in ack.error_texts[0]
        assert not any(part.lower() in " ".join(ack.error_texts).lower() for part in SECRET_PARTS), ack.error_texts
    # Whichever identifier was wrong, the lab gets the same answer: nothing to tell a right guess from.
    assert _without_ids(wrong_dob.error_texts) == _without_ids(wrong_name.error_texts)
    # Staff see which one in the quarantine.
    held = [q for q in await quarantine(stack, "identifier-mismatch") if q["screening_id"] == sid]
    reasons = sorted(q["reason"] for q in held)
    assert len(reasons) == 2 and any("birth date" in r for r in reasons) and any("family name" in r for r in reasons)


async def test_json_outcomes_and_their_replay_do_not_reveal_the_identifier(stack):
    pid, sid, specimen = await collected(stack)
    body = {
        "lab_id": LAB_FACILITY,
        "message_id": "ID-J1",
        "specimen_id": specimen,
        "result_status": "F",
        "participant_id": pid,
        "birth_date": "1970-01-01",
        "results": [{"code": "3393-6", "value": 10, "units": "ng/mL", "cutoff": 150}],
    }
    for attempt in range(2):  # the first answer, then the replay of the stored answer
        answer = await stack.http.post("/lab/results", json=body, headers=stack.auth("lab"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["replayed"] is bool(attempt)
        [outcome] = answer.json()["outcomes"]
        assert outcome["state"] == "quarantined" and GENERIC in outcome["reason"]
        assert not any(part.lower() in outcome["reason"].lower() for part in SECRET_PARTS), outcome
    assert any(
        "birth date" in q["reason"] for q in await quarantine(stack, "identifier-mismatch") if q["screening_id"] == sid
    )


# --- 2. MLLP: allowlist, audit -------------------------------------------------------------------


async def _exchange(port: int, frame: bytes) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        await writer.drain()
        decoder, acks = MllpDecoder(), []
        while not acks:
            data = await asyncio.wait_for(reader.read(65536), 60)
            if not data:
                return []  # closed by the listener without an answer
            acks = decoder.feed(data)
        return acks
    except ConnectionResetError:
        return []  # closed by the listener with the message unread
    finally:
        writer.close()


def _audit(engine) -> list[AuditEvent]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_the_allowlist_reads_addresses_and_networks():
    allow = mllp.parse_allowlist("127.0.0.1, 10.0.0.0/8,::1")
    assert allow.permits("127.0.0.1") and allow.permits("10.20.30.40") and allow.permits("::1")
    assert not allow.permits("11.0.0.1") and not allow.permits("192.168.1.1") and not allow.permits("garbage")
    assert not mllp.parse_allowlist("").permits("127.0.0.1")
    assert mllp.parse_allowlist("127.0.0.1").permits("::ffff:127.0.0.1")  # a v4 peer on a dual-stack socket


def _lab_token(stack) -> str:
    from store.models import ApiToken

    with Session(stack.engine) as session:
        return session.exec(select(ApiToken).where(ApiToken.role == "lab")).one().id


def test_the_listener_binds_loopback_and_admits_loopback_only_by_default():
    settings = Settings()
    assert settings.mllp_host == "127.0.0.1"
    assert mllp.parse_allowlist(settings.mllp_allow).permits("127.0.0.1")
    assert not mllp.parse_allowlist(settings.mllp_allow).permits("10.1.2.3")


async def test_mllp_messages_are_audited_like_http(stack):
    pid, sid, specimen = await collected(stack)
    before = len(_audit(stack.engine))
    server = await mllp.serve_mllp(
        LabIngest(stack.engine, stack.temporal), "127.0.0.1", 0, token_id=_lab_token(stack), allow="127.0.0.1"
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        acks = await _exchange(port, mllp_frame(oru("MLLP-A1", specimen, pid)))
    assert parse_ack(acks[0]).ack_code == "AA"
    events = _audit(stack.engine)[before:]
    [event] = [e for e in events if e.action.startswith("MLLP")]
    with Session(stack.engine) as session:
        stored = session.exec(select(LabMessage).where(LabMessage.control_id == "MLLP-A1")).one()
    assert event.outcome == "AA" and event.source == "127.0.0.1" and event.role == "lab"
    assert event.actor == _lab_token(stack)  # the listener's registered lab token
    assert event.subject_type == "lab-message" and event.subject_id == str(stored.id)
    flat = " ".join(str(getattr(event, f)) for f in ("actor", "action", "detail", "subject_id", "outcome"))
    assert not any(part in flat for part in SECRET_PARTS)


async def test_a_peer_not_on_the_allowlist_is_refused_and_audited_without_phi(stack):
    pid, _, specimen = await collected(stack)
    before = len(_audit(stack.engine))
    server = await mllp.serve_mllp(
        LabIngest(stack.engine, stack.temporal), "127.0.0.1", 0, token_id=_lab_token(stack), allow="10.0.0.0/8"
    )
    port = server.sockets[0].getsockname()[1]
    async with server:
        acks = await _exchange(port, mllp_frame(oru("MLLP-R1", specimen, pid)))
    assert acks == []  # the connection was closed, nothing answered
    with Session(stack.engine) as session:
        assert session.exec(select(LabMessage).where(LabMessage.control_id == "MLLP-R1")).first() is None
    [event] = [e for e in _audit(stack.engine)[before:] if e.action.startswith("MLLP")]
    assert event.outcome == "refused" and event.source == "127.0.0.1" and event.actor == "anonymous"
    flat = " ".join(str(getattr(event, f)) for f in ("actor", "action", "detail", "subject_id", "outcome"))
    assert "MLLP-R1" not in flat and not any(part in flat for part in SECRET_PARTS)


# --- 3. body limits, a responsive loop -----------------------------------------------------------


async def test_bodies_over_the_limit_are_refused_with_413(records_engine, dev_env, task_queue, tmp_path):
    from tests.helpers import issue_role_tokens

    settings = Settings(data_dir=tmp_path, task_queue=task_queue, lab_max_body_bytes=1000)
    app = create_app(settings, engine=records_engine, temporal=dev_env.client)
    tokens = issue_role_tokens(records_engine)
    lab = {"Authorization": f"Bearer {tokens['lab']}"}
    big = b"MSH|^~\\&|A|B|C|D|20261123||ORU^R01|BIG|P|2.5.1\r" + b"X" * 2000

    async def chunks():
        for start in range(0, len(big), 100):
            yield big[start : start + 100]

    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://iop.test") as http:
            declared = await http.post("/lab/hl7", content=big, headers={**lab, "Content-Type": "text/plain"})
            streamed = await http.post("/lab/hl7", content=chunks(), headers={**lab, "Content-Type": "text/plain"})
            as_json = await http.post(
                "/lab/results",
                content=b'{"lab_id": "' + b"x" * 2000 + b'"}',
                headers={**lab, "Content-Type": "application/json"},
            )
            small = await http.post("/lab/hl7", content=big[:500], headers={**lab, "Content-Type": "text/plain"})
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    for answer in (declared, streamed, as_json):
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "1000" in answer.json()["detail"]
    assert small.status_code == 200
    with Session(records_engine) as session:
        stored = session.exec(select(LabMessage).where(LabMessage.control_id == "BIG")).all()
    assert [len(m.raw) for m in stored] == [500]  # only the small one was taken in


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_healthz_keeps_answering_while_a_large_message_is_parsed(stack, tmp_path):
    """2.5 MB, 60,000 OBX: real HTTP against a live uvicorn. The parse runs in another process, so the API keeps
    answering all along (how fast is the benchmark's business, not a timed test's)."""
    obx = [f"NM|L{i}^^L||{i}|ng/mL" for i in range(60_000)]
    text = oru("BIG-OBX", "s-unknown-20260101-x.1", "p-x", obx=obx)
    assert 2_000_000 < len(text) < 5_000_000
    app = create_app(
        Settings(data_dir=tmp_path, task_queue=stack.task_queue), engine=stack.engine, temporal=stack.temporal
    )
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server.install_signal_handlers = lambda: None
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    posting = None
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)  # uvicorn offers no awaitable start signal
        async with httpx.AsyncClient(base_url=url, timeout=300) as http:
            posting = asyncio.create_task(
                http.post(
                    "/lab/hl7", content=text.encode(), headers={**stack.auth("lab"), "Content-Type": "text/plain"}
                )
            )
            waits = []
            while not posting.done():
                started = time.monotonic()
                health = await http.get("/healthz")
                waits.append(time.monotonic() - started)
                assert health.status_code == 200
            answer = await posting
    finally:
        if posting is not None and not posting.done():
            posting.cancel()
        server.should_exit = True
        await serving
    assert answer.status_code == 200 and parse_ack(answer.text).ack_code == "AE"
    # /healthz answered again and again while the post was in flight, not once before the parse began.
    assert len(waits) > 20, f"/healthz answered only {len(waits)} times while the message was parsed: {waits}"
    assert any("s-unknown" in q["reason"] for q in await quarantine(stack, "unknown-specimen"))


async def test_iop_hl7_listen_answers_audits_and_stops_on_sigterm(records_engine, dev_env, tmp_path):
    """The command itself, as the `mllp` service runs it: settings from the environment."""
    import os
    import signal
    import subprocess
    import sys

    from iop.codec import format_key
    from tests.conftest import TEST_KEYS

    probe = _free_socket()
    port = probe.getsockname()[1]
    probe.close()
    env = {
        **os.environ,
        "IOP_DATABASE_URL": records_engine.url.render_as_string(hide_password=False),
        "IOP_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "IOP_DATA_DIR": str(tmp_path),
        "IOP_CODEC_KEYS": format_key(TEST_KEYS[0]),
        "IOP_MLLP_PORT": str(port),
        "IOP_MLLP_ALLOW": "127.0.0.1",
    }
    from api.tokens import issue_token
    from store.db import session_scope
    from tests.helpers import LAB_APPLICATION, LAB_FACILITY

    with session_scope(records_engine) as session:
        token, _ = issue_token(
            session, name="mllp lab", role="lab", sender_application=LAB_APPLICATION, sender_facility=LAB_FACILITY
        )
        token_id = token.id
    listener = subprocess.Popen(
        [sys.executable, "-m", "iop.cli", "hl7", "listen", "--lab-token", token_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):  # until it listens (imports and connecting to Temporal take a while)
            assert listener.poll() is None, listener.stdout.read().decode()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        acks = await _exchange(port, mllp_frame(oru("CLI-1", "s-unknown-20260101-y.1", "p-x")))
        assert parse_ack(acks[0]).ack_code == "AE" and parse_ack(acks[0]).original_control_id == "CLI-1"
    finally:
        listener.send_signal(signal.SIGTERM)
        output = (await asyncio.to_thread(listener.communicate, timeout=60))[0].decode()
    assert listener.returncode == 0, output
    assert f"127.0.0.1:{port}" in output
    events = [e for e in _audit(records_engine) if e.action == "MLLP ORU^R01"]
    assert [(e.outcome, e.source) for e in events] == [("AE", "127.0.0.1")]
