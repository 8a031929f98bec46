"""Issue 12.3: nothing a lab sends is dropped, and a lab may only send as itself.

A resend is a replay only when its body is the same; the same control id with another body is
stored, held as "conflicting-control-id" and answered AE. A lab token is bound to the MSH-3/MSH-4
it sends as; a message claiming another sender is stored and answered AR.
"""

import asyncio
import hashlib

from sqlmodel import Session, select

from api.tokens import issue_token
from domain.hl7 import MllpDecoder, mllp_frame, parse_ack
from ingest.lab import LabIngest
from ingest.mllp import serve_mllp
from store.db import session_scope
from store.models import ApiToken, LabMessage, LabResult
from tests.api.test_lab import DOB, collected, oru, post_hl7, quarantine, screening

NAMES = ("Quintanilla", "Verhoeven", "Marisol", DOB.replace("-", ""))


def rows(stack, control: str) -> list[LabMessage]:
    with Session(stack.engine) as session:
        return list(
            session.exec(select(LabMessage).where(LabMessage.control_id == control).order_by(LabMessage.id)).all()
        )


def results_of(stack, message_id: int) -> list[LabResult]:
    with Session(stack.engine) as session:
        return list(session.exec(select(LabResult).where(LabResult.lab_message_id == message_id)).all())


async def two_collected(stack):
    first = await collected(stack)
    second = await collected(stack)
    return first, second


async def test_same_control_id_other_body_is_stored_held_and_answered_ae(stack):
    (pid_a, sid_a, spec_a), (pid_b, sid_b, spec_b) = await two_collected(stack)
    first_text, first = await post_hl7(stack, oru("CTL-1", spec_a, pid_a))
    assert first.ack_code == "AA"

    text, ack = await post_hl7(stack, oru("CTL-1", spec_b, pid_b))  # another participant's specimen
    assert ack.ack_code == "AE" and ack.original_control_id == "CTL-1"
    assert "control id" in ack.error_texts[0] and "different" in ack.error_texts[0]
    assert not any(word in text for word in (*NAMES, pid_b, spec_b))  # the ACK carries no PHI

    stored = rows(stack, "CTL-1")
    assert len(stored) == 2 and spec_b in stored[1].raw  # kept, as its own row
    assert stored[1].ack_code == "AE"
    [held] = [q for q in await quarantine(stack, "conflicting-control-id") if q["lab_message_id"] == stored[1].id]
    assert f"lab message {stored[0].id}" in held["reason"]
    assert (await screening(stack, sid_b))["results"] == []  # not filed on anyone
    assert len((await screening(stack, sid_a))["results"]) == 1

    # Resending either one changes nothing and answers as before.
    again_text, again = await post_hl7(stack, oru("CTL-1", spec_b, pid_b))
    assert again.ack_code == "AE" and again_text == text
    first_again_text, first_again = await post_hl7(stack, oru("CTL-1", spec_a, pid_a))
    assert first_again.ack_code == "AA" and first_again_text == first_text
    assert len(rows(stack, "CTL-1")) == 2
    assert len(await quarantine(stack, "conflicting-control-id")) == 1

    # Staff verify it and attach it: the result that would have been lost is filed.
    attached = await stack.http.post(
        f"/lab/quarantine/{held['id']}/resolve",
        json={"action": "attach", "screening_id": sid_b, "note": "lab confirmed: reused control id, specimen is B's"},
        headers=stack.auth("staff"),
    )
    assert attached.status_code == 200, attached.text
    assert (await screening(stack, sid_b))["final_outcome"] == "negative"


async def test_a_resend_with_other_line_endings_is_a_replay(stack):
    pid, sid, specimen = await collected(stack)
    text = oru("EOL-1", specimen, pid)
    first_text, first = await post_hl7(stack, text)
    assert first.ack_code == "AA"
    resent_text, resent = await post_hl7(stack, "\r\n".join(text.split("\r")) + "\n\n")
    assert resent.ack_code == "AA" and resent_text == first_text
    assert len(rows(stack, "EOL-1")) == 1 and len((await screening(stack, sid))["results"]) == 1


async def test_json_same_message_id_other_body_is_held(stack):
    (pid_a, sid_a, spec_a), (pid_b, sid_b, spec_b) = await two_collected(stack)
    results = [
        {"code": "3393-6", "value": 10, "units": "ng/mL", "cutoff": 150},
        {"code": "2161-8", "value": 90, "units": "mg/dL"},
        {"code": "2965-2", "value": 1.012},
        {"code": "2756-5", "value": 6.5},
    ]
    body = {
        "lab_id": "ACME REFERENCE LAB",
        "message_id": "J-1",
        "specimen_id": spec_a,
        "result_status": "F",
        "participant_id": pid_a,
        "results": results,
    }
    first = await stack.http.post("/lab/results", json=body, headers=stack.auth("lab"))
    assert first.status_code == 200 and first.json()["ack_code"] == "AA", first.text
    other = {**body, "specimen_id": spec_b, "participant_id": pid_b}
    second = await stack.http.post("/lab/results", json=other, headers=stack.auth("lab"))
    assert second.status_code == 200, second.text
    answer = second.json()
    assert answer["ack_code"] == "AE" and answer["replayed"] is False
    assert [o["reason_code"] for o in answer["outcomes"]] == ["conflicting-control-id"]
    assert len(rows(stack, "J-1")) == 2
    assert (await screening(stack, sid_b))["results"] == []
    assert len(await quarantine(stack, "conflicting-control-id")) == 1


async def bound_token(stack, application: str, facility: str) -> str:
    response = await stack.http.post(
        "/tokens",
        json={
            "name": f"{facility} interface",
            "role": "lab",
            "sender_application": application,
            "sender_facility": facility,
        },
        headers=stack.auth("admin"),
    )
    assert response.status_code == 201, response.text
    assert response.json()["sender_facility"] == facility
    return response.json()["token"]


