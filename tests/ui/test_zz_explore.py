import json, pytest
from datetime import date
from tests.helpers import api_stack
from tests.api.test_lab import POSITIVE, oru, post_hl7, URINE
from tests.api.test_disclosures import add_recipient, consent_body, add_consent
from tests.receiver import webhook_receiver

async def test_explore(dev_env, records_engine, task_queue, tmp_path):
    out = {}
    with webhook_receiver() as court:
        async with api_stack(dev_env.client, records_engine, task_queue, tmp_path) as stack:
            court_id = await add_recipient(stack, court, "court", ["screening-results"], case_system="county-drug-court")
            pid = (await stack.enroll())["id"]
            await add_consent(stack, pid, consent_body(court_id, ["screening-results"]))
            r = await stack.http.post(f"/participants/{pid}/screenings", json={"reason": "x"}, headers=stack.auth("staff"))
            out["forcause"] = r.json(); sid = r.json()["screening_id"]
            r = await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
            out["collection"] = r.json(); spec = r.json()["specimen_id"]
            await post_hl7(stack, oru("X1", spec, pid, obx=POSITIVE))
            out["screening_detail"] = (await stack.http.get(f"/screenings/{sid}", headers=stack.auth("staff"))).json()
            r = await stack.http.post(f"/screenings/{sid}/review", json={"decision": "confirm", "explanation": "no rx"}, headers=stack.auth("clinician"))
            out["review"] = r.json()
            r = await stack.http.post(f"/participants/{pid}/medications", headers=stack.auth("clinician"), json={
                "drug": "methadone", "dose": 60, "unit": "mg", "route": "oral", "schedule": {"kind": "daily-observed"},
                "start_date": date.today().isoformat(), "prescriber": "Dr X"})
            out["order"] = r.json()
            if r.status_code == 201:
                oid = r.json()["id"]
                out["dispense"] = (await stack.http.post(f"/medications/{oid}/dispenses", json={"kind": "observed-dose", "dose": 60, "unit": "mg"}, headers=stack.auth("staff"))).json()
                out["med_detail"] = (await stack.http.get(f"/medications/{oid}", headers=stack.auth("staff"))).json()
            out["participant"] = (await stack.http.get(f"/participants/{pid}", headers=stack.auth("staff"))).json()
            out["screenings"] = (await stack.http.get(f"/participants/{pid}/screenings", headers=stack.auth("staff"))).json()
            out["draws"] = (await stack.http.get(f"/participants/{pid}/draws", headers=stack.auth("staff"))).json()
            out["today"] = (await stack.http.get(f"/dispensing/today", headers=stack.auth("staff"))).json()
            out["consents"] = (await stack.http.get(f"/participants/{pid}/consents", headers=stack.auth("staff"))).json()
            import asyncio
            for _ in range(100):
                d = (await stack.http.get(f"/disclosures?participant_id={pid}", headers=stack.auth("staff"))).json()
                if d["items"] and d["items"][0]["status"] != "pending": break
                await asyncio.sleep(0.2)
            out["disclosures"] = d
            out["history"] = (await stack.http.get(f"/participants/{pid}/history", headers=stack.auth("staff"))).json()
            out["quarantine"] = (await stack.http.get(f"/lab/quarantine", headers=stack.auth("staff"))).json()
            out["recipients"] = (await stack.http.get(f"/recipients", headers=stack.auth("staff"))).json()
            out["403"] = (await stack.http.get(f"/recipients", headers=stack.auth("lab"))).json()
    open("/tmp/explore.json", "w").write(json.dumps(out, indent=1))
