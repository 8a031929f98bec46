"""The dashboard in headless Chromium against the live stack: the acceptance flow, labels and
keyboard use. Screenshots go to test-artifacts/ui/. Every wait is on a condition, never a sleep."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from domain.clock import local_date
from domain.disclosure_ids import disclosure_id as scoped_disclosure_id
from domain.hl7 import parse_ack
from tests.api.test_lab import CONFIRMED_POSITIVE, oru
from tests.helpers import enrollment
from tests.ui.conftest import BROWSER_WAIT_MS
from workflows.contracts.disclosure import disclosure_workflow_id

pytestmark = pytest.mark.usefixtures("chromium_path")

PERSON = enrollment()  # the same person the API tests use: the HL7 fixtures carry their name and birth date
CASE = PERSON["case_numbers"][0]


@pytest.fixture(autouse=True)
def _expect_timeout():
    from playwright.async_api import expect

    expect.set_options(timeout=BROWSER_WAIT_MS)


async def open_page(browser, live):
    context = await browser.new_context(
        base_url=live.base_url, viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="America/New_York"
    )
    context.set_default_timeout(BROWSER_WAIT_MS)
    return context, await context.new_page()


async def shot(page, artifacts, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def check_page_accessibility(page) -> None:
    """Every control has an accessible name (as Chromium computes it), ids are unique (labels point at
    one control), and the page has one main landmark and one h1."""
    from playwright.async_api import expect

    controls = page.locator("input:not([type=hidden]), select, textarea, button")
    for i in range(await controls.count()):
        await expect(controls.nth(i)).to_have_accessible_name(re.compile(r"\S"))
    duplicates = await page.evaluate("""() => {
        const seen = {}; const twice = [];
        for (const el of document.querySelectorAll('[id]')) { if (seen[el.id]) twice.push(el.id); seen[el.id] = 1; }
        return twice; }""")
    assert duplicates == [], f"duplicate ids on {page.url}: {duplicates}"
    await expect(page.get_by_role("main")).to_have_count(1)
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)


async def tab_to(page, locator, most: int = 6) -> int:
    """Press Tab until `locator` has the focus; how many presses it took."""
    for presses in range(1, most + 1):
        await page.keyboard.press("Tab")
        if await locator.evaluate("el => el === document.activeElement"):
            return presses
    raise AssertionError(f"{most} presses of Tab never reached {locator}")


async def sign_in(page, token: str) -> None:
    from playwright.async_api import expect

    await page.goto("/ui/login")
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Today")


async def test_sign_in_enroll_collect_result_review_disclose(browser, live, artifacts):
    from playwright.async_api import expect

    staff_context, page = await open_page(browser, live)

    # --- sign in with the keyboard alone: Tab reaches the field and the button, Enter submits.
    await page.goto("/ui/today")
    await expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Ftoday"))
    await check_page_accessibility(page)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    token_field = page.get_by_label("Access token")
    assert await tab_to(page, token_field) <= 2, "the token field is not near the start of the tab order"
    assert await token_field.evaluate("el => getComputedStyle(el).outlineStyle") != "none", "focus is not visible"
    await page.keyboard.type(live.tokens["staff"])
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    await shot(page, artifacts, "01-sign-in")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Today")
    await expect(page.get_by_text("Signed in as")).to_contain_text("staff")
    await check_page_accessibility(page)
    await shot(page, artifacts, "02-today-staff")

    # --- enroll through the form, every field found by its label.
    await page.get_by_role("link", name="Enroll a participant").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Enroll a participant")
    await check_page_accessibility(page)
    await page.get_by_label("Given name").fill(PERSON["given_name"])
    await page.get_by_label("Family name").fill(PERSON["family_name"])
    await page.get_by_label("Date of birth").fill(PERSON["date_of_birth"])
    await page.get_by_label("Phone").fill(PERSON["phone"])
    await page.get_by_label("Site").fill(PERSON["site"])
    await page.get_by_label("Referral source").fill(PERSON["referral_source"])
    await page.get_by_label("Case number system").fill(CASE["system"])
    await page.get_by_label("Case number", exact=True).fill(CASE["value"])
    await shot(page, artifacts, "03-enroll-form")
    await page.get_by_role("button", name="Enroll").click()
    if await page.locator("#duplicates").count():  # another test enrolled someone with the same phone number
        await page.get_by_label("this is a different person").check()
        await page.get_by_role("button", name="Enroll", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("the program has started")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(
        f"{PERSON['given_name']} {PERSON['family_name']}"
    )
    pid = re.search(r"/ui/participants/(p-[0-9a-f]+)", page.url).group(1)
    await expect(page.locator("#program")).to_contain_text("phase-1")
    await check_page_accessibility(page)

    # --- add the court's consent (results only).
    consent = page.locator("#add-consent")
    await consent.get_by_label("Recipient").select_option(label="County Drug Court, Part 3 (court)")
    await consent.get_by_label("screening results").check()
    await consent.get_by_label("Purpose").fill("monitor progress in treatment court")
    await consent.get_by_label("Who may disclose").fill("Northside IOP")
    await consent.get_by_label("Signed by").fill("the participant")
    await consent.get_by_label("Expires on").fill((date.today() + timedelta(days=365)).isoformat())
    await consent.get_by_role("button", name="Record the consent").click()
    await expect(page.get_by_role("status")).to_contain_text("recorded")
    await expect(page.locator("#consents")).to_contain_text("in force")

    # --- order a for-cause test, then record the collection on the screening's page.
    await page.get_by_label("Reason for the test").fill("appeared impaired at group")
    await page.get_by_role("button", name="Order the test now").click()
    await expect(page.get_by_role("status")).to_contain_text("For-cause test ordered")
    await page.get_by_role("link", name="Open the screening to record the collection").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Screening")
    sid = re.search(r"/ui/screenings/([^/?#]+)", page.url).group(1)
    await check_page_accessibility(page)
    await expect(page.get_by_label("Collection was directly observed")).to_be_checked()
    await page.get_by_label("Collector").fill("RN-7")
    await page.get_by_label("Urine temperature 90–100 °F within 4 minutes").select_option("yes")
    await page.get_by_role("button", name="Record the collection").click()
    await expect(page.get_by_role("status")).to_contain_text("Collection recorded: specimen")
    await expect(page.locator("#screening-status")).to_have_text("Collected, awaiting result")
    specimen = (await page.locator("#specimen-id code").inner_text()).strip()
    await shot(page, artifacts, "04-collection-recorded")

    # --- the lab posts a confirmed positive HL7 result (LOINC 16226-3) through the API, with the lab's token.
    async with live.http() as http:
        answer = await http.post(
            "/lab/hl7",
            content=oru("UI-E2E-1", specimen, pid, obx=CONFIRMED_POSITIVE).encode(),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
    assert answer.status_code == 200 and parse_ack(answer.text).ack_code == "AA", answer.text

    # Staff see it waiting for review but may not review it (the role matrix).
    await page.reload()
    await expect(page.locator("#screening-status")).to_have_text("Awaiting review")
    await expect(page.locator("#review")).to_contain_text("The staff role cannot review results")
    await expect(page.locator("#review form")).to_have_count(0)

    # --- a clinician reviews it, from Today's list.
    clinician_context, review_page = await open_page(browser, live)
    await sign_in(review_page, live.tokens["clinician"])
    await expect(review_page.get_by_role("link", name=f"Review {sid}")).to_be_visible()
    await shot(review_page, artifacts, "05-today-clinician")
    await review_page.get_by_role("link", name=f"Review {sid}").click()
    await expect(review_page.locator("#h-results ~ article").first).to_contain_text("confirmed-positive")
    await check_page_accessibility(review_page)
    await review_page.get_by_label("Decision").select_option("confirm")
    await review_page.get_by_label("Explanation").fill("no prescription on file; confirmed by LC-MS")
    await shot(review_page, artifacts, "06-review-form")
    await review_page.get_by_role("button", name="Record the review").click()
    await expect(review_page.get_by_role("status")).to_contain_text("outcome positive")
    await expect(review_page.locator("#screening-outcome")).to_contain_text("positive")

    # --- the court gets the report under the consent; the participant page accounts for it.
    delivered = await asyncio.to_thread(live.court.delivered.wait, 30)
    assert delivered, "the court's receiver got nothing"
    disclosure_id = scoped_disclosure_id(pid, sid, "screening-results", live.court_id)
    await live.temporal.get_workflow_handle(disclosure_workflow_id(disclosure_id)).result()
    await review_page.get_by_role("link", name=f"{PERSON['given_name']} {PERSON['family_name']}").click()
    row = review_page.locator("#disclosures tr.disclosure", has_text=sid)
    await expect(row).to_contain_text("delivered")
    await expect(row).to_contain_text("County Drug Court, Part 3")
    await expect(row).to_contain_text("screening-results")
    await expect(review_page.locator('#testing-calendar g.day[data-kind="positive"]')).to_have_count(1)
    await expect(review_page.locator("#timeline li").first).to_be_visible()  # loaded by htmx
    await expect(review_page.locator("#timeline")).to_contain_text("Result confirmed by")
    await check_page_accessibility(review_page)
    await shot(review_page, artifacts, "07-participant-disclosed")
    await review_page.locator("#disclosures").screenshot(path=str(artifacts / "07a-disclosures.png"))
    await review_page.locator("#calendar").screenshot(path=str(artifacts / "07b-testing-calendar.png"))
    [(webhook_id, payload)] = live.court.kept.items()
    assert webhook_id == disclosure_id and payload["data"]["outcome"] == "positive"
    assert payload["subject"] == {"case_number": CASE["value"]}

    await clinician_context.close()
    await staff_context.close()


async def test_dose_from_today_and_the_adherence_chart(browser, live, artifacts):
    from playwright.async_api import expect

    async with live.http() as http:
        created = await http.post(
            "/participants", json=enrollment(given_name="Dosing", family_name="Example"), headers=live.auth("staff")
        )
        pid = created.json()["id"]
        order = await http.post(
            f"/participants/{pid}/medications",
            headers=live.auth("clinician"),
            json={
                "drug": "buprenorphine",
                "dose": 16,
                "unit": "mg",
                "route": "sublingual",
                "schedule": {"kind": "daily-observed"},
                "start_date": local_date(datetime.now(UTC), "America/New_York").isoformat(),  # the program's day
                "prescriber": "Dr. Example",
            },
        )
        assert order.status_code == 201, order.text

    context, page = await open_page(browser, live)
    await sign_in(page, live.tokens["staff"])
    dose_button = page.get_by_role("button", name="Record dose for Example, Dosing")
    await expect(dose_button).to_be_visible()
    await dose_button.focus()
    await page.keyboard.press("Enter")  # buttons work from the keyboard too
    await expect(page.get_by_role("status")).to_contain_text("Recorded observed dose for Example, Dosing")
    row = page.locator("#h-dosing ~ table tr", has_text="Example, Dosing")
    await expect(row).to_contain_text("dosed")
    await shot(page, artifacts, "08-today-dosed")
    await row.get_by_role("link", name="Example, Dosing").click()
    await expect(page.locator("#medications")).to_contain_text("Take-home eligibility")
    await expect(page.locator('#medications svg.adherence g.dose[data-kind="dosed"]')).to_have_count(1)
    await check_page_accessibility(page)
    await page.locator("#medications").scroll_into_view_if_needed()
    await shot(page, artifacts, "09-participant-dosing")
    await page.locator("#medications").screenshot(path=str(artifacts / "09a-adherence-chart.png"))
    await context.close()
