"""Programs over the API, and a participant checking in by SMS through the inbound endpoint, over real HTTP
(uvicorn on a local port): a right PIN, a wrong one (same answer, audited, rate-limited), a forged signature."""

import asyncio
import base64
import contextlib
import re
import time as clock
from datetime import UTC
from urllib.parse import urlencode

import httpx
import pytest_asyncio
import uvicorn
from sqlmodel import Session, select

from domain.channel import NOT_RECOGNISED, twilio_signature
from domain.webhook_signing import sign
from store.models import AuditEvent, NotificationAttempt
from tests.helpers import api_stack

TWILIO_TOKEN = "twilio-auth-token-for-tests"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"w" * 32).decode()
ALL_DAY = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
PHONE = "+15555550123"


def program(program_id="county-court", floor=1, hours=None, closed=None):
    return {
        "program_id": program_id,
        "name": "County treatment court",
        "sites": {"north": {"timezone": "UTC", "hours": hours or ALL_DAY, "closed": closed or {}}},
        "phases": [
            {
                "name": "orientation",
                "tests_per_week": 3,
                "min_per_rolling_week": floor,
                "max_per_rolling_week": 5,
                "specimen_types": ["oral-fluid"],
                "check_in_required": True,
                "criteria": "first 30 days",
            },
            {"name": "stabilisation", "tests_per_week": 2, "min_per_rolling_week": 1, "max_per_rolling_week": 4},
        ],
        "collection_windows": {"urine": 8, "oral-fluid": 4},
        "note": "initial",
    }


