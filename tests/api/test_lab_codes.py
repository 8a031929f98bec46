"""Issue 19 end to end on a real dev server: confirmatory codes, partial filing, held codes, no MSH."""

from sqlmodel import Session, select

from store.models import QuarantineItem
from tests.api.test_lab import VALID, collected, oru, post_hl7, screening

NEG_SCREENS = ["NM|3393-6^Benzoylecgonine^LN||12|ng/mL|<150|N", "NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N"]


async def test_a_confirmatory_loinc_code_is_a_confirmation_whatever_the_mapping_default(stack):
    # A clinic mapping made with the default method ("screen") does not turn it into a screen.
    made = await stack.http.post(
        "/lab/code-mappings",
        json={"lab_id": "ACME REFERENCE LAB", "code": "14315-6", "analyte": "benzoylecgonine"},
        headers=stack.auth("admin"),
    )
    assert made.status_code == 201, made.text
    pid, sid, specimen = await collected(stack)
    obx = ["NM|14315-6^Benzoylecgonine^LN||640|ng/mL|<100|A", "NM|11235-9^Fentanyl^LN||0|ng/mL|<1|N", *VALID]
    _, ack = await post_hl7(stack, oru("CONF-1", specimen, pid, obx=obx))
    assert ack.ack_code == "AA"
    state = await screening(stack, sid)
    result = state["results"][0]
    finding = next(f for f in result["interpretation"]["findings"] if f["analyte"] == "benzoylecgonine")
    assert finding["method"] == "confirm" and finding["outcome"] == "confirmed-positive"
    method = next(m for m in result["methods"] if m["code"] == "14315-6")
    assert method["basis"] == "loinc-code" and "confirm" in method["note"]


