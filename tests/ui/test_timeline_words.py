"""A participant's history reads like the clinic's record: what happened in plain words, who did it by name,
times in the participant's time zone; never an HTTP log ("POST /participants/{participant_id}/screenings")
and never a token id where a name exists. Server-rendered (no browser), over the live stack."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from api.tokens import issue_token
from domain.clock import local_date
from store.db import session_scope
from tests.ui.test_dashboard import enroll_via_api, sign_in

HTTP_LINE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD)\s+/")
ROUTE_PARAM = re.compile(r"\{[a-z_]+\}")
ENGINE_WORDS = re.compile(
    r"ParticipantWorkflow|ScreeningWorkflow|MedicationWorkflow|continued as new|"
    r"\b[a-z]+_[a-z_]+\b|\w+=\S"
)  # class names, snake_case names, key=value pairs


def named_token(live, role: str, name: str) -> tuple[str, str]:
    with session_scope(live.engine) as session:
        row, token = issue_token(session, name=name, role=role)
        return row.id, token


async def test_the_history_reads_like_the_clinics_record(live):
    from tests.api.test_disclosures import consent_body
    from tests.api.test_lab import CONFIRMED_POSITIVE, URINE, oru

    staff_id, staff = named_token(live, "staff", "Sam Rivera")
    doctor_id, doctor = named_token(live, "clinician", "Dr. Patel")
    as_staff, as_doctor = {"Authorization": f"Bearer {staff}"}, {"Authorization": f"Bearer {doctor}"}
    pid = await enroll_via_api(
        live, given_name="Historia", family_name="Worde", date_of_birth="1979-09-09", phone="+15555550961"
    )
    today = local_date(datetime.now(UTC), "America/New_York")
    async with live.http() as http:

        async def ok(method: str, path: str, headers: dict, **kwargs) -> dict:
            answer = await http.request(method, path, headers=headers, **kwargs)
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else {}

        await ok(
            "POST", f"/participants/{pid}/consents", as_staff, json=consent_body(live.court_id, ["missed-tests"])
        )  # no report to the shared court receiver
        await ok("PUT", f"/participants/{pid}/pin", as_staff, json={"pin": "4821"})
        await ok("POST", "/check-ins", as_staff, json={"participant_id": pid, "method": "kiosk"})
        sid = (await ok("POST", f"/participants/{pid}/screenings", as_staff, json={"reason": "odour of alcohol"}))[
            "screening_id"
        ]
        specimen = (await ok("POST", f"/screenings/{sid}/collection", as_staff, json=URINE))["specimen_id"]
        message = oru("UI-WORDS-1", specimen, pid, obx=CONFIRMED_POSITIVE, dob="1979-09-09")
        filed = await http.post(
            "/lab/hl7",
            content=message.replace("Quintanilla-Verhoeven^Marisol", "Worde^Historia"),
            headers={**live.auth("lab"), "Content-Type": "text/plain"},
        )
        assert "MSA|AA" in filed.text, filed.text
        await ok(
            "POST",
            f"/screenings/{sid}/review",
            as_doctor,
            json={"decision": "confirm", "explanation": "no prescription on file"},
        )
        await ok("POST", f"/participants/{pid}/phase", as_doctor, json={"phase": "phase-2", "reason": "30 days"})
        order = await ok(
            "POST",
            f"/participants/{pid}/medications",
            as_doctor,
            json={
                "drug": "methadone",
                "dose": 60,
                "unit": "mg",
                "route": "oral",
                "schedule": {"kind": "daily-observed"},
                "start_date": today.isoformat(),
                "prescriber": "Dr. Patel",
            },
        )
        await ok(
            "POST",
            f"/medications/{order['id']}/dispenses",
            as_staff,
            json={"kind": "observed-dose", "dose": 60, "unit": "mg"},
        )
        await ok("GET", f"/participants/{pid}", as_doctor)
        refused = await http.post(f"/screenings/{sid}/excuse", headers=as_staff, json={"reason": "too late"})
        assert refused.status_code == 409

        history = await ok("GET", f"/participants/{pid}/history", live.auth("auditor"), params={"limit": 200})
        assert history["next"] is None, history["total"]  # the whole history on one page
        entries = history["items"]
        await sign_in(http, doctor)
        page = (await http.get(f"/ui/participants/{pid}/timeline", params={"reads": "1"})).text

    events = [e["event"] for e in entries]
    assert not [e for e in entries if HTTP_LINE.search(e["event"]) or ROUTE_PARAM.search(e["event"])], events
    assert not [e for e in events if ENGINE_WORDS.search(e)], events
    assert not [e for e in entries if re.fullmatch(r"[0-9a-f]{12}", e["actor"])], [e["actor"] for e in entries]
    by = {(e["event"], e["actor"]) for e in entries}
    assert ("Test ordered for cause", "Sam Rivera") in by, by
    assert ("Result confirmed", "Dr. Patel") in by, by
    # The audit trail keeps the request as it was made, for auditors.
    assert any(e["action"].startswith("POST /participants/{participant_id}/screenings") for e in entries)

    timeline = page[page.index('<ol class="timeline">') : page.index("</ol>")]
    items = [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", "<li" + li)).split()) for li in timeline.split("<li")[1:]]
    assert items and not [i for i in items if HTTP_LINE.search(i) or ROUTE_PARAM.search(i)], items
    assert staff_id not in timeline and doctor_id not in timeline  # names, never token ids
    text = "\n".join(items)
    assert "Test ordered for cause by Sam Rivera: odour of alcohol" in text, items
    assert "Result confirmed by Dr. Patel: no prescription on file" in text, items
    assert re.search(r"\d\d:\d\d E[SD]T", timeline)  # the participant's time zone, named
    assert "Consent recorded by Sam Rivera" in text and "Enrolled by test staff" in text, items
    assert "Record read: the participant's record by Dr. Patel" in text, items  # reads shown on request
    assert "Not done (refused): test excused by Sam Rivera" in text, items