@contextlib.asynccontextmanager
async def served(app):
    """The app on a real local port (its lifespan already runs in api_stack)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)  # startup, not synchronisation of the system under test
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def stack(dev_env, records_engine, task_queue, tmp_path):
    async with api_stack(
        dev_env.client,
        records_engine,
        task_queue,
        tmp_path,
        channel_twilio_auth_token=TWILIO_TOKEN,
        channel_webhook_secret=WEBHOOK_SECRET,
    ) as s:
        yield s


async def test_program_validation_versions_and_holiday_import(stack):
    admin, staff = stack.auth("admin"), stack.auth("staff")
    refused = await stack.http.post(
        "/programs", json=program(floor=3, hours={"mon": ["08:00", "17:00"], "wed": ["08:00", "17:00"]}), headers=admin
    )
    assert refused.status_code == 422
    assert "open 2 day(s) a week (Mon, Wed): 3 > 2" in refused.json()["detail"]
    assert (await stack.http.post("/programs", json=program(), headers=staff)).status_code == 403
    created = await stack.http.post("/programs", json=program(), headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\n"
        "SUMMARY:Christmas Day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    imported = await stack.http.post(
        "/programs/county-court/sites/north/closed-days",
        content=ics,
        headers={**admin, "Content-Type": "text/calendar"},
    )
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["version"] == 2 and body["definition"]["sites"]["north"]["closed"] == {"2026-12-25": "Christmas Day"}
    assert [v["version"] for v in body["versions"]] == [1, 2]
    read = await stack.http.get("/programs/county-court", headers=staff)
    assert read.status_code == 200 and read.json()["version"] == 2


async def _enrolled_with_pin(stack) -> str:
    created = await stack.http.post("/programs", json=program(), headers=stack.auth("admin"))
    assert created.status_code == 201, created.text
    participant = await stack.enroll(program="county-court", phase="orientation", phone=PHONE)
    assert participant["timezone"] == "UTC"
    pin = await stack.http.put(
        f"/participants/{participant['id']}/pin", json={"pin": "4821"}, headers=stack.auth("staff")
    )
    assert pin.status_code == 204, pin.text
    return participant["id"]


def twilio_post(base: str, fields: dict[str, str], token: str = TWILIO_TOKEN) -> dict:
    url = f"{base}/channel/inbound"
    return {
        "url": url,
        "content": urlencode(fields),
        "headers": {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(token, url, list(fields.items())),
        },
    }


async def test_pin_check_in_by_sms_over_real_http(stack):
    participant_id = await _enrolled_with_pin(stack)
    ordered = await stack.http.post(
        f"/participants/{participant_id}/screenings", json={"reason": "odour of alcohol"}, headers=stack.auth("staff")
    )
    assert ordered.status_code == 201, ordered.text
    screening_id = ordered.json()["screening_id"]
    async with served(stack.app) as base, httpx.AsyncClient() as http:
        answer = await http.post(
            **twilio_post(base, {"From": PHONE, "To": "+15555550999", "Body": "4821", "MessageSid": "SM1"})
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/xml")
        assert re.search(r"You must test today\. Report to the clinic by \d\d:\d\d [A-Z]{3,5}\.", answer.text), (
            answer.text
        )

        # Standard Webhooks JSON from another gateway: the same answer as JSON.
        body = b'{"from": "+15555550123", "text": "#4821#"}'
        stamp = int(clock.time())
        signed = await http.post(
            f"{base}/channel/inbound",
            content=body,
            headers={
                "Content-Type": "application/json",
                "webhook-id": "msg_1",
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(WEBHOOK_SECRET, "msg_1", stamp, body),
            },
        )
        assert signed.status_code == 200 and "must test today" in signed.json()["reply"]

        # A forged signature is refused before anything is read.
        forged = twilio_post(base, {"From": PHONE, "Body": "4821"}, token="not-the-token")
        refused = await http.post(**forged)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"

        # A wrong PIN and an unknown number get the very same answer.
        wrong = await http.post(**twilio_post(base, {"From": PHONE, "Body": "9999"}))
        unknown = await http.post(**twilio_post(base, {"From": "+15555550100", "Body": "4821"}))
        assert wrong.status_code == unknown.status_code == 200
        assert wrong.text == unknown.text and NOT_RECOGNISED in wrong.text
        # A run of wrong PINs locks the number: even the right PIN is refused for a while.
        for _ in range(4):
            await http.post(**twilio_post(base, {"From": PHONE, "Body": "1111"}))
        locked = await http.post(**twilio_post(base, {"From": PHONE, "Body": "4821"}))
        assert locked.status_code == 429 and NOT_RECOGNISED in locked.text and "4821" not in locked.text

    with Session(stack.engine) as session:
        told = session.exec(
            select(NotificationAttempt).where(
                NotificationAttempt.screening_id == screening_id, NotificationAttempt.status == "told"
            )
        ).all()
        events = session.exec(select(AuditEvent).where(AuditEvent.action == "POST /channel/inbound")).all()
    assert {t.channel for t in told} == {"check-in-sms"} and len(told) == 2
    details = [e.detail for e in events]
    assert details.count("check-in refused: unknown number or wrong PIN") == 6
    assert "forged or missing gateway signature (Twilio)" in details
    assert "check-in refused: too many wrong PINs from this number" in details
    assert all(PHONE not in (e.detail or "") for e in events)


async def test_call_list_is_for_staff_only(stack):
    assert (await stack.http.get("/call-list", headers=stack.auth("staff"))).status_code == 200
    assert (await stack.http.get("/call-list", headers=stack.auth("clinician"))).status_code == 403
    assert (await stack.http.get("/call-list", headers=stack.auth("auditor"))).status_code == 403


async def test_delivery_receipts_update_the_attempt_and_an_undelivered_notice_goes_to_the_call_list(stack):
    from store.db import session_scope
    from store.models import CallListEntry

    participant_id = await _enrolled_with_pin(stack)
    with session_scope(stack.engine) as session:
        for ref in ("SM41", "SM42"):
            session.add(
                NotificationAttempt(
                    notification_id=f"s-x-{ref}:test-required",
                    participant_id=participant_id,
                    screening_id=f"s-x-{ref}",
                    channel="sms-gateway",
                    status="accepted",
                    provider_ref=ref,
                )
            )
    async with served(stack.app) as base, httpx.AsyncClient() as http:

        def receipt(fields, token=TWILIO_TOKEN):
            url = f"{base}/channel/receipts"
            return http.post(
                url,
                content=urlencode(fields),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(token, url, list(fields.items())),
                },
            )

        assert (await receipt({"MessageSid": "SM41", "MessageStatus": "delivered"})).status_code == 204
        assert (await receipt({"MessageSid": "SM42", "MessageStatus": "undelivered"})).status_code == 204
        assert (await receipt({"MessageSid": "SM42", "MessageStatus": "delivered"}, token="x")).status_code == 403
        assert (await receipt({"MessageSid": "SM99", "MessageStatus": "delivered"})).status_code == 404
    with Session(stack.engine) as session:
        attempts = {a.provider_ref: a for a in session.exec(select(NotificationAttempt)).all()}
        calls = session.exec(select(CallListEntry)).all()
    assert attempts["SM41"].status == "delivered" and attempts["SM41"].receipt_at is not None
    assert attempts["SM42"].status == "undelivered"
    assert [c.screening_id for c in calls] == ["s-x-SM42"]
    listed = await stack.http.get("/call-list", headers=stack.auth("staff"))
    assert [(item["participant_id"], item["phone"]) for item in listed.json()["items"]] == [(participant_id, PHONE)]
    resolved = await stack.http.post(
        f"/call-list/{calls[0].id}/resolve", json={"outcome": "told by phone at 10:05"}, headers=stack.auth("staff")
    )
    assert resolved.status_code == 200 and resolved.json()["resolved_at"]
    assert (await stack.http.get("/call-list", headers=stack.auth("staff"))).json()["items"] == []
    again = await stack.http.post(
        f"/call-list/{calls[0].id}/resolve", json={"outcome": "told again"}, headers=stack.auth("staff")
    )
    assert again.status_code == 409 and "off the call list already" in again.json()["detail"]


async def test_a_gateway_retry_is_answered_once_by_its_message_id(stack):
    # A gateway sends no Idempotency-Key; it retries a post it got no answer to with the same message id
    # (Twilio MessageSid, Standard Webhooks webhook-id). The retry gets the first answer; nothing is done twice.
    participant_id = await _enrolled_with_pin(stack)
    ordered = await stack.http.post(
        f"/participants/{participant_id}/screenings", json={"reason": "odour of alcohol"}, headers=stack.auth("staff")
    )
    screening_id = ordered.json()["screening_id"]
    async with served(stack.app) as base, httpx.AsyncClient() as http:
        # Five deliveries of one wrong-PIN text count as one failure: the number is not locked.
        for _ in range(5):
            wrong = await http.post(**twilio_post(base, {"From": PHONE, "Body": "1111", "MessageSid": "SM-wrong"}))
            assert wrong.status_code == 200 and NOT_RECOGNISED in wrong.text
        assert wrong.headers.get("Idempotent-Replayed") == "true"
        sms = {"From": PHONE, "Body": "4821", "MessageSid": "SM-right"}
        first = await http.post(**twilio_post(base, sms))
        again = await http.post(**twilio_post(base, sms))
        assert first.status_code == again.status_code == 200 and "must test today" in first.text
        assert again.text == first.text and again.headers["content-type"] == first.headers["content-type"]
        assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers

        body = b'{"from": "+15555550123", "text": "4821"}'
        stamp = int(clock.time())
        signed = {
            "Content-Type": "application/json",
            "webhook-id": "msg_retry",
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(WEBHOOK_SECRET, "msg_retry", stamp, body),
        }
        one = await http.post(f"{base}/channel/inbound", content=body, headers=signed)
        two = await http.post(f"{base}/channel/inbound", content=body, headers=signed)
        assert one.status_code == two.status_code == 200 and one.json() == two.json()
        assert two.headers.get("Idempotent-Replayed") == "true"
    with Session(stack.engine) as session:
        told = session.exec(
            select(NotificationAttempt).where(
                NotificationAttempt.screening_id == screening_id, NotificationAttempt.status == "told"
            )
        ).all()
    assert len(told) == 2  # SM-right and msg_retry, each once


async def test_a_retried_receipt_is_applied_once(stack):
    from store.db import session_scope

    participant_id = await _enrolled_with_pin(stack)
    with session_scope(stack.engine) as session:
        session.add(
            NotificationAttempt(
                notification_id="s-y:test-required",
                participant_id=participant_id,
                screening_id="s-y",
                channel="sms-gateway",
                status="accepted",
                provider_ref="SM77",
            )
        )
    async with served(stack.app) as base, httpx.AsyncClient() as http:

        def receipt(fields):
            url = f"{base}/channel/receipts"
            return http.post(
                url,
                content=urlencode(fields),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, list(fields.items())),
                },
            )

        first = await receipt({"MessageSid": "SM77", "MessageStatus": "failed"})
        again = await receipt({"MessageSid": "SM77", "MessageStatus": "failed"})
        assert first.status_code == again.status_code == 204
        assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
        # Another status of the same message is another receipt, not a retry.
        later = await receipt({"MessageSid": "SM77", "MessageStatus": "delivered"})
        assert later.status_code == 204 and "Idempotent-Replayed" not in later.headers


async def test_cli_program_edits_write_the_audit_events_the_api_writes(stack, tmp_path, monkeypatch):
    """`iop program save` and `iop program import-ics` are audited as POST/PUT /programs and the closed-days
    import are over the API: the same action, subject and outcome, with the CLI's --by as the actor."""
    import json

    from typer.testing import CliRunner

    from iop import cli
    from iop.audit import process_keys
    from iop.settings import get_settings
    from store.audit import verify

    created = await stack.http.post("/programs", json=program("api-court"), headers=stack.auth("admin"))
    assert created.status_code == 201, created.text
    monkeypatch.setenv("IOP_DATA_DIR", str(tmp_path))  # the stack's audit key: one chain, one key
    monkeypatch.setenv("IOP_DATABASE_URL", str(stack.engine.url))
    get_settings.cache_clear()
    process_keys.cache_clear()
    try:
        path = tmp_path / "program.json"
        path.write_text(json.dumps(program("cli-court")))
        runner = CliRunner()
        saved = runner.invoke(cli.app, ["program", "save", str(path), "--by", "judge.clerk"])
        assert saved.exit_code == 0, saved.output
        again = runner.invoke(cli.app, ["program", "save", str(path), "--note", "second", "--by", "judge.clerk"])
        assert again.exit_code == 0, again.output
        path.write_text(json.dumps(program("cli-court", hours={"mon": ["08:00", "17:00"]})))
        bad = runner.invoke(cli.app, ["program", "save", str(path), "--by", "judge.clerk"])
        assert bad.exit_code != 0
        ics = tmp_path / "holidays.ics"
        ics.write_text(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\nSUMMARY:Christmas\r\n"
            "END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        imported = runner.invoke(cli.app, ["program", "import-ics", "cli-court", "north", str(ics)])
        assert imported.exit_code == 0, imported.output
    finally:
        get_settings.cache_clear()
        process_keys.cache_clear()
    with Session(stack.engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.subject_type == "program").order_by(AuditEvent.seq)
        ).all()
    api = next(e for e in events if e.subject_id == "api-court")
    cli_events = [
        (e.actor, e.role, e.action, e.outcome, e.subject_id, e.source, e.detail)
        for e in events
        if e.subject_id == "cli-court"
    ]
    assert (api.action, api.outcome, api.role, api.detail) == ("POST /programs", "201", "admin", "version 1 saved")
    user = f"cli:{__import__('os').environ.get('USER', '?')}"[:32]
    assert cli_events[:2] == [
        ("judge.clerk", "admin", "POST /programs", "201", "cli-court", "cli", "version 1 saved"),
        ("judge.clerk", "admin", "PUT /programs/{program_id}", "200", "cli-court", "cli", "version 2 saved"),
    ]
    assert cli_events[2][:5] == ("judge.clerk", "admin", "PUT /programs/{program_id}", "422", "cli-court")
    assert "open 1 day(s) a week (Mon): 2.0 > 1" in cli_events[2][6]
    assert cli_events[3] == (
        user,
        "admin",
        "POST /programs/{program_id}/sites/{site}/closed-days",
        "200",
        "cli-court",
        "cli",
        "version 3 saved",
    )
    # The version names who saved it, and the chain (API and CLI events alike) verifies under the one key.
    from store.models import ProgramVersion

    with Session(stack.engine) as session:
        versions = session.exec(
            select(ProgramVersion).where(ProgramVersion.program_id == "cli-court").order_by(ProgramVersion.version)
        ).all()
    assert [v.created_by for v in versions] == ["judge.clerk", "judge.clerk", user]
    assert verify(stack.engine).ok


