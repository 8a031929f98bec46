"""A whole flow, then what an auditor sees: the timeline in order with actors, a CSV that
round-trips, no PHI in Temporal, logs or search attributes, and the codec endpoint at work."""

import asyncio
import base64
import csv
import io
import json
import logging
import subprocess
from datetime import UTC, datetime

import pytest
import uvicorn

from api.app import create_app
from domain.clock import local_date
from domain.disclosure_ids import disclosure_id
from iop.settings import Settings
from tests.api.test_disclosures import CASE, add_consent, add_recipient, consent_body, settled
from tests.api.test_lab import CONFIRMED_POSITIVE, URINE, oru, post_hl7
from tests.conftest import binary
from tests.helpers import enrollment
from tests.ports import free_port
from tests.receiver import webhook_receiver
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

NAME = ("Philomena", "Oyelaran-Whitcombe")
BIRTH = "1983-02-27"
PHONE = "+15555550177"
SECRETS = (*NAME, BIRTH, BIRTH.replace("-", ""), PHONE)


async def _notice_out(stack, sid: str) -> None:
    """Until the screening has handed its notice to the gateway (bounded: the workflow does it at once)."""
    screening = stack.temporal.get_workflow_handle_for(ScreeningWorkflow.run, screening_workflow_id(sid))
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        events = [e.what for e in (await screening.query(ScreeningWorkflow.status)).events]
        if any(what.startswith(("participant notified", "notice handed")) for what in events):
            return
        await asyncio.sleep(0.1)  # polling interval of a bounded wait
    raise AssertionError("the screening never sent its notice")


@pytest.fixture
async def flow(stack, caplog):
    """Enroll, for-cause screening, collection, HL7 result, review, disclosure, a dose."""
    caplog.set_level(logging.DEBUG)
    with webhook_receiver() as court:
        court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system=CASE["system"])
        body = enrollment(given_name=NAME[0], family_name=NAME[1], date_of_birth=BIRTH, phone=PHONE)
        pid = (await stack.http.post("/participants", json=body, headers=stack.auth("staff"))).json()["id"]
        await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
        sid = (
            await stack.http.post(
                f"/participants/{pid}/screenings", json={"reason": "odour of alcohol"}, headers=stack.auth("clinician")
            )
        ).json()["screening_id"]
        await _notice_out(stack, sid)  # a for-cause test collected on the spot is never noticed: collect after it
        specimen = (
            await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
        ).json()["specimen_id"]
        await post_hl7(
            stack,
            oru("HIST-1", specimen, pid, obx=CONFIRMED_POSITIVE, dob=BIRTH).replace(
                "Quintanilla-Verhoeven^Marisol", f"{NAME[1]}^{NAME[0]}"
            ),
        )
        await stack.http.post(
            f"/screenings/{sid}/review",
            json={"decision": "confirm", "explanation": "no Rx"},
            headers=stack.auth("clinician"),
        )
        delivered = await settled(stack, disclosure_id(pid, sid, "screening-results", court_id))
        assert delivered.status == "delivered"
        order = await stack.http.post(
            f"/participants/{pid}/medications",
            headers=stack.auth("clinician"),
            json={
                "drug": "buprenorphine-naloxone",
                "dose": 16,
                "unit": "mg",
                "route": "sublingual",
                "schedule": {"kind": "daily-observed"},
                "start_date": local_date(datetime.now(UTC), "America/New_York").isoformat(),  # the program's day
                "prescriber": "Dr. Okafor",
            },
        )
        order_id = order.json()["id"]
        await stack.http.post(
            f"/medications/{order_id}/dispenses",
            json={"kind": "observed-dose", "dose": 16, "unit": "mg"},
            headers=stack.auth("staff"),
        )
        yield pid, sid, order_id


