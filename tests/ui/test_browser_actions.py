"""The day's other actions and pages in headless Chromium on a phone-sized screen (400 px), two sessions:
the front desk (Today per site, finding a participant, the duplicate warning, a pause, a case event,
attendance, a refusal and an excuse, the timeline, the quarantine) and a clinician (a medication order, a
dose change, releasing a hold after reassessment, stopping the order, a discharge). Each new page is checked
for sideways scrolling; screenshots go to test-artifacts/ui/. The same actions are tested over plain HTTP,
with their refusals, in tests/ui/test_day_actions.py and tests/ui/test_dashboard.py; these prove the pages
work in a browser. Every wait is on a condition, never a sleep."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from domain.clock import local_date
from tests.ui.test_browser import shot, sign_in
from tests.ui.test_browser_day import _expect_timeout, assert_fits, phone_page, settled  # noqa: F401
from tests.ui.test_dashboard import enroll_via_api

pytestmark = pytest.mark.usefixtures("chromium_path")


async def test_front_desk_actions_and_pages_on_a_phone(browser, live, artifacts):
    from playwright.async_api import expect

    from tests.api.test_lab import NEGATIVE, URINE, oru

    today = local_date(datetime.now(UTC), "America/New_York")
    pid = await enroll_via_api(
        live,
        given_name="Browsing",
        family_name="Deskwalk",
        date_of_birth="1972-02-29",
        phone="+15555550971",
        case_numbers=[{"system": "probation", "value": "PB-WALK-71"}],
    )
    await enroll_via_api(
        live,
        given_name="Pacific",
        family_name="Walker",
        site="west-walk",
        timezone="America/Los_Angeles",
        phone="+15555550972",
    )
    held_pid = await enroll_via_api(live)  # the name and birth date the HL7 fixture carries
    async with live.http() as http:
        staff = live.auth("staff")
        refused, excused = [
            (await http.post(f"/participants/{pid}/screenings", json={"reason": reason}, headers=staff)).json()[
                "screening_id"
            ]
            for reason in ("odor", "second")
        ]
        scheduled = await http.post(
            "/attendance-sessions",
            headers=staff,
            json={
                "kind": "individual",
                "title": "Walk-through session",
                "site": "north",
                "starts_at": (datetime.now(UTC) - timedelta(minutes=20)).isoformat(),
                "duration_minutes": 50,
                "facilitator": "A. Osei, LCSW",
                "participant_ids": [pid],
            },
        )
        assert scheduled.status_code == 201, scheduled.text
        [attendance] = scheduled.json()
        held_sid = (
            await http.post(f"/participants/{held_pid}/screenings", json={"reason": "held in browser"}, headers=staff)
        ).json()["screening_id"]
        specimen = (await http.post(f"/screenings/{held_sid}/collection", json=URINE, headers=staff)).json()[
            "specimen_id"
        ]
        held = await http.post(
            "/lab/hl7",
            content=oru("UI-WALK-HELD", specimen, held_pid, obx=NEGATIVE, dob="1970-01-01").encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
        assert "MSA|AE" in held.text, held.text

    context, page = await phone_page(browser, live)
    await sign_in(page, live.tokens["staff"])

    # --- Today per site, in the site's time zone, remembered.
    await page.get_by_label("Site", exact=True).fill("west-walk")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("main")).to_contain_text("Program days in America/Los_Angeles")
    await expect(page.get_by_label("Day", exact=True)).to_have_value(
        local_date(datetime.now(UTC), "America/Los_Angeles").isoformat()
    )
    await assert_fits(page)
    await shot(page, artifacts, "30-today-per-site-400px")
    await page.goto("/ui/today")
    await expect(page.get_by_label("Site", exact=True)).to_have_value("west-walk")

    # --- find a participant from the navigation, by case number.
    await page.get_by_role("searchbox").fill("PB-WALK-71")
    await page.get_by_role("searchbox").press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    found = page.locator(f'main a[href="/ui/participants/{pid}"]')
    await expect(found).to_have_count(1)
    await assert_fits(page)
    await shot(page, artifacts, "31-search-400px")

    # --- enrolling the same person again is stopped with the likely duplicate.
    await page.goto("/ui/participants/new")
    await page.get_by_label("Given name").fill("browsing")
    await page.get_by_label("Family name").fill("DESKWALK")
    await page.get_by_label("Date of birth").fill("1972-02-29")
    await page.locator("#f-site").fill("north")
    await page.get_by_role("button", name="Enroll").click()
    duplicates = page.locator("#duplicates")
    await expect(duplicates).to_contain_text("Is this someone already enrolled?")
    await expect(duplicates.locator(f'a[href="/ui/participants/{pid}"]')).to_be_visible()
    await expect(duplicates).to_contain_text("same name and date of birth")
    await assert_fits(page)
    await shot(page, artifacts, "32-duplicate-warning-400px")

    # --- the participant's page: a pause, a case event, attendance.
    await page.goto(f"/ui/participants/{pid}")
    await settled(page)
    pause = page.locator("#pause")
    await pause.get_by_label("First day").fill((today + timedelta(days=3)).isoformat())
    await pause.get_by_label("Last day").fill((today + timedelta(days=5)).isoformat())
    await pause.get_by_label("Reason").fill("inpatient stay")
    await pause.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("status")).to_contain_text("Random testing paused")
    await settled(page)
    event = page.locator("#case-event")
    await event.get_by_label("Event").select_option("supervision-ended")
    await event.get_by_label("Note").fill("order on file")
    await event.get_by_role("button", name="Record the event").click()
    await expect(page.get_by_role("status")).to_contain_text("Recorded supervision-ended")
    await expect(page.locator("#case-events")).to_contain_text("order on file")
    await settled(page)
    await page.get_by_label("Attendance at Walk-through session").select_option("late")
    await page.get_by_role("button", name="Record attendance at Walk-through session").click()
    await expect(page.get_by_role("status")).to_contain_text("Attendance recorded: late.")
    await expect(page.locator("#attendance")).to_contain_text("(1 late)")
    await settled(page)
    await assert_fits(page)
    await shot(page, artifacts, "33-participant-actions-400px")
    assert attendance["id"]

    # --- a refusal and an excuse, from the screening pages.
    await page.goto(f"/ui/screenings/{refused}")
    form = page.locator("#refusal")
    await form.get_by_label("What happened").select_option("refused-to-provide")
    await form.get_by_label("What was said or seen").fill("declined at the desk")
    await form.get_by_role("button", name="Record the refusal").click()
    await expect(page.get_by_role("status")).to_contain_text("Refusal recorded.")
    await assert_fits(page)
    await shot(page, artifacts, "34-refusal-400px")
    await page.goto(f"/ui/screenings/{excused}")
    form = page.locator("#excuse")
    await form.get_by_label("Documented reason").fill("hospital admission, letter on file")
    await form.get_by_role("button", name="Excuse").click()
    await expect(page.get_by_role("status")).to_contain_text("Screening excused.")
    await expect(page.locator("main")).to_contain_text("Excused")

    # --- the history reads like the clinic's record.
    await page.goto(f"/ui/participants/{pid}/timeline")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await expect(page.locator("main")).to_contain_text("Test ordered for cause")
    await expect(page.locator("main")).not_to_contain_text(re.compile(r"POST /|\{participant_id\}"))
    await assert_fits(page)
    await shot(page, artifacts, "35-timeline-400px")

    # --- the quarantine shows the held message and offers the likely screening.
    await page.goto("/ui/quarantine")
    item = page.locator("article", has_text="UI-WALK-HELD")
    await expect(item).to_contain_text("Likely screenings")
    await expect(item.locator(f'a[href="/ui/screenings/{held_sid}"]').first).to_be_visible()
    await expect(item.locator('input[name="screening_id"]')).to_have_value(held_sid)
    await assert_fits(page)
    await shot(page, artifacts, "36-quarantine-400px")
    await context.close()


async def test_clinician_medication_and_discharge_on_a_phone(browser, live, artifacts):
    from playwright.async_api import expect

    pid = await enroll_via_api(live, given_name="Dosing", family_name="Walkthrough", phone="+15555550973")
    context, page = await phone_page(browser, live)
    await sign_in(page, live.tokens["clinician"])
    await page.goto(f"/ui/participants/{pid}")
    await settled(page)

    # --- a medication order, then a dose change.
    order = page.locator("#new-order")
    await order.get_by_label("Drug").select_option("methadone")
    await order.get_by_label("Dose").fill("60")
    await order.get_by_label("Schedule").select_option("daily-observed")
    await order.get_by_label("Prescriber").fill("Dr. Patel")
    await order.get_by_role("button", name="Record the order").click()
    await expect(page.get_by_role("status")).to_contain_text("Medication order recorded")
    await settled(page)
    change = page.locator('form[action$="/dose-change"]')
    order_id = (await change.get_attribute("action") or "").split("/")[3]
    assert order_id
    await change.get_by_label("New dose").fill("70")
    await change.get_by_label("Reason").fill("cravings")
    await change.get_by_role("button", name="Change dose").click()
    await expect(page.get_by_role("status")).to_contain_text("Dose changed to 70 mg.")

    # --- a hold (as the nurse's alert puts it, through the API), released after reassessment on the page.
    async with live.http() as http:
        held = await http.post(
            f"/medications/{order_id}/reassessment",
            headers=live.auth("clinician"),
            json={"decision": "hold", "note": "sedated at the window"},
        )
        assert held.status_code == 200, held.text
    await page.reload()
    await settled(page)
    reassess = page.locator(f'form[action="/ui/medications/{order_id}/reassessment"]')
    await reassess.get_by_label("Decision").select_option("resume")
    await reassess.get_by_label("Clinical note").fill("alert and oriented")
    await reassess.get_by_role("button", name="Record the reassessment").click()
    await expect(page.get_by_role("status")).to_contain_text("Hold released")
    await settled(page)
    await assert_fits(page)
    await shot(page, artifacts, "37-medication-400px")

    # --- stop the order, then discharge: no next draw, no phase change offered.
    stop = page.locator(f'form[action="/ui/medications/{order_id}/stop"]')
    await stop.get_by_label("Reason").fill("taper complete")
    await stop.get_by_role("button", name="Stop the order").click()
    await expect(page.get_by_role("status")).to_contain_text("Medication order stopped.")
    await settled(page)
    discharge = page.locator("#discharge")
    await discharge.get_by_label("How the program ends").select_option("completed")
    await discharge.get_by_label("Reason").fill("finished the program")
    await discharge.get_by_role("button", name="Discharge").click()
    await expect(page.get_by_role("status")).to_contain_text("Discharged")
    await settled(page)
    await expect(page.locator("#program")).to_contain_text(re.compile(r"Next daily draw\s*none: "))
    await expect(page.locator("#phase-change")).to_have_count(0)
    await assert_fits(page)
    await shot(page, artifacts, "38-discharged-400px")
    await context.close()
