"""Today's call list on the dashboard (server-rendered, no browser): who must be told by phone, the number
(front desk only), when the window closes in the participant's time zone, one click to record the call."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from activities.screenings import ScreeningActivities
from store.models import CallListEntry, NotificationAttempt, WorklistItem
from tests.ui.test_dashboard import audit_events, enroll_via_api, sign_in
from tests.ui.test_day_actions import flash


def add_call(live, pid: str, subject: str, closes: datetime, screening_id: str | None = None) -> int:
    """What the channel records when a notice cannot be delivered (api/routers/channel.py)."""
    with Session(live.engine) as session:
        entry = CallListEntry(
            subject_id=subject,
            participant_id=pid,
            screening_id=screening_id,
            reason="the gateway reports the notice undelivered; tell them by phone",
            window_closes_at=closes,
        )
        session.add(entry)
        session.commit()
        return entry.id


async def test_call_list_shows_who_to_call_and_records_the_outcome_in_one_click(live):
    west = await enroll_via_api(
        live,
        given_name="Callable",
        family_name="Westerly",
        site="call-west",
        timezone="America/Los_Angeles",
        phone="+15555550931",
    )
    east = await enroll_via_api(
        live, given_name="Unreached", family_name="Eastman", site="call-east", phone="+15555550932"
    )
    async with live.http() as http:
        sid = (
            await http.post(
                f"/participants/{west}/screenings", json={"reason": "call list test"}, headers=live.auth("staff")
            )
        ).json()["screening_id"]
    closes = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    reached = add_call(live, west, f"{sid}:test-required", closes, sid)
    missed = add_call(live, east, "n-ui-call-east", closes)
    local = closes.astimezone(ZoneInfo("America/Los_Angeles"))

    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["staff"])
        today = (await http.get("/ui/today")).text
        assert re.search(r'href="/ui/call-list"><span class="count">[1-9]', today)  # linked, with the count
        page = (await http.get("/ui/call-list")).text
        assert 'href="/ui/call-list" aria-current="page"' in page  # in the nav
        item = page[page.index(f'id="call-{reached}"') : page.index("</article>", page.index(f'id="call-{reached}"'))]
        assert "Callable Westerly" in item and 'href="tel:+15555550931"' in item
        assert f"{local:%H:%M} {local.tzname()}" in item and local.tzname() in ("PST", "PDT")  # the participant's zone
        assert "left)" in item and f'href="/ui/screenings/{sid}"' in item
        assert f'id="call-{missed}"' in page
        only_west = (await http.get("/ui/call-list", params={"site": "call-west"})).text
        assert f'id="call-{reached}"' in only_west and f'id="call-{missed}"' not in only_west
        west_today = (await http.get("/ui/today")).text  # the remembered site counts that site's calls only
        assert re.search(r'href="/ui/call-list"><span class="count">1</span>', west_today)
        await http.get("/ui/call-list", params={"site": ""})

        done = await http.post(
            f"/ui/call-list/{reached}/resolve",
            data={"csrf_token": csrf, "outcome": "reached", "note": "will come by 3"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/ui/call-list"
        page = (await http.get("/ui/call-list")).text
        assert flash(page) == "success: Call to Callable Westerly recorded: reached and told to test."
        assert f'id="call-{reached}"' not in page and "reached and told to test: will come by 3" in page
        bad = await http.post(f"/ui/call-list/{missed}/resolve", data={"csrf_token": csrf, "outcome": "maybe"})
        refused = flash((await http.get(bad.headers["location"])).text)
        assert refused.startswith("error: <strong>Not done:</strong> Choose what happened")
        forged = await http.post(f"/ui/call-list/{missed}/resolve", data={"csrf_token": "x", "outcome": "not-reached"})
        assert forged.status_code == 403
        await http.post(f"/ui/call-list/{missed}/resolve", data={"csrf_token": csrf, "outcome": "not-reached"})

    with Session(live.engine) as session:
        first, second = session.get(CallListEntry, reached), session.get(CallListEntry, missed)
        assert first.outcome == "reached and told to test: will come by 3" and first.resolved_by
        assert second.outcome == "not reached" and second.resolved_at is not None
        told = session.exec(
            select(NotificationAttempt).where(
                NotificationAttempt.screening_id == sid, NotificationAttempt.channel == "staff-call"
            )
        ).all()
        assert [t.status for t in told] == ["told"]  # reached on the phone counts as told; not reached does not
    resolved = [e for e in audit_events(live, "POST /call-list/{entry_id}/resolve") if e.participant_id in (west, east)]
    assert sorted(e.participant_id for e in resolved) == sorted([west, east])
    assert all(e.role == "staff" and e.outcome == "200" for e in resolved)


async def test_only_the_front_desk_sees_the_call_list_and_the_phone_numbers(live):
    pid = await enroll_via_api(live, given_name="Private", family_name="Number", phone="+15555550933")
    add_call(live, pid, "n-ui-call-private", datetime.now(UTC) + timedelta(hours=2))
    for role in ("clinician", "auditor"):
        async with live.http() as http:
            await sign_in(http, live.tokens[role])
            today = (await http.get("/ui/today")).text
            assert "/ui/call-list" not in today
            page = await http.get("/ui/call-list")
            assert page.status_code == 403 and "+15555550933" not in page.text


async def test_a_message_left_keeps_the_entry_on_the_list_until_the_window_closes(live):
    """Left a message: not a notice, the entry stays on the list (call again) and shows the attempt; when the
    screening is settled (excused) or its window closes (not-notified) the system takes it off, and the call-list
    worklist item with it, the test itself going to the worklist as not notified (domain/calls.py)."""
    from workflows.screening import ScreeningWorkflow

    pid = await enroll_via_api(live, given_name="Voicemail", family_name="Only", site="msg-site", phone="+15555550934")
    other = await enroll_via_api(
        live, given_name="Elsewhere", family_name="Person", site="msg-other", phone="+15555550935"
    )
    async with live.http() as http:
        first, second = [
            (
                await http.post(
                    f"/participants/{pid}/screenings", json={"reason": f"call {n}"}, headers=live.auth("staff")
                )
            ).json()["screening_id"]
            for n in (1, 2)
        ]
    closes = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    entry = add_call(live, pid, f"{first}:test-required", closes, first)
    later = add_call(live, pid, f"{second}:test-required", closes + timedelta(hours=1), second)
    add_call(live, other, "n-ui-call-elsewhere", closes)

    async with live.http() as http:
        page = await http.get("/call-list", params={"site": "msg-site", "limit": 1}, headers=live.auth("staff"))
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "total", "limit", "offset", "next"}
        assert body["total"] == 2 and body["next"] is not None and "offset=1" in body["next"]
        assert [i["id"] for i in body["items"]] == [entry]
        rest = (
            await http.get(
                "/call-list", params={"site": "msg-site", "limit": 1, "offset": 1}, headers=live.auth("staff")
            )
        ).json()
        assert [i["id"] for i in rest["items"]] == [later] and rest["next"] is None
        assert all(i["site"] == "msg-site" for i in body["items"] + rest["items"])

        csrf = await sign_in(http, live.tokens["staff"])
        await http.get("/ui/call-list", params={"site": "msg-site"})  # remembered, as on Today
        left = await http.post(
            f"/ui/call-list/{entry}/resolve", data={"csrf_token": csrf, "outcome": "called", "note": "voicemail"}
        )
        page = (await http.get(left.headers["location"])).text
        assert flash(page) == (
            "success: Call to Voicemail Only recorded: called, left a message. They stay on the "
            "list until reached or the window closes."
        )
        card = page[page.index(f'id="call-{entry}"') : page.index("</article>", page.index(f'id="call-{entry}"'))]
        assert re.search(r"message left at \d\d:\d\d E[SD]T", card) and "called, left a message: voicemail" in card
        assert "Elsewhere Person" not in page  # the remembered site
        today = (await http.get("/ui/today")).text
        assert re.search(r'href="/ui/call-list"><span class="count">2</span>', today)
        await http.get("/ui/call-list", params={"site": ""})

        excused = await http.post(
            f"/screenings/{first}/excuse", json={"reason": "in hospital, letter on file"}, headers=live.auth("staff")
        )
        assert excused.status_code == 200, excused.text

    state = await live.temporal.get_workflow_handle(f"screening-{second}").query(ScreeningWorkflow.status)
    # The window of the second closes with nobody reached: the workflow saves it as not-notified.
    ScreeningActivities(live.engine).save_screening(replace(state, status="not-notified", revision=state.revision + 1))
    with Session(live.engine) as session:
        done, closed = session.get(CallListEntry, entry), session.get(CallListEntry, later)
        attempts = session.exec(
            select(NotificationAttempt).where(
                NotificationAttempt.notification_id == f"{first}:test-required",
                NotificationAttempt.channel == "staff-call",
            )
        ).all()
        items = {
            i.source_ref: i
            for i in session.exec(
                select(WorklistItem).where(
                    WorklistItem.source == "call-list", WorklistItem.source_ref.in_([str(entry), str(later)])
                )
            ).all()
        }
    assert [a.status for a in attempts] == ["message-left"]  # an attempt, not a notice
    assert done.resolved_by == "system" and "no call needed, the test was excused" in done.outcome
    assert done.outcome.startswith("called, left a message: voicemail")
    assert closed.resolved_by == "system" and "not-notified: on the worklist for a decision" in closed.outcome
    assert {k: i.status for k, i in items.items()} == {str(entry): "resolved", str(later): "resolved"}
