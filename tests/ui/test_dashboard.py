"""The dashboard over plain HTTP against the live stack (no browser needed): sign-in and the
session cookie, CSRF, the role matrix, the API's refusals shown as they are, the audit trail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlmodel import Session, col, select

from store.models import AttendanceRecord, AuditEvent, ConsentRecord, Participant, QuarantineItem
from tests.api.test_lab import POSITIVE, URINE, oru
from tests.helpers import enrollment

TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "ui" / "templates"


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} field"
    return match.group(1)


async def sign_in(http: httpx.AsyncClient, token: str) -> str:
    """Sign in as a browser would; the session's CSRF token."""
    form = await http.get("/ui/login")
    answer = await http.post(
        "/ui/login", data={"login_token": hidden(form.text, "login_token"), "token": token, "next": "/ui/today"}
    )
    assert answer.status_code == 303, answer.text
    today = await http.get("/ui/today")
    assert today.status_code == 200, today.text
    return hidden(today.text, "csrf_token")


async def enroll_via_api(live, **overrides) -> str:
    async with live.http() as http:
        answer = await http.post("/participants", json=enrollment(**overrides), headers=live.auth("staff"))
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]


def audit_events(live, action_prefix: str) -> list[AuditEvent]:
    with Session(live.engine) as session:
        return list(
            session.exec(
                select(AuditEvent).where(col(AuditEvent.action).startswith(action_prefix)).order_by(col(AuditEvent.seq))
            ).all()
        )


