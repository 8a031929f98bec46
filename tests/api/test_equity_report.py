"""Demographics (with consent, apart from the clinical record) and the equity report: JSON, PDF, page.

The month's records (draws, screenings, delivered reports) are written straight into the records
store for a past month, so that the counts are known exactly; the routes, roles, audit and
rendering are the real ones on a real stack."""

import ast
import re
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path

from pypdf import PdfReader
from sqlmodel import Session, select

from store.db import session_scope
from store.models import (
    AuditEvent,
    Disclosure,
    Participant,
    ParticipantDemographics,
    Recipient,
    Screening,
    SelectionDraw,
)

ROOT = Path(__file__).resolve().parents[2]
OCTOBER = [date(2026, 10, 1) + timedelta(days=i) for i in range(31)]


def seed_month(engine, groups: dict[str, tuple[int, int]]) -> dict[str, list[str]]:
    """Participants per race, each with 31 draws of October of which `selected` were selected (random
    tests), `missed` of those missed; returns the participant ids per race."""
    ids: dict[str, list[str]] = {}
    with session_scope(engine) as session:
        session.add(
            Recipient(
                id="r-court",
                name="County drug court",
                kind="court",
                delivery="webhook",
                url="https://court.example/hook",
                categories=["missed-tests"],
            )
        )
        for race, (count, _selected) in groups.items():
            for i in range(count):
                pid = f"p-{race[:5]}-{i:02d}"
                ids.setdefault(race, []).append(pid)
                session.add(
                    Participant(
                        id=pid,
                        given_name="Test",
                        family_name="Person",
                        date_of_birth=date(1990, 1, 1),
                        site="north",
                        program="iop",
                        phase="phase-1",
                        start_date=date(2026, 9, 1),
                        timezone="America/New_York",
                    )
                )
        session.flush()
        for race, pids in ids.items():
            selected = groups[race][1]
            for n, pid in enumerate(pids):
                for d, day in enumerate(OCTOBER):
                    chosen = d < selected
                    session.add(
                        SelectionDraw(
                            participant_id=pid,
                            day=day,
                            phase="phase-1",
                            weekday=day.weekday(),
                            probability=0.2,
                            roll=0.1 if chosen else 0.9,
                            time_roll=0.5,
                            selected=chosen,
                            reason="selected" if chosen else "not-selected",
                            detail="seeded",
                        )
                    )
                    if chosen:
                        missed = race == "black-or-african-american" and d == 0 and n < 6
                        session.add(
                            Screening(
                                id=f"s-{pid}-{day:%Y%m%d}-r",
                                participant_id=pid,
                                site="north",
                                day=day,
                                reason="random",
                                status="missed" if missed else "final",
                                selected_at=datetime(2026, 10, 1, 12, tzinfo=UTC),
                                state={} if missed else {"final_outcome": "negative"},
                            )
                        )
                if race == "white" and n < 2:  # two for-cause tests, on one day
                    session.add(
                        Screening(
                            id=f"s-{pid}-20261015-c1",
                            participant_id=pid,
                            site="north",
                            day=date(2026, 10, 15),
                            reason="for-cause",
                            status="final",
                            selected_at=datetime(2026, 10, 15, 12, tzinfo=UTC),
                            state={"final_outcome": "positive"},
                        )
                    )
            for n, pid in enumerate(pids):
                if race == "black-or-african-american" and n < 6:
                    session.add(
                        Disclosure(
                            id=f"s-{pid}--missed-tests--r-court",
                            participant_id=pid,
                            recipient_id="r-court",
                            category="missed-tests",
                            event_ref="x",
                            facts={"scheduled_on": "2026-10-01"},
                            status="delivered",
                            delivered_at=datetime(2026, 10, 2, 9, tzinfo=UTC),
                        )
                    )
    return ids


async def record(stack, pid, role="staff", **answers):
    return await stack.http.put(
        f"/participants/{pid}/demographics", headers=stack.auth(role), json={"consented": True, **answers}
    )


def use_settings(stack, **values):
    services = stack.http._transport.app.state.services
    services.settings = services.settings.model_copy(update=values)


