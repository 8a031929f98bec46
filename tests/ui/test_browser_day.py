"""The front desk's morning in headless Chromium on a phone-sized screen (400 px): the call list, a check-in,
a phase change, the worklist (claim, comment, resolve); no page scrolls sideways, and the printed call list
and participant summary keep the content and drop the navigation and the forms. Screenshots go to
test-artifacts/ui/. Every wait is on a condition, never a sleep."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from activities.records import RecordActivities
from domain.clock import local_date
from store.models import WorklistItem
from tests.ui.conftest import BROWSER_WAIT_MS
from tests.ui.test_browser import check_page_accessibility, shot, sign_in
from tests.ui.test_call_list import add_call
from tests.ui.test_dashboard import enroll_via_api
from workflows.contracts.alerts import Alert

pytestmark = pytest.mark.usefixtures("chromium_path")
PHONE = {"width": 400, "height": 860}


@pytest.fixture(autouse=True)
def _expect_timeout():
    from playwright.async_api import expect

    expect.set_options(timeout=BROWSER_WAIT_MS)


async def phone_page(browser, live):
    context = await browser.new_context(
        base_url=live.base_url, viewport=PHONE, locale="en-US", timezone_id="America/New_York"
    )
    context.set_default_timeout(BROWSER_WAIT_MS)
    return context, await context.new_page()


async def settled(page) -> None:
    """htmx has finished swapping and wiring the new content (and the participant page its lazy history)."""
    await page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
        " && (!document.querySelector('#timeline') || document.querySelector('#timeline *'))"
    )


async def readme_shot(page, artifacts, name: str) -> None:
    """What a phone shows (no scrolling): the README's pictures are copied from these (docs/screenshots/)."""
    await page.screenshot(path=str(artifacts / f"readme-{name}.png"))


async def assert_fits(page) -> None:
    """Nothing pushes the page wider than the screen (tables may scroll inside themselves)."""
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:
        culprits = await page.evaluate("""() => {
            const clipped = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement)
                if (getComputedStyle(p).overflowX !== 'visible') return getComputedStyle(el).position !== 'absolute';
                return false; };
            return [...document.querySelectorAll('body *')]
                .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(el))
                .slice(0, 5).map(el => `${el.tagName}.${el.className}#${el.id} ${el.textContent.slice(0, 40)}`);
            }""")
        raise AssertionError(f"{page.url} is {widths[0]} px wide on a {widths[1]} px screen: {culprits}")


async def assert_prints(page, content: list[str]) -> None:
    """On paper: no navigation, no forms, no buttons; the content is there."""
    from playwright.async_api import expect

    await page.emulate_media(media="print")
    try:
        await expect(page.locator(".site-nav")).to_be_hidden()
        for form in await page.locator("main form").all():
            await expect(form).to_be_hidden()
        for selector in content:
            await expect(page.locator(selector).first).to_be_visible()
    finally:
        await page.emulate_media(media="screen")