async def test_signed_out_pages_lead_to_sign_in_and_the_cookie_holds_no_token(live):
    token_id, token = live.new_token("staff")
    async with live.http() as http:
        away = await http.get("/ui/participants")
        assert away.status_code == 303 and away.headers["location"] == "/ui/login?next=%2Fui%2Fparticipants"
        form = await http.get("/ui/login")
        assert form.status_code == 200
        assert "default-src 'none'" in form.headers["content-security-policy"]
        assert form.headers["x-frame-options"] == "DENY" and form.headers["cache-control"] == "no-store"
        # Every asset is vendored: nothing is loaded from another origin.
        for url in re.findall(r'(?:src|href)="([^"]+)"', form.text):
            assert url.startswith(("/ui/", "#", "data:")), url

        wrong = await http.post(
            "/ui/login", data={"login_token": hidden(form.text, "login_token"), "token": "iop_nope_nope"}
        )
        assert wrong.status_code == 401 and "The bearer token is not valid." in wrong.text

        form = await http.get("/ui/login")
        good = await http.post(
            "/ui/login",
            data={"login_token": hidden(form.text, "login_token"), "token": token, "next": "/ui/participants"},
        )
        assert good.status_code == 303 and good.headers["location"] == "/ui/participants"
        [session_cookie] = [c for c in good.headers.get_list("set-cookie") if c.startswith("iop_ui=")]
        flags = {part.strip().lower() for part in session_cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/ui"} <= flags
        assert token not in session_cookie and token.split("_", 2)[2] not in session_cookie  # the secret may hold "_"
        assert (await http.get("/ui/participants")).status_code == 200

    # Without the sign-in form's own cookie (a forged cross-site form), nobody is signed in.
    async with live.http() as other:
        forged = await other.post("/ui/login", data={"login_token": "x", "token": token})
        assert forged.status_code == 403 and "iop_ui=" not in forged.headers.get("set-cookie", "")

    signed_in = [e for e in audit_events(live, "POST /ui/login") if e.actor == token_id]
    assert [e.detail for e in signed_in] == ["dashboard sign-in"] and signed_in[0].role == "staff"
    assert any((e.detail or "").startswith("dashboard sign-in rejected") for e in audit_events(live, "POST /ui/login"))


async def test_every_action_needs_the_sessions_csrf_token(live):
    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["staff"])
        body = {k: v for k, v in enrollment(given_name="Csrf").items() if isinstance(v, str)}
        body["not_duplicate"] = "yes"  # the shared test phone number: not what this test is about
        missing = await http.post("/ui/participants", data=body)
        forged = await http.post("/ui/participants", data={**body, "csrf_token": "not-it"})
        cross_site = await http.post(
            "/ui/participants", data={**body, "csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        for refused in (missing, forged, cross_site):
            assert refused.status_code == 403 and "did not come from this dashboard" in refused.text
        with Session(live.engine) as session:
            assert session.exec(select(Participant).where(Participant.given_name == "Csrf")).first() is None
        # htmx sends the token as a header instead.
        by_header = await http.post("/ui/participants", data=body, headers={"X-CSRF-Token": csrf})
        assert by_header.status_code == 303 and by_header.headers["location"].startswith("/ui/participants/p-")


async def test_the_apis_refusal_is_shown_and_what_was_typed_is_kept(live):
    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["staff"])
        answer = await http.post(
            "/ui/participants",
            data={
                "csrf_token": csrf,
                "given_name": "Zed",
                "family_name": "Future",
                "date_of_birth": "2999-01-01",
                "site": "north",
                "phase": "phase-1",
                "idempotency_key": "ui-test-refusal",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/participants/new"
        form = await http.get("/ui/participants/new")
        assert "Not done:" in form.text and "date_of_birth must be a real past date" in form.text  # the API's words
        assert 'value="Zed"' in form.text and 'value="Future"' in form.text
        assert re.search(
            r'id="f-date_of_birth"[^>]*aria-describedby="f-date_of_birth-error"[^>]*aria-invalid="true"',
            form.text.replace("\n", " "),
        )
        again = await http.get("/ui/participants/new")
        assert "Not done:" not in again.text  # shown once


async def test_pages_and_actions_follow_the_role_matrix(live):
    pid = await enroll_via_api(live, given_name="Roles")
    async with live.http() as http:
        ordered = await http.post(
            f"/participants/{pid}/screenings", json={"reason": "role test"}, headers=live.auth("staff")
        )
        sid = ordered.json()["screening_id"]
        collected = await http.post(f"/screenings/{sid}/collection", json=URINE, headers=live.auth("staff"))
        specimen = collected.json()["specimen_id"]
        await http.post(
            "/lab/hl7",
            content=oru("UI-ROLES-1", specimen, pid, obx=POSITIVE).encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )

    pages = {}
    for role in ("auditor", "staff", "clinician", "lab"):
        async with live.http() as http:
            csrf = await sign_in(http, live.tokens[role])
            pages[role] = {
                "participant": await http.get(f"/ui/participants/{pid}"),
                "screening": await http.get(f"/ui/screenings/{sid}"),
                "today": await http.get("/ui/today"),
            }
            if role == "auditor":  # an action the API refuses to this role: its detail is what the user sees
                tried = await http.post(
                    f"/ui/participants/{pid}/screenings", data={"csrf_token": csrf, "reason": "auditors may not"}
                )
                assert tried.status_code == 303
                shown = await http.get(tried.headers["location"])
                assert "The auditor role may not do this" in shown.text

    def posts(page: httpx.Response) -> int:
        return page.text.count('method="post"') - 1  # less the sign-out form

    auditor, staff, clinician, lab = pages["auditor"], pages["staff"], pages["clinician"], pages["lab"]
    assert auditor["participant"].status_code == 200 and posts(auditor["participant"]) == 0
    assert "Roles" in auditor["participant"].text and posts(auditor["screening"]) == 0
    assert "Order a for-cause test" in staff["participant"].text and "Add a consent" in staff["participant"].text
    assert "The staff role cannot review results" in staff["screening"].text
    assert 'action="/ui/screenings/' + sid + '/review"' not in staff["screening"].text
    assert 'action="/ui/screenings/' + sid + '/review"' in clinician["screening"].text
    assert "Enroll a participant" in staff["today"].text and "Enroll a participant" not in clinician["today"].text
    assert lab["today"].status_code == 200 and "has no dashboard views" in lab["today"].text
    assert lab["participant"].status_code == 403 and "The lab role may not do this" in lab["participant"].text


async def test_a_dashboard_action_is_the_apis_action_in_the_audit_trail(live):
    token_id, token = live.new_token("staff")
    async with live.http() as http:
        csrf = await sign_in(http, token)
        body = {k: v for k, v in enrollment(given_name="Audited").items() if isinstance(v, str)}
        body["not_duplicate"] = "yes"
        answer = await http.post("/ui/participants", data={**body, "csrf_token": csrf, "idempotency_key": "ui-audit-1"})
        assert answer.status_code == 303
        pid = answer.headers["location"].rsplit("/", 1)[1]
    [outer] = [e for e in audit_events(live, "POST /ui/participants") if e.actor == token_id]
    [inner] = [e for e in audit_events(live, "POST /participants") if e.actor == token_id]
    assert (outer.outcome, inner.outcome) == ("303", "201")
    assert inner.request_id == outer.request_id and inner.role == "staff" and inner.participant_id == pid


async def test_revoking_the_token_or_signing_out_ends_the_session(live):
    token_id, token = live.new_token("staff")
    async with live.http() as http:
        await sign_in(http, token)
        async with live.http() as admin:
            revoked = await admin.post(f"/tokens/{token_id}/revoke", headers=live.auth("admin"))
            assert revoked.status_code == 200
        ended = await http.get("/ui/today")
        assert ended.status_code == 303 and "why=revoked" in ended.headers["location"]
        notice = await http.get(ended.headers["location"])
        assert "Your token has been revoked" in notice.text

    async with live.http() as http:
        csrf = await sign_in(http, live.new_token("clinician")[1])
        out = await http.post("/ui/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/ui/login?why=signed-out"
        assert (await http.get("/ui/today")).status_code == 303


async def test_quarantine_consents_and_for_cause_through_the_dashboard(live):
    pid = await enroll_via_api(live, given_name="Quarantine")
    async with live.http() as http:
        await http.post(
            "/lab/hl7",
            content=oru("UI-Q-1", "s-unknown-20260101-r.1", pid).encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
        csrf = await sign_in(http, live.tokens["staff"])
        page = await http.get("/ui/quarantine")
        with Session(live.engine) as session:
            # this test's own message (the live stack is shared with other files' quarantined specimens)
            item = session.exec(
                select(QuarantineItem).where(col(QuarantineItem.reason).contains("s-unknown-20260101-r.1"))
            ).one()
        assert f'id="item-{item.id}"' in page.text and "unknown-specimen" in page.text
        resolved = await http.post(
            f"/ui/quarantine/{item.id}/resolve",
            data={
                "csrf_token": csrf,
                "action": "reject",
                "note": "no such specimen was issued",
                "item_id": str(item.id),
            },
        )
        assert resolved.status_code == 303
        assert "rejected" in (await http.get("/ui/quarantine")).text

        signed = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        added = await http.post(
            f"/ui/participants/{pid}/consents",
            data={
                "csrf_token": csrf,
                "recipient_id": live.court_id,
                "categories": ["missed-tests", "screening-results"],
                "purpose": "treatment court",
                "disclosing_program": "Northside IOP",
                "signer": "the participant",
                "signed_at": signed,
                "signature_method": "wet-ink",
                "expires_at": "2030-01-01",
            },
        )
        assert added.status_code == 303
        with Session(live.engine) as session:
            consent = session.exec(select(ConsentRecord).where(ConsentRecord.participant_id == pid)).one()
        assert sorted(consent.consent["categories"]) == ["missed-tests", "screening-results"]
        assert consent.consent["expires_at"].startswith("2030-01-01T23:59:59")  # read in the program's zone
        revoked = await http.post(
            f"/ui/consents/{consent.id}/revoke",
            data={"csrf_token": csrf, "reason": "participant asked", "next": f"/ui/participants/{pid}#consents"},
        )
        assert revoked.status_code == 303 and revoked.headers["location"] == f"/ui/participants/{pid}#consents"
        page = await http.get(f"/ui/participants/{pid}")
        assert "revoked" in page.text and "participant asked" in page.text

        ordered = await http.post(f"/ui/participants/{pid}/screenings", data={"csrf_token": csrf, "reason": "odor"})
        assert ordered.status_code == 303
        page = await http.get(ordered.headers["location"])
        assert "For-cause test ordered" in page.text
        assert re.search(r"Awaiting collection|Selected, not yet notified", page.text)  # notified a moment later

        # Off-site redirects are never followed.
        away = await http.post(
            f"/ui/consents/{consent.id}/revoke",
            data={"csrf_token": csrf, "reason": "again", "next": "https://elsewhere.example/"},
        )
        assert away.headers["location"] == "/ui/today"


async def test_assets_are_vendored_and_served_without_a_session(live):
    async with live.http() as http:
        script = await http.get("/ui/static/htmx.min.js")
        assert script.status_code == 200 and "htmx" in script.text[:2000]
        assert (await http.get("/ui/static/htmx.LICENSE.txt")).status_code == 200
        assert (await http.get("/ui/static/app.css")).status_code == 200
        missing = await http.get("/ui/no-such-page")
        assert missing.status_code == 303  # signed out: to the sign-in page first
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert "://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), template.name


async def test_attendance_and_a_case_event_recorded_from_the_participant_page(live):
    pid = await enroll_via_api(live, given_name="Attendance")
    async with live.http() as http:
        scheduled = await http.post(
            "/attendance-sessions",
            headers=live.auth("staff"),
            json={
                "kind": "individual",
                "title": "Counselling session",
                "site": "north",
                "starts_at": (datetime.now(UTC) - timedelta(minutes=20)).isoformat(),
                "duration_minutes": 50,
                "facilitator": "A. Osei, LCSW",
                "participant_ids": [pid],
            },
        )
        assert scheduled.status_code == 201, scheduled.text
        [session] = scheduled.json()
        csrf = await sign_in(http, live.tokens["staff"])
        page = await http.get(f"/ui/participants/{pid}")
        assert f"/ui/attendance-sessions/{session['id']}/attendance" in page.text and "scheduled" in page.text
        refused = await http.post(
            f"/ui/attendance-sessions/{session['id']}/attendance",
            data={"csrf_token": csrf, "participant_id": pid, "status": "excused", "next": f"/ui/participants/{pid}"},
        )
        assert refused.status_code == 303
        assert "note" in (await http.get(refused.headers["location"])).text  # the API's refusal, shown
        recorded = await http.post(
            f"/ui/attendance-sessions/{session['id']}/attendance",
            data={
                "csrf_token": csrf,
                "participant_id": pid,
                "status": "late",
                "note": "",
                "next": f"/ui/participants/{pid}#attendance",
            },
        )
        assert recorded.status_code == 303
        page = await http.get(recorded.headers["location"])
        assert "Attendance recorded: late." in page.text and "1 of 1 recorded session(s) attended (1 late)" in page.text

        event = await http.post(
            f"/ui/participants/{pid}/case-events",
            data={
                "csrf_token": csrf,
                "kind": "supervision-ended",
                "occurred_at": "",
                "case_system": "",
                "note": "order",
            },
        )
        assert event.status_code == 303
        page = await http.get(event.headers["location"])
        assert "Recorded supervision-ended" in page.text and 'id="case-events"' in page.text
    with Session(live.engine) as session:
        assert (
            session.exec(select(AttendanceRecord).where(AttendanceRecord.participant_id == pid)).one().status == "late"
        )