async def test_demographics_need_consent_are_erased_on_withdrawal_and_are_audited(stack):
    ids = seed_month(stack.engine, {"white": (1, 0)})
    pid = ids["white"][0]
    refused = await stack.http.put(
        f"/participants/{pid}/demographics", headers=stack.auth("staff"), json={"consented": False, "race": "white"}
    )
    assert refused.status_code == 422 and "consent" in refused.json()["detail"]
    bad = await record(stack, pid, race="martian")
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    saved = await record(
        stack, pid, race="white", ethnicity="not-hispanic-or-latino", sex="female", age_band="35-44", payer="medicaid"
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["race"] == "white" and saved.json()["recorded_by"]
    assert (await stack.http.get(f"/participants/{pid}/demographics", headers=stack.auth("admin"))).json()[
        "payer"
    ] == "medicaid"
    for role in ("clinician", "auditor", "lab"):
        assert (await stack.http.get(f"/participants/{pid}/demographics", headers=stack.auth(role))).status_code == 403
    withdrawn = await stack.http.put(
        f"/participants/{pid}/demographics", headers=stack.auth("staff"), json={"consented": False}
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["race"] is None and not withdrawn.json()["consented"]
    with Session(stack.engine) as session:
        row = session.get(ParticipantDemographics, pid)
        assert (row.race, row.sex, row.payer) == (None, None, None)
        events = session.exec(
            select(AuditEvent).where(AuditEvent.action == "PUT /participants/{participant_id}/demographics")
        ).all()
    assert events and all(e.participant_id == pid for e in events)
    missing = await stack.http.get("/participants/p-none/demographics", headers=stack.auth("staff"))
    assert missing.status_code == 404


def test_demographics_never_reach_workflows_activities_recipients_or_the_export():
    """Statically: no workflow, activity, disclosure, ingest or export module reads them."""
    checked = [
        *ROOT.glob("workflows/*.py"),
        *ROOT.glob("activities/*.py"),
        *ROOT.glob("ingest/*.py"),
        ROOT / "domain/report_content.py",
        ROOT / "domain/disclosure_ids.py",
        ROOT / "domain/fhir.py",
        ROOT / "api/routers/fhir.py",
        ROOT / "api/routers/participants.py",
        ROOT / "api/routers/disclosures.py",
    ]
    assert len(checked) > 10
    for path in checked:
        tree = ast.parse(path.read_text())
        names = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "ParticipantDemographics" not in names and "domain.demographics" not in modules, path
        assert "participant_demographics" not in path.read_text(), path


async def test_equity_report_flags_a_group_tested_more_and_suppresses_small_ones(stack):
    ids = seed_month(stack.engine, {"black-or-african-american": (12, 8), "white": (12, 4), "asian": (3, 4)})
    for race, pids in ids.items():
        for pid in pids:
            assert (await record(stack, pid, race=race)).status_code == 200

    for role in ("staff", "lab"):
        denied = await stack.http.get("/reports/equity?period=2026-10", headers=stack.auth(role))
        assert denied.status_code == 403
    bad = await stack.http.get("/reports/equity?period=2026-13", headers=stack.auth("auditor"))
    assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]

    answer = await stack.http.get("/reports/equity?period=2026-10", headers=stack.auth("auditor"))
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["participants"] == 27 and report["min_group_size"] == 11
    groups = {(g["dimension"], g["group"]): g for g in report["groups"]}
    black = {c["metric"]: c for c in groups[("race", "black-or-african-american")]["rates"]}
    selection = black["random-selection"]
    assert (selection["count"], selection["of"]) == (96, 12 * 31)
    assert selection["others_rate"] == (48 + 12) / (15 * 31)
    assert selection["flag"] == "higher" and selection["interval_excludes_one"]
    assert (black["random-missed"]["count"], black["random-missed"]["of"]) == (6, 96)
    assert (black["sanction-reports"]["count"], black["sanction-reports"]["of"]) == (6, 12)
    white = {c["metric"]: c for c in groups[("race", "white")]["rates"]}
    assert white["random-selection"]["flag"] == "lower"
    assert (white["for-cause"]["count"], white["for-cause"]["of"]) == (2, 12 * 31)  # days enrolled
    assert (white["for-cause-positive"]["count"], white["for-cause-positive"]["of"]) == (2, 2)
    assert groups[("race", "asian")]["suppressed"] and groups[("race", "asian")]["participants"] is None
    assert groups[("sex", "not-recorded")]["suppressed"]  # everyone: the complement is empty
    sections = {m["key"]: m["section"] for m in report["metrics"]}
    assert sections["for-cause"] == "for-cause" and sections["random-selection"] == "random"
    overall = {r["metric"]: r for r in report["overall"]}
    assert overall["random-selection"]["count"] == 96 + 48 + 12
    assert (
        overall["random-selection"]["ci_low"]
        < overall["random-selection"]["rate"]
        < overall["random-selection"]["ci_high"]
    )

    # A smaller minimum shows the small group; the setting is read per request.
    use_settings(stack, equity_min_group_size=3)
    smaller = (await stack.http.get("/reports/equity?period=2026-10", headers=stack.auth("clinician"))).json()
    assert not {(g["dimension"], g["group"]): g for g in smaller["groups"]}[("race", "asian")]["suppressed"]
    use_settings(stack, equity_min_group_size=11)

    pdf = await stack.http.get("/reports/equity.pdf?period=2026-10", headers=stack.auth("admin"))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(pdf.content)).pages)
    text = re.sub(r"\s+", " ", text)
    for expected in (
        "Equity report, 2026-10",
        "Random testing (chance)",
        "For-cause testing (staff discretion)",
        "Sanctions-relevant reports sent",
        "black-or-african-american",
        "96 / 372",
        "higher",
        "suppressed (small group)",
        "Standard II",
        "29 CFR 1607.4(D)",
    ):
        assert expected in text, expected
    assert "p-black" not in text and "Person" not in text  # no participant appears


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden {name} field"
    return match.group(1)


async def test_the_dashboard_page_shows_the_report_through_the_api(stack):
    ids = seed_month(stack.engine, {"black-or-african-american": (12, 8), "white": (12, 4)})
    for race, pids in ids.items():
        for pid in pids:
            await record(stack, pid, race=race)
    http = stack.http
    form = await http.get("/ui/login")
    signed = await http.post(
        "/ui/login",
        data={
            "login_token": hidden(form.text, "login_token"),
            "token": stack.tokens["auditor"],
            "next": "/ui/reports/equity",
        },
    )
    assert signed.status_code == 303, signed.text
    page = await http.get("/ui/reports/equity?period=2026-10")
    assert page.status_code == 200, page.text
    assert "Equity report" in page.text and "For-cause testing (staff discretion)" in page.text
    assert "96 / 372" in page.text and "<strong>higher</strong>" in page.text
    assert 'href="/ui/reports/equity"' in page.text  # in the navigation for this role
    pdf = await http.get("/ui/reports/equity.pdf?period=2026-10")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    wrong = await http.get("/ui/reports/equity?period=October")
    assert wrong.status_code == 422 and "YYYY-MM" in wrong.text
    with Session(stack.engine) as session:
        reads = session.exec(select(AuditEvent).where(AuditEvent.action == "GET /reports/equity")).all()
    assert reads and {e.role for e in reads} == {"auditor"}