async def test_colour_mode_check_in_tells_todays_colours_and_staff_read_them(stack):
    """A program that publishes daily colours: staff assign a colour; the participant's SMS check-in says whether
    today's colours are called yet, which are called and whether theirs is; staff read the same colours."""
    from datetime import datetime

    from temporalio.testing import ActivityEnvironment

    from activities.colours import ColourActivities
    from tests.conftest import TEST_KEYS
    from workflows.contracts.participant import ColourDayRequest

    admin, staff = stack.auth("admin"), stack.auth("staff")
    definition = {
        **program("colour-court"),
        "mode": "colour",
        "colours": [
            {"name": "red", "tests_per_week": 7, "min_per_rolling_week": 7, "max_per_rolling_week": 7},
            {"name": "blue", "tests_per_week": 0.5, "max_per_rolling_week": 1},
        ],
    }
    assert (await stack.http.post("/programs", json=definition, headers=admin)).status_code == 201
    red = await stack.enroll(program="colour-court", phase="orientation", phone=PHONE)
    blue = await stack.enroll(program="colour-court", phase="orientation", phone="+15555550124")
    for who, colour, pin in ((red, "red", "4821"), (blue, "blue", "5932")):
        assigned = await stack.http.put(f"/participants/{who['id']}/colour", json={"colour": colour}, headers=staff)
        assert assigned.status_code == 200 and assigned.json()["colour"] == colour
        assert (
            await stack.http.put(f"/participants/{who['id']}/pin", json={"pin": pin}, headers=staff)
        ).status_code == 204
    refused = await stack.http.put(f"/participants/{red['id']}/colour", json={"colour": "green"}, headers=staff)
    assert refused.status_code == 422 and "its colours are red, blue" in refused.json()["detail"]
    assert (
        await stack.http.put(
            f"/participants/{red['id']}/colour", json={"colour": "red"}, headers=stack.auth("clinician")
        )
    ).status_code == 403
    today = datetime.now(UTC).date().isoformat()  # the site's time zone is UTC
    async with served(stack.app) as base, httpx.AsyncClient() as http:
        # Enrolled after opening (00:00): today's colours are drawn with the first daily draw, not yet made.
        before = await http.post(**twilio_post(base, {"From": PHONE, "Body": "4821 colour", "MessageSid": "SMc1"}))
        assert "Today's colours are called when the clinic opens (00:00); check in again then." in before.text
        unread = await stack.http.get("/programs/colour-court/colours", headers=staff)
        assert unread.status_code == 200 and unread.json()["drawn"] is False and unread.json()["open"] is True
        # The day's draw, as the worker makes it at opening (verifiable rolls of the period's seed).
        answer = ActivityEnvironment().run(
            ColourActivities(stack.engine, TEST_KEYS).colour_day,
            ColourDayRequest("colour-court", 1, "north", today, red["id"]),
        )
        assert answer.own == "red" and "red" in answer.colours  # its floor of 7 a week calls red every day
        called = ", ".join(answer.colours)
        red_words = await http.post(**twilio_post(base, {"From": PHONE, "Body": "4821", "MessageSid": "SMc2"}))
        assert f"Colours testing today ({today}): {called}. Your colour (red) is called" in red_words.text
        blue_words = await http.post(
            **twilio_post(base, {"From": "+15555550124", "Body": "5932", "MessageSid": "SMc3"})
        )
        verdict = "is called" if "blue" in answer.colours else "is not called: no test today"
        assert f"Colours testing today ({today}): {called}. Your colour (blue) {verdict}" in blue_words.text
    read = await stack.http.get(
        "/programs/colour-court/colours", params={"site": "north", "day": today}, headers=stack.auth("clinician")
    )
    body = read.json()
    assert read.status_code == 200 and body["drawn"] and body["colours"] == answer.colours
    assert [(d["colour"], d["called"]) for d in body["draws"]] == [("red", True), ("blue", "blue" in answer.colours)]
    assert body["draws"][0]["reason"] == "floor-required" and body["program_version"] == 1
    future = await stack.http.get("/programs/colour-court/colours", params={"day": "2999-01-01"}, headers=staff)
    assert future.status_code == 422 and "not shown before" in future.json()["detail"]
    assert (await stack.http.get("/programs/colour-court/colours", headers=stack.auth("lab"))).status_code == 403
    not_colour = await stack.http.post("/programs", json=program("plain-court"), headers=admin)
    assert not_colour.status_code == 201
    plain = await stack.http.get("/programs/plain-court/colours", headers=staff)
    assert plain.status_code == 422 and "not in colour mode" in plain.json()["detail"]


async def test_a_program_keeps_its_reporting_settings_across_api_edits(stack):
    """forensic_default, report_presumptive and the breath cutoff are part of a program's definition over the API:
    a PUT that carries the whole definition back (as the dashboard's edits do) keeps them."""
    admin = stack.auth("admin")
    body = {
        **program("settings-court"),
        "forensic_default": False,
        "report_presumptive": True,
        "breath_alcohol_cutoff": 0.04,
    }
    created = await stack.http.post("/programs", json=body, headers=admin)
    assert created.status_code == 201, created.text
    definition = created.json()["definition"]
    assert (definition["forensic_default"], definition["report_presumptive"], definition["breath_alcohol_cutoff"]) == (
        False,
        True,
        0.04,
    )
    again = await stack.http.put(
        "/programs/settings-court", json={**definition, "make_up_hours": 12, "note": "x"}, headers=admin
    )
    assert again.status_code == 200, again.text
    kept = again.json()["definition"]
    assert (
        kept["forensic_default"],
        kept["report_presumptive"],
        kept["breath_alcohol_cutoff"],
        kept["make_up_hours"],
    ) == (False, True, 0.04, 12)