async def test_unknown_class_is_held_per_code_and_the_rest_is_filed(stack):
    pid, sid, specimen = await collected(stack)
    obx = [*NEG_SCREENS, "ST|BARB^Barbiturates^L||NEG||", *VALID]
    text, ack = await post_hl7(stack, oru("PART-1", specimen, pid, obx=obx))
    assert ack.ack_code == "AA", text  # filed: nothing for the lab to resend
    assert "BARB" in text and "held" in text
    state = await screening(stack, sid)
    assert state["status"] == "awaiting-review" and state["final_outcome"] is None
    assert state["results"][0]["held_codes"] == ["BARB (Barbiturates) from ACME REFERENCE LAB"]
    assert state["results"][0]["interpretation"]["overall"] == "negative"
    with Session(stack.engine) as session:
        item = session.exec(
            select(QuarantineItem).where(QuarantineItem.reason_code == "held-code", QuarantineItem.screening_id == sid)
        ).one()
    assert item.reason.startswith("not in the code table: BARB (Barbiturates) from ACME REFERENCE LAB")
    assert (item.lab_id, item.lab_id_source) == ("ACME REFERENCE LAB", "MSH-4")
    # Not final while the code is held.
    early = await stack.http.post(
        f"/screenings/{sid}/review", json={"decision": "confirm", "explanation": "ok"}, headers=stack.auth("clinician")
    )
    assert early.status_code == 409 and "held" in early.json()["detail"]
    listed = (await stack.http.get("/lab/quarantine?reason_code=held-code", headers=stack.auth("staff"))).json()
    assert any(i["id"] == item.id and i["held_code"] and i["lab_id_source"] == "MSH-4" for i in listed["items"])
    done = await stack.http.post(
        f"/lab/quarantine/{item.id}/resolve",
        json={"action": "not-monitored", "note": "barbiturates are not in this program"},
        headers=stack.auth("staff"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["resolution"] == "not-monitored"
    state = await screening(stack, sid)
    assert state["status"] == "final" and state["final_outcome"] == "negative"
    assert any(e["what"] == "held code not-monitored" for e in state["timeline"])


async def test_a_held_code_mapped_later_is_filed_and_interpreted(stack):
    pid, sid, specimen = await collected(stack)
    obx = [*NEG_SCREENS, "NM|OXYC^Oxycodone LCMSMS^L||250|ng/mL|<100|A", *VALID]
    _, ack = await post_hl7(stack, oru("PART-2", specimen, pid, obx=obx))
    assert ack.ack_code == "AA"
    with Session(stack.engine) as session:
        item = session.exec(
            select(QuarantineItem).where(QuarantineItem.screening_id == sid, QuarantineItem.reason_code == "held-code")
        ).one()
    early = await stack.http.post(
        f"/lab/quarantine/{item.id}/resolve", json={"action": "mapped", "note": "x"}, headers=stack.auth("staff")
    )
    assert early.status_code == 409 and "POST /lab/code-mappings" in early.json()["detail"]
    made = await stack.http.post(
        "/lab/code-mappings",
        json={"lab_id": item.lab_id, "code": "OXYC", "analyte": "oxycodone", "method": "confirm"},
        headers=stack.auth("admin"),
    )
    assert made.status_code == 201
    done = await stack.http.post(
        f"/lab/quarantine/{item.id}/resolve",
        json={"action": "mapped", "note": "OXYC is the lab's oxycodone LC-MS/MS"},
        headers=stack.auth("staff"),
    )
    assert done.status_code == 200, done.text
    state = await screening(stack, sid)
    assert state["results"][0]["held_codes"] == [] and state["status"] == "awaiting-review"
    finding = next(f for f in state["results"][0]["interpretation"]["findings"] if f["analyte"] == "oxycodone")
    assert finding["outcome"] == "confirmed-positive"


async def test_text_that_is_not_hl7_at_all_is_rejected_AR(stack):
    text, ack = await post_hl7(stack, "hello, here are the results you asked for\r")
    assert ack.ack_code == "AR", text


async def test_an_admin_added_analyte_is_interpreted_with_its_class_cutoffs_and_medication_link(stack):
    # Before: the workflow's interpreter did not know added analytes ("unknown analyte ...").
    from tests.api.test_medications import BUPRENORPHINE, start

    added = await stack.http.post(
        "/lab/analytes",
        headers=stack.auth("admin"),
        json={
            "key": "buprenorphine_glucuronide",
            "label": "Buprenorphine glucuronide",
            "drug_class": "buprenorphine",
            "medication": "buprenorphine",
            "initial_cutoff": 20,
            "confirm_cutoff": 5,
        },
    )
    assert added.status_code == 201, added.text
    mapped = await stack.http.post(
        "/lab/code-mappings",
        headers=stack.auth("admin"),
        json={
            "lab_id": "ACME REFERENCE LAB",
            "code": "BUPG",
            "analyte": "buprenorphine_glucuronide",
            "method": "confirm",
        },
    )
    assert mapped.status_code == 201, mapped.text
    obx = [*NEG_SCREENS, "NM|BUPG^Buprenorphine glucuronide^L||40|ng/mL|||", *VALID]

    pid, sid, specimen = await collected(stack)  # prescribed buprenorphine: explained
    assert (await start(stack, pid, BUPRENORPHINE)).status_code == 201
    _, ack = await post_hl7(stack, oru("ADD-1", specimen, pid, obx=obx))
    assert ack.ack_code == "AA"
    interpretation = (await screening(stack, sid))["results"][0]["interpretation"]
    finding = next(f for f in interpretation["findings"] if f["analyte"] == "buprenorphine_glucuronide")
    assert (finding["outcome"], finding["cutoff_used"], finding["cutoff_source"]) == (
        "confirmed-positive",
        5.0,
        "clinic-added",
    )
    codes = {f["code"] for f in interpretation["flags"]}
    assert "unexpected-present" not in codes and "expected-not-tested" not in codes, interpretation["flags"]

    pid, sid, specimen = await collected(stack)  # no prescription: the same result is unexpected
    _, ack = await post_hl7(stack, oru("ADD-2", specimen, pid, obx=obx))
    flags = (await screening(stack, sid))["results"][0]["interpretation"]["flags"]
    assert any(f["code"] == "unexpected-present" and f["detail"].startswith("buprenorphine") for f in flags), flags


async def test_the_quarantine_list_filters_by_one_or_several_known_reasons(stack):
    pid, sid, specimen = await collected(stack)
    await post_hl7(stack, oru("FILT-1", specimen, pid, obx=[*NEG_SCREENS, "ST|KAVA^Kavalactones^L||NEG||", *VALID]))
    await post_hl7(stack, oru("FILT-2", "s-not-ours-1", pid))
    await post_hl7(stack, "not a message at all")
    staff = stack.auth("staff")
    both = (
        await stack.http.get("/lab/quarantine?reason_code=held-code&reason_code=unknown-specimen", headers=staff)
    ).json()
    assert {i["reason_code"] for i in both["items"]} == {"held-code", "unknown-specimen"}, both
    held = (await stack.http.get("/lab/quarantine?reason_code=held-code", headers=staff)).json()
    assert {i["reason_code"] for i in held["items"]} == {"held-code"} and held["total"] == len(held["items"])
    # A misspelt reason is refused with the known ones, not answered with an empty list.
    typo = await stack.http.get("/lab/quarantine?reason_code=held-cod", headers=staff)
    assert typo.status_code == 422, typo.text
    assert typo.headers["content-type"].startswith("application/problem+json")
    assert "held-code" in typo.json()["detail"] and "unknown-specimen" in typo.json()["detail"]


def test_every_reason_an_item_is_stored_with_can_be_filtered_on():
    import re
    from pathlib import Path

    from activities.reconciler import STALLED
    from ingest.lab import QUARANTINE_REASONS

    root = Path(__file__).resolve().parents[2]
    stored = set()
    for path in (root / "ingest" / "lab.py", root / "activities" / "reconciler.py"):
        stored |= set(re.findall(r'reason_code="([a-z-]+)"', path.read_text()))
    filing = re.findall(r'raise Quarantined\("([a-z-]+)"', (root / "ingest" / "lab.py").read_text())
    resolving = {"held-code", "nothing-to-attach", "not-a-held-code", "still-unmapped", "already-resolved"}
    assert stored | {STALLED} | (set(filing) - resolving) <= set(QUARANTINE_REASONS)
