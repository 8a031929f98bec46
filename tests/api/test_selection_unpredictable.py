"""Nobody, in any role, can read a participant's next draw's rolls before the draw minute (issue 21):
not the minute's roll the workflow holds while it waits, nor the outcome's roll the seed already fixes."""

import asyncio
import base64
import json

from sqlmodel import Session

from domain import verifiable
from iop.codec import open_text
from store import selection
from tests.conftest import TEST_KEYS
from workflows.participant import ParticipantWorkflow

ROLES = ("admin", "staff", "clinician", "lab", "auditor")
ROLL_FIELDS = ("pending_time_roll", "verifiable_roll_for", "time_roll_pending", "draw_minute", "day_plan")


def forms(value: float) -> list[str]:
    text = json.dumps(value)
    return [text, base64.b64encode(text.encode()).decode()]


async def test_no_role_sees_a_roll_before_its_draw_minute(stack):
    pid = (await stack.enroll())["id"]
    handle = stack.temporal.get_workflow_handle(f"participant-{pid}")
    for _ in range(200):  # until the workflow has planned its first draw
        state = await handle.query(ParticipantWorkflow.status)
        if state.pending_time_roll is not None:
            break
        await asyncio.sleep(0.05)
    assert state.pending_time_roll is not None and state.verifiable_roll_for == state.next_draw_day
    with Session(stack.engine) as session:
        period = selection.find(session, state.program, state.next_draw_day[:7])
    seed = bytes.fromhex(open_text(TEST_KEYS, period.seed_sealed))
    minute = verifiable.roll(seed, state.program, pid, state.next_draw_day, verifiable.MINUTE, period.beacon)
    outcome = verifiable.roll(seed, state.program, pid, state.next_draw_day, verifiable.SELECT, period.beacon)
    assert minute == state.pending_time_roll
    secrets = forms(minute) + forms(outcome) + [seed.hex()]

    paused = await stack.http.post(
        f"/participants/{pid}/pauses",
        headers=stack.auth("staff"),
        json={"start": "2028-01-01", "end": "2028-01-02", "reason": "approved travel"},
    )
    assert paused.status_code == 200, paused.text
    answers = {"POST pauses": paused.text}
    checked_in = await stack.http.post(
        "/check-ins", headers=stack.auth("staff"), json={"participant_id": pid, "method": "kiosk"}
    )
    assert checked_in.status_code == 200 and not checked_in.json()["must_test"], checked_in.text
    answers["POST check-ins"] = checked_in.text
    for role in ROLES:
        for path in (
            f"/participants/{pid}",
            f"/participants/{pid}/draws",
            f"/participants/{pid}/history",
            f"/workflows/participant-{pid}/history",
            "/selection/commitments",
            "/participants",
            "/selection/notices",
            f"/participants/{pid}/screenings",
            f"/screenings?participant_id={pid}",
        ):
            response = await stack.http.get(path, headers=stack.auth(role))
            assert response.status_code in (200, 403), (role, path, response.text)
            answers[f"{role} {path}"] = response.text
    changed = await stack.http.post(
        f"/participants/{pid}/phase",
        headers=stack.auth("clinician"),
        json={"phase": "phase-2", "reason": "thirty days negative"},
    )
    assert changed.status_code == 200, changed.text
    answers["POST phase"] = changed.text
    # Not even empty: no public answer has a field for the next draw's rolls or the day's cached plan (the raw
    # Temporal history shows the workflow's own state, with the rolls withheld: the value check covers it).
    named = [
        (where, key)
        for where, text in answers.items()
        for key in ROLL_FIELDS
        if f'"{key}"' in text and "/workflows/" not in where
    ]
    assert not named, named
    commitments = json.loads(answers["auditor /selection/commitments"])["items"]
    assert [c["commitment"] for c in commitments if c["program"] == state.program] == [period.commitment]
    assert all(c["seed"] is None for c in commitments)
    assert json.loads(answers["admin /workflows/participant-" + pid + "/history"])["items"], "the raw history is shown"
    leaks = [(where, secret) for where, text in answers.items() for secret in secrets if secret in text]
    assert not leaks, "; ".join(f"{where} shows {secret[:8]}" for where, secret in leaks)
