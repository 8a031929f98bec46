"""Lab results end to end on a real dev server: HL7 and JSON in, the screening's state out."""

import asyncio

from sqlmodel import Session, select

from domain.hl7 import parse_ack
from store.models import LabMessage, LabResult

DOB = "1987-03-14"  # tests.helpers.enrollment's birth date
URINE = {"specimen_type": "urine", "observed": True, "collector": "RN-7"}
VALID = ["NM|2161-8^Creatinine^LN||85|mg/dL", "NM|2965-2^Specific gravity^LN||1.015|", "NM|2756-5^pH^LN||6.2|"]
NEGATIVE = ["NM|3393-6^Benzoylecgonine^LN||12|ng/mL|<150|N", "NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N", *VALID]
POSITIVE = ["NM|3393-6^Benzoylecgonine^LN||640|ng/mL|<150|A", "NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N", *VALID]
# Benzoylecgonine by a confirmatory method (LOINC 16226-3): reported to a court as laboratory-confirmed;
# POSITIVE (3393-6, an immunoassay screen) is presumptive and never reported as confirmed.
CONFIRMED_POSITIVE = [
    "NM|16226-3^Benzoylecgonine confirm^LN||640|ng/mL|<100|A",
    "NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N",
    *VALID,
]


def oru(
    control: str,
    specimen: str,
    participant_id: str,
    *,
    obx=NEGATIVE,
    status="F",
    dob=DOB,
    version="2.5.1",
    facility="ACME REFERENCE LAB",
) -> str:
    segments = [
        f"MSH|^~\\&|ACMELAB|{facility}|IOPW|NORTH|20261123101500||ORU^R01^ORU_R01|{control}|P|{version}",
        f"PID|1||{participant_id}^^^IOP^PI||Quintanilla-Verhoeven^Marisol||{dob.replace('-', '')}|F",
        f"OBR|1|{specimen}|ACM-{control}|DRUGPANEL^Drug panel^L|||20261123090000||||||||||||||||||{status}",
    ]
    segments += [f"OBX|{i + 1}|{line}|||{status}" for i, line in enumerate(obx)]
    return "\r".join(segments) + "\r"


async def collected(stack):
    pid = (await stack.enroll())["id"]
    response = await stack.http.post(
        f"/participants/{pid}/screenings", json={"reason": "lab test"}, headers=stack.auth("staff")
    )
    sid = response.json()["screening_id"]
    body = (await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))).json()
    return pid, sid, body["specimen_id"]


