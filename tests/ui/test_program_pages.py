"""Program configuration in the dashboard, in headless Chromium against the live stack: an administrator edits
the opening hours, closed days, phase rates and collection windows (each edit a new version through the API's
own validation, its 422 arithmetic shown as the page's message); staff see the same program read-only."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, col, select

from store.models import AuditEvent
from tests.ui.conftest import BROWSER_WAIT_MS
from tests.ui.test_browser import check_page_accessibility, open_page, shot, sign_in

pytestmark = pytest.mark.usefixtures("chromium_path")


@pytest.fixture(autouse=True)
def _expect_timeout():
    from playwright.async_api import expect

    expect.set_options(timeout=BROWSER_WAIT_MS)


def weekday_program(program_id: str) -> dict:
    return {
        "program_id": program_id,
        "name": "Dashboard court",
        "note": "initial",
        "sites": {
            "east": {
                "timezone": "America/New_York",
                "hours": {d: ["08:00", "17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                "closed": {},
            }
        },
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": 2,
                "min_per_rolling_week": 1,
                "max_per_rolling_week": 4,
                "check_in_required": True,
                "criteria": "first 60 days",
            },
            {"name": "phase-2", "tests_per_week": 1, "min_per_rolling_week": 0, "max_per_rolling_week": 3},
        ],
        "collection_windows": {"urine": 8, "oral-fluid": 4},
    }


async def test_admin_edits_a_program_in_the_dashboard_and_staff_read_it(browser, live, artifacts):
    from playwright.async_api import expect

    program_id = f"ui-court-{uuid.uuid4().hex[:6]}"  # the live stack is shared by the package's tests
    async with live.http() as http:
        created = await http.post("/programs", json=weekday_program(program_id), headers=live.auth("admin"))
        assert created.status_code == 201, created.text

    context, page = await open_page(browser, live)
    await sign_in(page, live.tokens["admin"])
    await page.get_by_role("link", name="Programs").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Programs")
    await page.get_by_role("link", name="Dashboard court").first.click()
    await page.goto(f"/ui/programs/{program_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Dashboard court version 1")
    await check_page_accessibility(page)

    # Opening hours: closed on Fridays from now on, open Saturday mornings.
    site = page.locator("#site-east")
    await site.get_by_label("Fri opens").fill("")
    await site.get_by_label("Fri closes").fill("")
    await site.get_by_label("Sat opens").fill("09:00")
    await site.get_by_label("Sat closes").fill("12:00")
    await site.get_by_role("button", name="Save the hours of east").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 2: opening hours of east")
    await expect(page.locator("#site-east").get_by_label("Sat closes")).to_have_value("12:00")
    await expect(page.locator("#site-east").get_by_label("Fri opens")).to_have_value("")

    # A floor the open days cannot hold is refused with the arithmetic, as the API words it.
    phases = page.locator("#phases")
    await phases.get_by_label("phase-1: floor per 7 days").fill("6")
    await phases.get_by_label("phase-1: ceiling per 7 days").fill("6")
    await phases.get_by_label("phase-1: tests a week").fill("6")
    await phases.get_by_role("button", name="Save the phases").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text(
        "The program is not valid: phase phase-1 needs at least 6 tests in every "
        "rolling 7 days, but site east is open 5 day(s) a week "
        "(Mon, Tue, Wed, Thu, Sat): 6 > 5"
    )
    await shot(page, artifacts, "program-refused-floor")
    phases = page.locator("#phases")
    await phases.get_by_label("phase-1: tests a week").fill("3")
    await phases.get_by_label("phase-1: floor per 7 days").fill("2")
    await phases.get_by_label("phase-1: ceiling per 7 days").fill("4")
    await phases.get_by_role("button", name="Save the phases").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 3: phase rates, floors and ceilings")

    # A holiday added, then taken back.
    site = page.locator("#site-east")
    await site.get_by_label("Closed day").fill("2026-12-25")
    await site.get_by_label("Why (e.g. Christmas Day)").fill("Christmas Day")
    await site.get_by_role("button", name="Add the closed day at east").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 4: east closed on 2026-12-25")
    await expect(page.locator("#site-east .closed-days")).to_contain_text("2026-12-25: Christmas Day")
    await check_page_accessibility(page)
    await page.locator("#site-east").get_by_role("button", name="Remove 2026-12-25 at east").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 5: east open again on 2026-12-25")
    await expect(page.locator("#site-east")).to_contain_text("No closed day besides the closed weekdays.")

    # Windows and reminders.
    windows = page.locator("#windows")
    await windows.get_by_label("Urine: hours from notice to the end of collection").fill("6")
    await windows.get_by_label("Reminder before the window closes (hours; 0: none)").fill("2")
    await windows.get_by_role("button", name="Save the windows").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 6")
    await shot(page, artifacts, "program-admin")
    await context.close()

    async with live.http() as http:
        saved = (await http.get(f"/programs/{program_id}", headers=live.auth("staff"))).json()
    definition = saved["definition"]
    assert saved["version"] == 6
    assert definition["sites"]["east"]["hours"] == {
        **{d: ["08:00", "17:00"] for d in ("mon", "tue", "wed", "thu")},
        "sat": ["09:00", "12:00"],
    }
    assert definition["sites"]["east"]["closed"] == {}
    assert [
        (p["tests_per_week"], p["min_per_rolling_week"], p["max_per_rolling_week"]) for p in definition["phases"]
    ] == [(3.0, 2, 4), (1.0, 0, 3)]
    assert definition["phases"][0]["check_in_required"] and definition["phases"][0]["criteria"] == "first 60 days"
    assert definition["collection_windows"]["urine"] == 6 and definition["reminder_hours_before_close"] == 2
    with Session(live.engine) as session:
        edits = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == program_id).order_by(col(AuditEvent.seq))
        ).all()
    # Every edit is the API's own request, audited with who made it (the admin's token) and its outcome.
    writes = [(e.action, e.outcome, e.role) for e in edits if not e.action.startswith(("GET", "POST /ui/"))]
    assert writes == [
        ("POST /programs", "201", "admin"),
        ("PUT /programs/{program_id}", "200", "admin"),
        ("PUT /programs/{program_id}", "422", "admin"),
        ("PUT /programs/{program_id}", "200", "admin"),
        ("POST /programs/{program_id}/sites/{site}/closed-days", "200", "admin"),
        ("PUT /programs/{program_id}", "200", "admin"),
        ("PUT /programs/{program_id}", "200", "admin"),
    ]

    # Staff read the same program; nothing on the page edits it.
    context, page = await open_page(browser, live)
    await sign_in(page, live.tokens["staff"])
    await page.goto(f"/ui/programs/{program_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Dashboard court version 6")
    await expect(page.get_by_text("Read only: administrators change programs.")).to_be_visible()
    await expect(page.locator("#site-east")).to_contain_text("09:00–12:00")
    await expect(page.locator("#windows")).to_contain_text("2.0 h before the window closes")
    await expect(page.locator("main form")).to_have_count(0)
    await expect(page.locator("main input")).to_have_count(0)
    await check_page_accessibility(page)
    await shot(page, artifacts, "program-staff")
    await context.close()
