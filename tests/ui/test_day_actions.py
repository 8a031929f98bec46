"""The front desk's day through the dashboard (server-rendered, no browser): the worklist, finding a
participant from every page, the duplicate warning, and the actions that used to need the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from activities.records import RecordActivities
from domain.clock import local_date
from store.models import Participant, WorklistItem
from tests.helpers import enrollment
from tests.ui.test_dashboard import enroll_via_api, sign_in
from workflows.contracts.alerts import Alert

CSS = Path(__file__).resolve().parents[2] / "api" / "ui" / "static" / "app.css"


def flash(page: str) -> str:
    match = re.search(r'class="flash flash-(\w+)".*?<p>(.*?)</p>', page, re.S)
    assert match, "no flash message on the page"
    return f"{match.group(1)}: {' '.join(match.group(2).split())}"


async def test_worklist_page_claim_comment_resolve_and_filters(live):
    pid = await enroll_via_api(live, given_name="Worklisted", family_name="Person", phone="+15555550911")
    RecordActivities(live.engine).raise_alert(Alert("missed-doses", pid, "o-ui:2026-11-30", "3 doses missed in a row"))
    RecordActivities(live.engine).raise_alert(Alert("brand-new-kind", pid, "x-1", "something new"))
    with Session(live.engine) as session:
        item = session.exec(
            select(WorklistItem).where(WorklistItem.raw_kind == "missed-doses", WorklistItem.participant_id == pid)
        ).one()
    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["clinician"])
        page = await http.get("/ui/worklist", params={"kind": "missed-doses"})
        assert page.status_code == 200
        assert 'href="/ui/worklist" aria-current="page"' in page.text
        assert f'id="wl-{item.id}"' in page.text and "Missed doses: Worklisted Person" in page.text
        assert "Reach the participant today" in page.text and "3 doses missed in a row" in page.text
        assert "something new" not in page.text  # filtered by kind
        assert "Needs attention: Worklisted Person" in (await http.get("/ui/worklist", params={"kind": "other"})).text

        back = "/ui/worklist?kind=missed-doses"
        claimed = await http.post(f"/ui/worklist/{item.id}/claim", data={"csrf_token": csrf, "next": back})
        assert claimed.status_code == 303 and claimed.headers["location"] == back
        mine = await http.get("/ui/worklist", params={"mine": "1"})
        assert "Missed doses: Worklisted Person" in mine.text and "test clinician" in mine.text
        assert "claimed by you" in flash(mine.text)
        today = (await http.get("/ui/today")).text
        assert re.search(r'href="/ui/worklist\?mine=1"><span class="count">[1-9]', today)  # the morning's counts
        commented = await http.post(
            f"/ui/worklist/{item.id}/comments", data={"csrf_token": csrf, "note": "called, no answer", "next": back}
        )
        assert "comment added" in flash((await http.get(commented.headers["location"])).text)
        refused = await http.post(
            f"/ui/worklist/{item.id}/resolve",
            data={"csrf_token": csrf, "outcome": "participant-not-reached", "note": "", "next": back},
        )
        shown = await http.get(refused.headers["location"])
        assert flash(shown.text).startswith("error:") and "needs a note" in shown.text
        done = await http.post(
            f"/ui/worklist/{item.id}/resolve",
            data={"csrf_token": csrf, "outcome": "participant-contacted", "note": "will come tomorrow", "next": back},
        )
        page = await http.get(done.headers["location"])
        assert "resolved (participant contacted)" in flash(page.text) and f'id="wl-{item.id}"' not in page.text
        resolved = await http.get("/ui/worklist", params={"status": "resolved", "kind": "missed-doses"})
        assert "participant contacted" in resolved.text and "called, no answer" in resolved.text

    async with live.http() as http:  # the auditor reads the list; no claim, comment or resolve is offered
        await sign_in(http, live.tokens["auditor"])
        page = await http.get("/ui/worklist", params={"kind": "other"})
        assert "Needs attention: Worklisted Person" in page.text and "/ui/worklist/" not in page.text


async def test_find_a_participant_from_every_page(live):
    pid = await enroll_via_api(
        live,
        given_name="Findable",
        family_name="Zoltanova",
        date_of_birth="1969-12-01",
        phone="+15555550912",
        case_numbers=[{"system": "probation", "value": "PB-FIND-42"}],
    )
    async with live.http() as http:
        await sign_in(http, live.tokens["staff"])
        for page in ("/ui/today", "/ui/worklist", f"/ui/participants/{pid}"):
            html = (await http.get(page)).text
            assert 'role="search" aria-label="Find a participant"' in html and 'name="q"' in html, page
        for query in ("zoltanova", "12/01/1969", "PB-FIND-42"):
            found = await http.get("/ui/participants", params={"q": query})
            assert f'href="/ui/participants/{pid}"' in found.text and "1 participant(s)" in found.text, query


async def test_enrollment_warns_about_a_likely_duplicate(live):
    first = await enroll_via_api(
        live, given_name="Twice", family_name="Enrolled", date_of_birth="1975-05-05", phone="+15555550913"
    )
    body = {
        k: v
        for k, v in enrollment(given_name="twice", family_name="ENROLLED", date_of_birth="1975-05-05", phone="").items()
        if isinstance(v, str)
    }
    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["staff"])
        warned = await http.post("/ui/participants", data={**body, "csrf_token": csrf, "idempotency_key": "ui-dup-1"})
        assert warned.status_code == 303 and warned.headers["location"] == "/ui/participants/new#duplicates"
        form = await http.get("/ui/participants/new")
        assert f'href="/ui/participants/{first}"' in form.text and "same name and date of birth" in form.text
        assert 'value="twice"' in form.text  # what was typed is kept
        with Session(live.engine) as session:
            assert (
                len(
                    session.exec(select(Participant).where(Participant.family_name.in_(["Enrolled", "ENROLLED"]))).all()
                )
                == 1
            )
        same_phone = {**body, "given_name": "Other", "date_of_birth": "1980-01-01", "phone": "555 555 0913"}
        again = await http.post("/ui/participants", data={**same_phone, "csrf_token": csrf})
        assert again.headers["location"] == "/ui/participants/new#duplicates"
        assert "same phone number" in (await http.get("/ui/participants/new")).text
        anyway = await http.post(
            "/ui/participants", data={**body, "csrf_token": csrf, "idempotency_key": "ui-dup-1", "not_duplicate": "yes"}
        )
        assert anyway.status_code == 303 and anyway.headers["location"].startswith("/ui/participants/p-")


async def test_the_days_actions_from_the_participant_and_screening_pages(live):
    pid = await enroll_via_api(live, given_name="Busy", family_name="Day", phone="+15555550914")
    today = local_date(datetime.now(UTC), "America/New_York")
    async with live.http() as http:
        csrf = await sign_in(http, live.tokens["clinician"])
        page = (await http.get(f"/ui/participants/{pid}")).text
        for form in ("phase", "pauses", "discharge", "medications"):
            assert f'action="/ui/participants/{pid}/{form}"' in page, form
        assert f'action="/ui/participants/{pid}/check-in"' not in page  # check-in is the front desk's (API roles)

        async def post(path: str, **data) -> str:
            answer = await http.post(path, data={"csrf_token": csrf, **data})
            assert answer.status_code == 303, answer.text
            return flash((await http.get(answer.headers["location"])).text)

        assert (
            await post(f"/ui/participants/{pid}/phase", phase="phase-2", reason="30 days negative")
            == "success: Phase changed to phase-2."
        )
        start, end = today + timedelta(days=3), today + timedelta(days=5)
        assert "Random testing paused" in await post(
            f"/ui/participants/{pid}/pauses", start=start.isoformat(), end=end.isoformat(), reason="inpatient stay"
        )
        bad = await post(f"/ui/participants/{pid}/pauses", start=end.isoformat(), end=start.isoformat(), reason="x")
        assert bad.startswith("error:")
        assert "Medication order recorded" in await post(
            f"/ui/participants/{pid}/medications",
            drug="methadone",
            dose="60",
            unit="mg",
            route="oral",
            schedule="daily-observed",
            start_date=today.isoformat(),
            prescriber="Dr. Patel",
        )
        page = (await http.get(f"/ui/participants/{pid}")).text
        order_id = re.search(r'action="/ui/medications/([^/]+)/dose-change"', page).group(1)
        back = f"/ui/participants/{pid}#medications"
        assert (
            await post(f"/ui/medications/{order_id}/dose-change", dose="70", unit="mg", reason="cravings", next=back)
            == "success: Dose changed to 70 mg."
        )
        assert "Dosing is held" in await post(
            f"/ui/medications/{order_id}/reassessment", decision="hold", note="sedated", next=back
        )
        page = (await http.get(f"/ui/participants/{pid}")).text
        assert f'action="/ui/medications/{order_id}/reassessment"' in page and "Release the hold" in page
        assert "Hold released" in await post(
            f"/ui/medications/{order_id}/reassessment", decision="resume", note="alert and oriented", next=back
        )
        assert (
            await post(f"/ui/medications/{order_id}/stop", reason="taper complete", next=back)
            == "success: Medication order stopped."
        )

        ordered = await http.post(
            f"/participants/{pid}/screenings", json={"reason": "odor"}, headers=live.auth("staff")
        )
        sid = ordered.json()["screening_id"]
        screening = (await http.get(f"/ui/screenings/{sid}")).text
        assert f'action="/ui/screenings/{sid}/excuse"' in screening
        assert f'action="/ui/screenings/{sid}/refusal"' in screening
        assert (
            await post(f"/ui/screenings/{sid}/refusal", kind="refused-to-provide", detail="declined at the desk")
            == "success: Refusal recorded."
        )

        second = (
            await http.post(f"/participants/{pid}/screenings", json={"reason": "second"}, headers=live.auth("staff"))
        ).json()["screening_id"]
        assert (
            await post(f"/ui/screenings/{second}/excuse", reason="hospital admission, letter on file")
            == "success: Screening excused."
        )
        assert "Excused" in (await http.get(f"/ui/screenings/{second}")).text

        assert "Discharged" in await post(
            f"/ui/participants/{pid}/discharge", kind="completed", reason="finished the program"
        )
        page = (await http.get(f"/ui/participants/{pid}")).text
        assert re.search(r"Next daily draw</dt><dd>none: ", page)  # a discharged participant has no next draw
        assert f'action="/ui/participants/{pid}/phase"' not in page

    async with live.http() as http:  # the front desk checks people in
        csrf = await sign_in(http, live.tokens["staff"])
        other = await enroll_via_api(live, given_name="Checking", family_name="In", phone="+15555550915")
        answer = await http.post(f"/ui/participants/{other}/check-in", data={"csrf_token": csrf})
        assert answer.status_code == 303
        assert flash((await http.get(answer.headers["location"])).text).startswith("success: Checked in.")


def test_phone_sized_and_print_styles_exist():
    css = CSS.read_text()
    assert "@media print" in css and "@media (max-width: 30rem)" in css
    printed = css[css.index("@media print") :]
    assert ".site-nav" in printed and "form" in printed


async def test_a_confirmed_final_screening_reads_as_final_not_needing_review(live):
    from tests.api.test_lab import POSITIVE, URINE, oru

    pid = await enroll_via_api(live)  # the name and birth date the HL7 fixture carries
    async with live.http() as http:
        sid = (
            await http.post(
                f"/participants/{pid}/screenings", json={"reason": "review test"}, headers=live.auth("staff")
            )
        ).json()["screening_id"]
        specimen = (await http.post(f"/screenings/{sid}/collection", json=URINE, headers=live.auth("staff"))).json()[
            "specimen_id"
        ]
        filed = await http.post(
            "/lab/hl7",
            content=oru("UI-REVIEWED-1", specimen, pid, obx=POSITIVE).encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
        assert "MSA|AA" in filed.text, filed.text
        csrf = await sign_in(http, live.tokens["clinician"])
        before = (await http.get(f"/ui/screenings/{sid}")).text
        assert "needs clinician review before it is final" in before  # true while it waits
        reviewed = await http.post(
            f"/screenings/{sid}/review",
            headers=live.auth("clinician"),
            json={"decision": "confirm", "explanation": "no prescription on file"},
        )
        assert reviewed.status_code == 200 and reviewed.json()["status"] == "final", reviewed.text
        after = (await http.get(f"/ui/screenings/{sid}")).text
        current = after[: after.index('id="h-events"')]  # the result as it stands; the history below keeps its past
        assert "needs clinician review" not in current and "reviewed: confirmed" in current
        clinician_id = live.tokens["clinician"].split("_")[1]
        assert "confirm by test clinician" in after and f"by {clinician_id}" not in after  # a name, not a token id
        timeline = (await http.get(f"/ui/participants/{pid}/timeline")).text
        assert "by test clinician" in timeline and f"by {clinician_id}" not in timeline
        summary = (await http.get(f"/ui/participants/{pid}")).text  # the participant's page reads the same
        assert "needs clinician review" not in summary and "Awaiting review" not in summary
        # The final result's review can be reversed from the page: the outcome changes (issue 16 review).
        assert "Reverse the review" in after
        await http.post(
            f"/ui/screenings/{sid}/review",
            data={"csrf_token": csrf, "reverses": "true", "decision": "excuse", "explanation": "prescription found"},
        )
        reversed_page = (await http.get(f"/ui/screenings/{sid}")).text
        assert "Reversed to excuse by test clinician" in reversed_page


async def test_today_per_site_in_the_sites_time_zone_and_remembered(live):
    west = await enroll_via_api(
        live,
        given_name="Westward",
        family_name="Coast",
        site="west-coast",
        timezone="America/Los_Angeles",
        phone="+15555550917",
    )
    async with live.http() as http:
        await sign_in(http, live.tokens["staff"])
        page = (await http.get("/ui/today", params={"site": "west-coast"})).text
        assert "Program days in America/Los_Angeles" in page and 'value="west-coast"' in page
        day = local_date(datetime.now(UTC), "America/Los_Angeles")
        assert f'value="{day.isoformat()}"' in page  # the site's day, not New York's
        again = (await http.get("/ui/today")).text  # remembered for this sign-in
        assert 'value="west-coast"' in again and "America/Los_Angeles" in again
        everywhere = (await http.get("/ui/today", params={"site": ""})).text
        assert 'name="site" value=""' in everywhere and "Program days in America/New_York" in everywhere
    assert west


async def test_quarantine_shows_the_held_message_and_the_likely_screenings(live):
    from tests.api.test_lab import NEGATIVE, URINE, oru

    pid = await enroll_via_api(live)
    async with live.http() as http:
        sid = (
            await http.post(f"/participants/{pid}/screenings", json={"reason": "held test"}, headers=live.auth("staff"))
        ).json()["screening_id"]
        specimen = (await http.post(f"/screenings/{sid}/collection", json=URINE, headers=live.auth("staff"))).json()[
            "specimen_id"
        ]
        held = await http.post(
            "/lab/hl7",
            content=oru("UI-HELD-1", specimen, pid, obx=NEGATIVE, dob="1970-01-01").encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
        assert "MSA|AE" in held.text
        await sign_in(http, live.tokens["staff"])
        page = (await http.get("/ui/quarantine")).text
    start = page.rfind("<article", 0, page.index("UI-HELD-1"))
    item = page[start : page.index("</article>", start)]
    assert "ACMELAB" in item and f'href="/ui/participants/{pid}"' in item  # who the lab says it is about
    assert "Likely screenings" in item and f'href="/ui/screenings/{sid}"' in item and "specimen id matches" in item
    assert f'name="screening_id" value="{sid}"' in item  # the best match, offered instead of typing an id