async def test_timeline_holds_each_step_in_order_with_its_actor(stack, flow):
    pid, sid, order_id = flow
    response = await stack.http.get(f"/participants/{pid}/history", headers=stack.auth("auditor"))
    assert response.status_code == 200
    timeline = response.json()["items"]
    events = [(e["event"], e["role"]) for e in timeline]

    def position(event: str, actor_role: str | None = None) -> int:
        for i, (name, role) in enumerate(events):
            if name == event and actor_role in (None, role):
                return i
        raise AssertionError(f"{event} by {actor_role} not in the timeline: {events}")

    steps = [
        position("Testing program started"),
        position("Test ordered for cause", "clinician"),
        position("Test notice sent to the participant"),
        position("Urine specimen collected", "staff"),
        position("Final lab result received"),
        position("Result confirmed", "clinician"),
        position("Report delivered"),
        position("Observed dose recorded", "staff"),
    ]
    assert steps == sorted(steps), events
    delivery = timeline[position("Report delivered")]
    assert "accepted" in delivery["detail"] and delivery["actor"] == "the system"
    assert all(e["actor"] == "test clinician" for e in timeline if e["role"] == "clinician")  # names, not token ids
    # The audit trail keeps the request as it was made, for auditors.
    assert any(
        e["source"] == "audit"
        and e["action"] == "POST /screenings/{screening_id}/collection"
        and e["event"] == "Specimen collected"
        and e["kind"] == "technical"
        for e in timeline
    )
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)

    exported = await stack.http.get(f"/participants/{pid}/history?format=csv", headers=stack.auth("auditor"))
    assert exported.headers["content-type"].startswith("text/csv")
    # The export holds the same entries, plus the audit event of the first history read.
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[: len(timeline)] == timeline and len(rows) == len(timeline) + 1

    lab = await stack.http.get(f"/participants/{pid}/history", headers=stack.auth("lab"))
    assert lab.status_code == 403
    raw = await stack.http.get(f"/workflows/screening-{sid}/history", headers=stack.auth("auditor"))
    assert raw.status_code == 200 and "decoded" in json.dumps(raw.json()["items"])
    assert raw.json()["items"][0]["event_type"] == "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED"


async def test_no_phi_in_temporal_logs_or_search_attributes(stack, flow, dev_server_db, caplog):
    pid, sid, order_id = flow
    stored = b"".join(f.read_bytes() for f in dev_server_db.parent.glob(dev_server_db.name + "*"))
    assert f"participant-{pid}".encode() in stored
    for secret in SECRETS:
        assert secret.encode() not in stored, f"{secret} in the Temporal database"
        assert secret not in caplog.text, f"{secret} in the logs"
    for workflow_id in (f"participant-{pid}", f"screening-{sid}", f"medication-{order_id}"):
        described = await stack.temporal.get_workflow_handle(workflow_id).describe()
        attributes = str([(p.key.name, p.value) for p in described.typed_search_attributes])
        assert pid in attributes and not any(secret in attributes for secret in SECRETS)


async def test_temporal_cli_shows_decoded_payloads_through_the_codec_endpoint(stack, dev_env, tmp_path):
    pid = (await stack.enroll())["id"]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(
                Settings(data_dir=tmp_path, task_queue=stack.task_queue), engine=stack.engine, temporal=stack.temporal
            ),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    server.install_signal_handlers = lambda: None
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)  # uvicorn offers no awaitable start signal
        command = [
            binary("temporal"),
            "workflow",
            "show",
            "--workflow-id",
            f"participant-{pid}",
            "--output",
            "json",
            "--address",
            dev_env.client.service_client.config.target_host,
        ]
        encrypted = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        decoded = await asyncio.to_thread(
            subprocess.run,
            command
            + [
                "--codec-endpoint",
                f"http://127.0.0.1:{port}/codec",
                "--codec-auth",
                f"Bearer {stack.tokens['auditor']}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        denied = await asyncio.to_thread(
            subprocess.run,
            command
            + ["--codec-endpoint", f"http://127.0.0.1:{port}/codec", "--codec-auth", f"Bearer {stack.tokens['staff']}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.should_exit = True
        await serving
    assert encrypted.returncode == 0 and decoded.returncode == 0, decoded.stderr
    assert _started_with(encrypted.stdout)["metadata"]["encoding"] == base64.b64encode(b"binary/encrypted").decode()
    plain = _started_with(decoded.stdout)
    assert plain["metadata"]["encoding"] == base64.b64encode(b"json/plain").decode()
    assert json.loads(base64.b64decode(plain["data"]))["state"]["participant_id"] == pid
    # A staff token may not use the codec: the CLI gets no decoded payloads.
    assert denied.returncode != 0 or (
        _started_with(denied.stdout)["metadata"] == _started_with(encrypted.stdout)["metadata"]
    )


def _started_with(output: str) -> dict:
    """The input payload of the WorkflowExecutionStarted event in `temporal workflow show -o json`."""
    first = json.loads(output)["events"][0]
    return first["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