async def post_hl7(stack, text: str, role: str = "lab"):
    response = await stack.http.post(
        "/lab/hl7", content=text.encode(), headers={**stack.auth(role), "Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    return response.text, parse_ack(response.text)


async def screening(stack, sid):
    return (await stack.http.get(f"/screenings/{sid}", headers=stack.auth("clinician"))).json()["workflow"]


async def test_negative_result_becomes_final_by_itself(stack):
    pid, sid, specimen = await collected(stack)
    text, ack = await post_hl7(stack, oru("NEG-1", specimen, pid))
    assert ack.ack_code == "AA" and ack.original_control_id == "NEG-1"
    state = await screening(stack, sid)
    assert state["status"] == "final" and state["final_outcome"] == "negative"
    assert state["turnaround_hours"] is not None and state["turnaround_hours"] >= 0
    interpretation = state["results"][0]["interpretation"]
    assert interpretation["overall"] == "negative" and interpretation["validity"]["status"] == "valid"


async def test_positive_waits_for_review_then_is_confirmed(stack):
    pid, sid, specimen = await collected(stack)
    _, ack = await post_hl7(stack, oru("POS-1", specimen, pid, obx=POSITIVE))
    assert ack.ack_code == "AA"
    state = await screening(stack, sid)
    assert state["status"] == "awaiting-review" and state["final_outcome"] is None
    assert "presumptive-unconfirmed" in {f["code"] for f in state["results"][0]["interpretation"]["flags"]}
    denied = await stack.http.post(
        f"/screenings/{sid}/review", json={"decision": "confirm", "explanation": "x"}, headers=stack.auth("staff")
    )
    assert denied.status_code == 403
    confirmed = await stack.http.post(
        f"/screenings/{sid}/review",
        json={"decision": "confirm", "explanation": "no prescription on file"},
        headers=stack.auth("clinician"),
    )
    assert confirmed.status_code == 200 and confirmed.json()["final_outcome"] == "positive"
    again = await stack.http.post(
        f"/screenings/{sid}/review", json={"decision": "excuse", "explanation": "x"}, headers=stack.auth("clinician")
    )
    assert again.status_code == 409 and "not awaiting review" in again.json()["detail"]


async def test_preliminary_final_corrected_sequence(stack):
    pid, sid, specimen = await collected(stack)
    await post_hl7(stack, oru("SEQ-P", specimen, pid, status="P"))
    assert (await screening(stack, sid))["status"] == "preliminary"
    await post_hl7(stack, oru("SEQ-F", specimen, pid, status="F"))
    final = await screening(stack, sid)
    assert final["status"] == "final" and not final["corrected_after_final"]
    await post_hl7(stack, oru("SEQ-C", specimen, pid, obx=POSITIVE, status="C"))
    corrected = await screening(stack, sid)
    assert corrected["corrected_after_final"] and corrected["status"] == "awaiting-review"
    statuses = [(r["result_status"], r["superseded_by"] is not None) for r in corrected["results"]]
    assert statuses == [("P", True), ("F", True), ("C", False)]


async def test_same_message_five_times_at_once_yields_one_result(stack):
    pid, sid, specimen = await collected(stack)
    text = oru("DUP-1", specimen, pid)
    answers = await asyncio.gather(*[post_hl7(stack, text) for _ in range(5)])
    assert {a[1].ack_code for a in answers} == {"AA"} and len({a[0] for a in answers}) == 1
    with Session(stack.engine) as session:
        assert len(session.exec(select(LabMessage).where(LabMessage.control_id == "DUP-1")).all()) == 1
        assert len(session.exec(select(LabResult).where(LabResult.screening_id == sid)).all()) == 1
    assert len((await screening(stack, sid))["results"]) == 1


async def quarantine(stack, reason_code):
    page = (await stack.http.get(f"/lab/quarantine?reason_code={reason_code}", headers=stack.auth("staff"))).json()
    return page["items"]


async def test_unknown_specimen_mismatch_and_unparseable_are_held_with_reasons(stack):
    pid, sid, specimen = await collected(stack)
    _, unknown = await post_hl7(stack, oru("Q-1", "s-nope-20260101-r.1", pid))
    assert unknown.ack_code == "AE" and "no screening has the specimen" in unknown.error_texts[0]
    _, mismatch = await post_hl7(stack, oru("Q-2", specimen, pid, dob="1970-01-01"))
    assert mismatch.ack_code == "AE" and "identifiers do not match our records" in mismatch.error_texts[0]
    _, garbage = await post_hl7(stack, "this is not HL7 at all")
    assert garbage.ack_code in ("AR", "AE")
    _, adt = await post_hl7(stack, oru("Q-3", specimen, pid).replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"))
    assert adt.ack_code == "AR" and "ORU^R01" in adt.error_texts[0]

    assert any("s-nope" in q["reason"] for q in await quarantine(stack, "unknown-specimen"))
    assert any(q["screening_id"] == sid for q in await quarantine(stack, "identifier-mismatch"))
    assert len(await quarantine(stack, "unparseable")) >= 2
    with Session(stack.engine) as session:
        raws = [m.raw for m in session.exec(select(LabMessage)).all()]
    assert "this is not HL7 at all" in raws and any("Q-2" in r for r in raws)
    assert (await screening(stack, sid))["results"] == []  # nothing was filed on the screening

    mismatched = (await quarantine(stack, "identifier-mismatch"))[0]["id"]
    rejected = await stack.http.post(
        f"/lab/quarantine/{mismatched}/resolve",
        json={"action": "reject", "note": "wrong patient on requisition"},
        headers=stack.auth("staff"),
    )
    assert rejected.status_code == 200 and rejected.json()["resolution"] == "rejected"


async def test_unmapped_code_is_held_then_mapped_and_attached(stack):
    # Issue 19: the mapped analytes (validity) are filed; the unknown code is held on its own.
    pid, sid, specimen = await collected(stack)
    obx = ["ST|BZOU^Benzo screen^L||NEG|||N", *VALID]
    _, ack = await post_hl7(stack, oru("MAP-1", specimen, pid, obx=obx))
    assert ack.ack_code == "AA" and "BZOU" in ack.error_texts[0]
    [item] = [q for q in await quarantine(stack, "held-code") if q["screening_id"] == sid]
    early = await stack.http.post(
        f"/lab/quarantine/{item['id']}/resolve",
        json={"action": "mapped", "note": "verified"},
        headers=stack.auth("staff"),
    )
    assert early.status_code == 409 and "BZOU" in early.json()["detail"]
    bad = await stack.http.post(
        "/lab/code-mappings",
        json={"lab_id": "ACME REFERENCE LAB", "code": "BZOU", "analyte": "benzos"},
        headers=stack.auth("admin"),
    )
    assert bad.status_code == 422 and "GET /lab/analytes" in bad.json()["detail"]
    mapped = await stack.http.post(
        "/lab/code-mappings",
        json={"lab_id": "ACME REFERENCE LAB", "code": "BZOU", "analyte": "benzodiazepines"},
        headers=stack.auth("admin"),
    )
    assert mapped.status_code == 201
    attached = await stack.http.post(
        f"/lab/quarantine/{item['id']}/resolve",
        json={"action": "mapped", "note": "mapping added"},
        headers=stack.auth("staff"),
    )
    assert attached.status_code == 200, attached.text
    assert attached.json()["resolution"] == "mapped"
    assert (await screening(stack, sid))["final_outcome"] == "negative"


async def test_json_results_and_resend(stack):
    pid, sid, specimen = await collected(stack)
    body = {
        "lab_id": "ACME REFERENCE LAB",
        "message_id": "R-1",
        "specimen_id": specimen,
        "result_status": "F",
        "participant_id": pid,
        "results": [
            {"code": "3393-6", "value": 10, "units": "ng/mL", "cutoff": 150},
            {"code": "2161-8", "value": 90, "units": "mg/dL"},
            {"code": "2965-2", "value": 1.012},
            {"code": "2756-5", "value": 6.5},
        ],
    }
    first = await stack.http.post("/lab/results", json=body, headers=stack.auth("lab"))
    assert first.status_code == 200, first.text
    assert first.json()["ack_code"] == "AA" and first.json()["outcomes"][0]["state"] == "filed"
    again = await stack.http.post("/lab/results", json=body, headers=stack.auth("lab"))
    assert again.json()["replayed"] is True and again.json()["outcomes"] == first.json()["outcomes"]
    assert len((await screening(stack, sid))["results"]) == 1
    invalid = await stack.http.post("/lab/results", json={**body, "result_status": "X"}, headers=stack.auth("lab"))
    assert invalid.status_code == 422 and "result_status" in invalid.json()["detail"]
    staff = await stack.http.post("/lab/results", json=body, headers=stack.auth("staff"))
    assert staff.status_code == 403


async def test_turnaround_is_judged_against_the_participants_programs_target(stack):
    """Issue 19: the target is a program setting (48 h unless the program sets one). A result final 30 h after
    collection is over a program's 24 h target and within the default 48 h; target_hours still overrides."""
    from datetime import timedelta

    from store.models import Screening

    week = {d: ["00:00", "23:59"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    program = {
        "program_id": "fast-lab-court",
        "name": "Court with a 24 h lab target",
        "lab_turnaround_hours": 24,
        "sites": {"north": {"timezone": "UTC", "hours": week}},
        "phases": [{"name": "phase-1", "tests_per_week": 2, "min_per_rolling_week": 0, "max_per_rolling_week": 4}],
    }
    created = await stack.http.post("/programs", json=program, headers=stack.auth("admin"))
    assert created.status_code == 201, created.text
    assert created.json()["definition"]["lab_turnaround_hours"] == 24
    too_long = await stack.http.put(
        "/programs/fast-lab-court", json={**program, "lab_turnaround_hours": 0.5}, headers=stack.auth("admin")
    )
    assert too_long.status_code == 422 and "lab_turnaround_hours" in too_long.text

    pid = (await stack.enroll(program="fast-lab-court"))["id"]
    sid = (
        await stack.http.post(
            f"/participants/{pid}/screenings", json={"reason": "lab test"}, headers=stack.auth("staff")
        )
    ).json()["screening_id"]
    specimen = (await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))).json()[
        "specimen_id"
    ]
    _, ack = await post_hl7(stack, oru("TAT-24", specimen, pid))
    assert ack.ack_code == "AA" and (await screening(stack, sid))["status"] == "final"
    with Session(stack.engine) as session:  # final 30 h after collection, as far as the report can tell
        row = session.get(Screening, sid)
        assert row is not None and row.collected_at is not None
        row.collected_at -= timedelta(hours=30)
        session.add(row)
        session.commit()

    report = await stack.http.get(
        "/reports/lab-turnaround", params={"lab_id": "ACME REFERENCE LAB"}, headers=stack.auth("staff")
    )
    assert report.status_code == 200, report.text
    [lab] = report.json()["items"]
    assert (lab["target_hours"], lab["targets"], lab["over_target"]) == (24, {"fast-lab-court": 24}, 1)
    wider = (
        await stack.http.get(
            "/reports/lab-turnaround",
            headers=stack.auth("staff"),
            params={"lab_id": "ACME REFERENCE LAB", "target_hours": 48},
        )
    ).json()["items"]
    assert (wider[0]["target_hours"], wider[0]["over_target"]) == (48, 0)
