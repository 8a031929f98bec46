"""Today's call list on the dashboard (server-rendered, no browser): who must be told by phone, the number
(front desk only), when the window closes in the participant's time zone, one click to record the call."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from store.models import CallListEntry, NotificationAttempt
from tests.ui.test_dashboard import audit_events, enroll_via_api, sign_in
from tests.ui.test_day_actions import flash


def add_call(live, pid: str, subject: str, closes: datetime, screening_id: str | None = None) -> int:
    """What the channel records when a notice cannot be delivered (api/routers/channel.py)."""
    with Session(live.engine) as session:
        entry = CallListEntry(subject_id=subject, participant_id=pid, screening_id=screening_id,
                              reason="the gateway reports the notice undelivered; tell them by phone",
                              window_closes_at=closes)
        session.add(entry)
        session.commit()
        return entry.id


async def test_call_list_shows_who_to_call_and_records_the_outcome_in_one_click(live):
    west = await enroll_via_api(live, given_name="Callable", family_name="Westerly", site="call-west",
                                timezone="America/Los_Angeles", phone="+15555550931")
    east = await enroll_via_api(live, given_name="Unreached", family_name="Eastman", site="call-east",
                                phone="+15555550932")
    async with live.http() as http:
        sid = (await http.post(f"/participants/{west}/screenings", json={"reason": "call list test"},
                               headers=live.auth("staff"))).json()["screening_id"]
    closes = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    reached = add_call(live, west, f"{sid}:test-required", closes, sid)
    missed = add_call(live, east, "n-ui-call-east", closes)
    local = closes.astimezone(ZoneInfo("America/Los_Angeles"))

    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["staff"])
        today = (await http.get("/ui/today")).text
        assert re.search(r'href="/ui/call-list"><span class="count">[1-9]', today)  # linked, with the count
        page = (await http.get("/ui/call-list")).text
        assert 'href="/ui/call-list" aria-current="page"' in page  # in the nav
        item = page[page.index(f'id="call-{reached}"'):page.index("</article>", page.index(f'id="call-{reached}"'))]
        assert "Callable Westerly" in item and 'href="tel:+15555550931"' in item
        assert f"{local:%H:%M} {local.tzname()}" in item and local.tzname() in ("PST", "PDT")  # the participant's zone
        assert "left)" in item and f'href="/ui/screenings/{sid}"' in item
        assert f'id="call-{missed}"' in page
        only_west = (await http.get("/ui/call-list", params={"site": "call-west"})).text
        assert f'id="call-{reached}"' in only_west and f'id="call-{missed}"' not in only_west
        west_today = (await http.get("/ui/today")).text  # the remembered site counts that site's calls only
        assert re.search(r'href="/ui/call-list"><span class="count">1</span>', west_today)
        await http.get("/ui/call-list", params={"site": ""})

        done = await http.post(f"/ui/call-list/{reached}/resolve", data={
            "csrf_token": csrf, "outcome": "reached", "note": "will come by 3"})
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
        told = session.exec(select(NotificationAttempt).where(NotificationAttempt.screening_id == sid,
                                                              NotificationAttempt.channel == "staff-call")).all()
        assert [t.status for t in told] == ["told"]  # reached on the phone counts as told; not reached does not
    resolved = [e for e in audit_events(live, "POST /call-list/{entry_id}/resolve") if e.participant_id in (west, east)]
    assert sorted(e.participant_id for e in resolved) == sorted([west, east])
    assert all(e.role == "staff" and e.outcome == "200" for e in resolved)


async def test_only_the_front_desk_sees_the_call_list_and_the_phone_numbers(live):
    pid = await enroll_via_api(live, given_name="Private", family_name="Number", phone="+15555550933")
    add_call(live, pid, "n-ui-call-private", datetime.now(timezone.utc) + timedelta(hours=2))
    for role in ("clinician", "auditor"):
        async with live.http() as http:
            await sign_in(http, live.tokens[role])
            today = (await http.get("/ui/today")).text
            assert "/ui/call-list" not in today
            page = await http.get("/ui/call-list")
            assert page.status_code == 403 and "+15555550933" not in page.text