async def test_a_lab_token_sends_only_as_its_registered_sender(stack):
    (pid_a, sid_a, spec_a), (pid_b, sid_b, spec_b) = await two_collected(stack)
    # The test lab token is registered to ACMELAB / ACME REFERENCE LAB; it claims to be another lab.
    text, ack = await post_hl7(stack, oru("SND-1", spec_a, pid_a, facility="OTHER LAB"))
    assert ack.ack_code == "AR" and "OTHER LAB" in ack.error_texts[0] and "registered" in ack.error_texts[0]
    assert not any(word in text for word in (*NAMES, pid_a, spec_a))
    [row] = rows(stack, "SND-1")
    assert row.status == "rejected" and spec_a in row.raw and results_of(stack, row.id) == []
    assert any(q["lab_message_id"] == row.id for q in await quarantine(stack, "sender-not-registered"))
    assert (await screening(stack, sid_a))["results"] == []

    # The impostor used up nothing: the real OTHER LAB sends the same control id and is accepted.
    other = await bound_token(stack, "ACMELAB", "OTHER LAB")
    response = await stack.http.post(
        "/lab/hl7",
        content=oru("SND-1", spec_b, pid_b, facility="OTHER LAB").encode(),
        headers={"Authorization": f"Bearer {other}", "Content-Type": "text/plain"},
    )
    assert parse_ack(response.text).ack_code == "AA", response.text
    assert len((await screening(stack, sid_b))["results"]) == 1

    # The JSON route checks lab_id against the registered facility: refused, stored.
    body = {
        "lab_id": "OTHER LAB",
        "message_id": "SND-2",
        "specimen_id": spec_a,
        "result_status": "F",
        "participant_id": pid_a,
        "results": [{"code": "3393-6", "value": 10}],
    }
    refused = await stack.http.post("/lab/results", json=body, headers=stack.auth("lab"))
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    assert "OTHER LAB" in refused.json()["detail"] and "stored" in refused.json()["detail"]
    assert len(rows(stack, "SND-2")) == 1


async def test_an_unregistered_lab_token_is_answered_ar_and_its_message_kept(stack):
    pid, sid, specimen = await collected(stack)
    with session_scope(stack.engine) as session:  # a lab token from before senders were registered
        session.add(
            ApiToken(id="legacy0lab01", name="old lab", role="lab", secret_sha256=hashlib.sha256(b"s3cret").hexdigest())
        )
    headers = {"Authorization": "Bearer iop_legacy0lab01_s3cret", "Content-Type": "text/plain"}
    response = await stack.http.post("/lab/hl7", content=oru("OLD-1", specimen, pid).encode(), headers=headers)
    ack = parse_ack(response.text)
    assert ack.ack_code == "AR" and "not registered to a sending facility" in ack.error_texts[0]
    [row] = rows(stack, "OLD-1")
    assert row.status == "rejected" and row.token_id == "legacy0lab01"
    assert (await screening(stack, sid))["results"] == []


async def test_token_creation_binds_lab_tokens_to_a_sender(stack):
    admin = stack.auth("admin")
    unbound = await stack.http.post("/tokens", json={"name": "lab", "role": "lab"}, headers=admin)
    assert unbound.status_code == 422 and "sender_facility" in unbound.json()["detail"]
    staff = await stack.http.post(
        "/tokens",
        json={"name": "desk", "role": "staff", "sender_facility": "X", "sender_application": "Y"},
        headers=admin,
    )
    assert staff.status_code == 422 and "lab" in staff.json()["detail"]
    await bound_token(stack, "LAB", "ACME LAB")
    listed = (await stack.http.get("/tokens", headers=admin)).json()["items"]
    assert {"sender_application": "LAB", "sender_facility": "ACME LAB"}.items() <= next(
        t for t in listed if t["sender_facility"] == "ACME LAB"
    ).items()


async def test_mllp_listener_answers_for_its_lab_token(stack):
    (pid_a, sid_a, spec_a), _ = await two_collected(stack)
    with session_scope(stack.engine) as session:
        row, _ = issue_token(
            session, name="mllp", role="lab", sender_application="ACMELAB", sender_facility="ACME REFERENCE LAB"
        )
    server = await serve_mllp(LabIngest(stack.engine, stack.temporal), "127.0.0.1", 0, token_id=row.id)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        acks: list[str] = []
        decoder = MllpDecoder()
        for count, text in enumerate((oru("ML-1", spec_a, pid_a, facility="OTHER LAB"), oru("ML-2", spec_a, pid_a))):
            writer.write(mllp_frame(text))
            await writer.drain()
            while len(acks) <= count:
                acks += decoder.feed(await reader.read(65536))
        writer.close()
    assert [parse_ack(a).ack_code for a in acks] == ["AR", "AA"]
    assert rows(stack, "ML-1")[0].token_id == row.id and rows(stack, "ML-2")[0].transport == "mllp"


async def test_two_bodies_under_one_control_id_at_once_file_one_and_hold_the_other(stack):
    (pid_a, sid_a, spec_a), (pid_b, sid_b, spec_b) = await two_collected(stack)
    answers = await asyncio.gather(
        post_hl7(stack, oru("RACE-1", spec_a, pid_a)), post_hl7(stack, oru("RACE-1", spec_b, pid_b))
    )
    assert sorted(a[1].ack_code for a in answers) == ["AA", "AE"]
    assert len(rows(stack, "RACE-1")) == 2
    filed = [len((await screening(stack, sid))["results"]) for sid in (sid_a, sid_b)]
    assert sorted(filed) == [0, 1]