async def test_front_desk_morning_on_a_phone(browser, live, artifacts):
    from playwright.async_api import expect

    pid = await enroll_via_api(live, given_name="Morning", family_name="Caller", phone="+15555550941", site="northside")
    async with live.http() as http:
        sid = (
            await http.post(
                f"/participants/{pid}/screenings", json={"reason": "browser call list"}, headers=live.auth("staff")
            )
        ).json()["screening_id"]
    entry = add_call(live, pid, f"{sid}:test-required", datetime.now(UTC) + timedelta(hours=4), sid)
    dosed = await enroll_via_api(
        live, given_name="Dosed", family_name="Already", phone="+15555550942", site="northside"
    )
    async with live.http() as http:  # dosed already: the dosing row has nothing left to do
        order = await http.post(
            f"/participants/{dosed}/medications",
            headers=live.auth("clinician"),
            json={
                "drug": "methadone",
                "dose": 60,
                "unit": "mg",
                "route": "oral",
                "schedule": {"kind": "daily-observed"},
                "start_date": local_date(datetime.now(UTC), "America/New_York").isoformat(),
                "prescriber": "Dr. Patel",
            },
        )
        assert order.status_code == 201, order.text
        given = await http.post(
            f"/medications/{order.json()['id']}/dispenses",
            headers=live.auth("staff"),
            json={"kind": "observed-dose", "dose": 60, "unit": "mg"},
        )
        assert given.status_code == 200, given.text
    RecordActivities(live.engine).raise_alert(Alert("missed-doses", pid, "o-browser:1", "2 doses missed in a row"))
    with Session(live.engine) as session:
        item = session.exec(
            select(WorklistItem).where(WorklistItem.participant_id == pid, WorklistItem.raw_kind == "missed-doses")
        ).one()

    context, page = await phone_page(browser, live)
    await sign_in(page, live.tokens["staff"])
    await assert_fits(page)
    row = page.locator("#h-screenings ~ table.stack tr", has_text="Caller, Morning")
    await expect(row.locator("td").first).to_have_css("display", "block")  # a row is a block on a phone
    await expect(row).to_contain_text("Record collection")
    dose_row = page.locator("#h-dosing ~ table.stack tr", has_text="Already, Dosed")
    await expect(dose_row).to_contain_text("dosed")
    await expect(dose_row.locator('td[data-label="Action"]')).to_be_hidden()  # no bare "Action:" on a phone
    bare = await page.evaluate("""() => [...document.querySelectorAll('table.stack td[data-label]')]
        .filter(td => getComputedStyle(td).display !== 'none' && !td.textContent.trim())
        .map(td => `${td.dataset.label}: ${td.parentElement.textContent.trim().slice(0, 40)}`)""")
    assert bare == [], f"labels with nothing after them on a phone: {bare}"
    await shot(page, artifacts, "20-today-400px")
    await readme_shot(page, artifacts, "today")

    # --- the call list, from Today: the number to dial, then one click for the outcome.
    await page.locator("#h-calls ~ ul").get_by_role("link", name=re.compile("to call")).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Call list")
    card = page.locator(f"#call-{entry}")
    await expect(card.get_by_role("link", name="+15555550941")).to_have_attribute("href", "tel:+15555550941")
    await expect(card).to_contain_text(re.compile(r"\d\d:\d\d E[SD]T"))
    await check_page_accessibility(page)
    await assert_fits(page)
    await shot(page, artifacts, "21-call-list-400px")
    await readme_shot(page, artifacts, "call-list")
    await assert_prints(page, [".call-list", f"#call-{entry} .phone"])
    await card.get_by_label("Note (optional)").fill("coming at noon")
    await card.get_by_role("button", name=re.compile(r"Reached and told\W+Morning Caller")).click()
    await expect(page.get_by_role("status")).to_contain_text("Call to Morning Caller recorded: reached and told")
    await expect(page.locator(f"#call-{entry}")).to_have_count(0)
    await expect(page.locator("#h-called ~ ul")).to_contain_text("reached and told to test: coming at noon")

    # --- the participant checks in at the desk; the summary prints without the forms.
    await page.get_by_role("link", name="Morning Caller").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Morning Caller")
    await settled(page)
    await page.get_by_role("button", name="Check in Morning now").click()
    await expect(page.get_by_role("status")).to_contain_text("Checked in.")
    await expect(page.get_by_role("status")).to_contain_text(re.compile(r"clinic by \d\d:\d\d E[SD]T\."))  # zone named
    await check_page_accessibility(page)
    await assert_fits(page)
    await shot(page, artifacts, "22-participant-400px")
    await readme_shot(page, artifacts, "participant")
    await assert_prints(page, ["#record", "#program", "#screenings"])

    # --- a phase change.
    form = page.locator("#phase-change")
    await form.get_by_label("New phase").select_option("phase-2")
    await form.get_by_label("Reason").fill("30 days negative")
    await form.get_by_role("button", name="Change phase").click()
    await expect(page.get_by_role("status")).to_contain_text("Phase changed to phase-2")
    await expect(page.locator("#program")).to_contain_text("phase-2")

    # --- the worklist: claim, comment, resolve.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Worklist").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    card = page.locator(f"#wl-{item.id}")
    await expect(card).to_contain_text("Missed doses: Morning Caller")
    await check_page_accessibility(page)
    await assert_fits(page)
    await shot(page, artifacts, "23-worklist-400px")
    await readme_shot(page, artifacts, "worklist")
    await card.get_by_role("button", name=f"Claim item {item.id}").click()
    await expect(page.get_by_role("status")).to_contain_text("claimed by you")
    card = page.locator(f"#wl-{item.id}")
    await expect(card).to_contain_text("test staff")
    await card.get_by_label("Comment").fill("called, will come at noon")
    await card.get_by_role("button", name=f"Add comment to item {item.id}").click()
    await expect(page.get_by_role("status")).to_contain_text("comment added")
    card = page.locator(f"#wl-{item.id}")
    await card.get_by_label("Outcome").select_option("participant-contacted")
    await card.get_by_label("Note").fill("dosed at noon")
    await card.get_by_role("button", name=f"Resolve item {item.id}").click()
    await expect(page.get_by_role("status")).to_contain_text("resolved (participant contacted)")
    await expect(page.locator(f"#wl-{item.id}")).to_have_count(0)

    for path in ("/ui/participants", "/ui/participants/new", "/ui/quarantine", f"/ui/screenings/{sid}"):
        await page.goto(path)
        await expect(page.get_by_role("heading", level=1)).to_be_visible()
        await assert_fits(page)
    await context.close()
