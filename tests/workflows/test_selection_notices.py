"""Issue 21 on the time-skipping server: each selection period's commitment, and its seed once the period is
over, go to the recipients that subscribe (signed webhooks checked by a real receiver with `standardwebhooks`,
mail through a real SMTP relay), retried like reports; the seed is revealed by the period's own workflow on a
Temporal timer; a public beacon entered ahead is mixed into every roll and a tampered one is caught."""

from __future__ import annotations

import copy
import email
import json
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session, select

from activities.disclosure import SmtpSettings
from domain import verifiable
from domain.clock import local_date
from iop.worker import build_worker
from store import selection
from store.models import AuditEvent, SelectionDraw
from tests.conftest import unique
from tests.helpers import api_stack
from tests.receiver import webhook_receiver
from tests.workflows.test_program_calendar import ZONE, enroll, store_program
from tests.workflows.test_report_email import Inbox, free_port
from tests.workflows.test_screening_program import skip
from tests.workflows.test_verifiable_selection import standalone
from workflows.participant import ParticipantWorkflow


async def skip_until(env, moment: datetime) -> None:
    span = moment - await env.get_current_time()
    if span > timedelta(0):
        await skip(env, span)


async def move_to_day(env, day_of_month: int) -> None:
    """Let time pass (no workflow runs yet) until the given day of a month, local noon."""
    now = (await env.get_current_time()).astimezone(UTC)
    target = now.replace(day=day_of_month, hour=17, minute=0, second=0, microsecond=0)
    if target <= now:
        target = (target.replace(day=1) + timedelta(days=32)).replace(day=day_of_month)
    await skip_until(env, target)


def audited(engine, action: str) -> list[AuditEvent]:
    with Session(engine) as session:
        return [e for e in session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all() if e.action == action]


@pytest.fixture
def inbox():
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


async def add_recipient(stack, receiver, **fields) -> str:
    body = {"name": "County drug court clerk", "kind": "court", "delivery": "webhook", "url": receiver.url, **fields}
    response = await stack.http.post("/recipients", headers=stack.auth("admin"), json=body)
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["signing_secret"]
    return response.json()["id"]


async def test_commitment_and_reveal_notices_reach_the_subscribers_signed_retried_and_revealed_on_time(
    time_env, records_engine, task_queue, tmp_path, inbox
):
    env, engine = time_env, records_engine
    handler, port = inbox
    smtp = SmtpSettings(host="127.0.0.1", port=port, sender="reports@iop.example")
    async with (
        build_worker(env.client, engine, task_queue, smtp=smtp),
        api_stack(env.client, engine, task_queue, tmp_path, with_worker=False) as stack,
    ):
        await move_to_day(env, 28)
        with webhook_receiver() as court, webhook_receiver() as employer:
            court.script = [(503, {})]  # down for the first attempt: the notice is retried
            court_id = await add_recipient(stack, court, notices=["selection-commitments"])
            await add_recipient(stack, employer, kind="employer", categories=["screening-results"])
            mailed = await stack.http.post(
                "/recipients",
                headers=stack.auth("admin"),
                json={
                    "name": "Public defender",
                    "kind": "other",
                    "delivery": "email",
                    "email": "pd@defender.example",
                    "categories": ["program-status"],
                },
            )
            assert mailed.status_code == 201 and mailed.json()["notices"] == [], mailed.text
            pd_id = mailed.json()["id"]
            subscribed = await stack.http.put(
                f"/recipients/{pd_id}/notices", headers=stack.auth("admin"), json={"notices": ["selection-commitments"]}
            )
            assert subscribed.status_code == 200 and subscribed.json()["notices"] == ["selection-commitments"]
            staff_try = await stack.http.put(
                f"/recipients/{pd_id}/notices", headers=stack.auth("staff"), json={"notices": []}
            )
            assert staff_try.status_code == 403

            program = unique("court-n")
            store_program(engine, program, {})
            today = local_date(await env.get_current_time(), ZONE)
            handle = await enroll(env, engine, task_queue, program, today)
            period = f"{today:%Y-%m}"
            reveal_at = verifiable.reveal_moment(period)
            await skip_until(env, reveal_at - timedelta(hours=1))

            with Session(engine) as session:
                row = selection.find(session, program, period)
            assert row is not None and row.seed_revealed is None, "nothing is revealed before the period is over"
            commitment_id = verifiable.notice_id(program, period, "commitment", court_id)
            tries = [r for r in court.requests if r["headers"]["webhook-id"] == commitment_id]
            assert [r["status"] for r in tries] == [503, 200] and all(r["verified"] for r in tries)
            sent = court.kept[commitment_id]
            assert (sent["type"], sent["program"], sent["period"], sent["commitment"]) == (
                "selection.commitment",
                program,
                period,
                row.commitment,
            )
            assert "seed" not in sent and sent["beacon_round"] == verifiable.beacon_round(
                datetime.fromisoformat(sent["published_at"])
            )

            await skip_until(env, reveal_at + timedelta(hours=1))
            with Session(engine) as session:
                row = selection.find(session, program, period)
            assert (
                row.seed_revealed
                and verifiable.commitment(bytes.fromhex(row.seed_revealed), program, period) == row.commitment
            )
            reveal_id = verifiable.notice_id(program, period, "reveal", court_id)
            revealed = court.kept[reveal_id]
            assert (revealed["type"], revealed["seed"], revealed["commitment"]) == (
                "selection.reveal",
                row.seed_revealed,
                row.commitment,
            )
            assert all(r["verified"] for r in court.requests)
            assert employer.requests == [], "a recipient that does not subscribe is sent no notice"

            # The reveal was the period's workflow's, on its timer, audited as the system's.
            assert [(e.subject_id, e.actor) for e in audited(engine, "selection.reveal")] == [
                (f"{program}:{period}", "system")
            ]
            shown = (
                await stack.http.get("/selection/commitments", params={"program": program}, headers=stack.auth("lab"))
            ).json()["items"]
            assert [(c["period"], c["seed"]) for c in shown if c["period"] == period] == [(period, row.seed_revealed)]

            # The delivery record, and mail through the relay with the notice attached.
            listed = await stack.http.get(
                "/selection/notices", params={"program": program, "period": period}, headers=stack.auth("auditor")
            )
            assert listed.status_code == 200, listed.text
            records = {(n["recipient_id"], n["kind"]): n for n in listed.json()["items"]}
            assert set(records) == {
                (court_id, "commitment"),
                (court_id, "reveal"),
                (pd_id, "commitment"),
                (pd_id, "reveal"),
            }
            assert all(n["status"] == "delivered" for n in records.values())
            assert records[(court_id, "commitment")]["attempts"] == 2
            mails = [
                email.message_from_bytes(raw, policy=policy.default)
                for to, raw in handler.messages
                if to == ["pd@defender.example"]
            ]
            attached = [json.loads(part.get_content()) for m in mails for part in m.iter_attachments()]
            mine = sorted(
                (a["type"], a.get("seed")) for a in attached if a["period"] == period and a["program"] == program
            )
            assert mine == [("selection.commitment", None), ("selection.reveal", row.seed_revealed)]
            assert any(row.commitment in m.get_body(("plain",)).get_content() for m in mails)
            assert audited(engine, "selection.notice.commitment") and audited(engine, "selection.notice.reveal")

            # No participant's information in any notice.
            pid = (await handle.query(ParticipantWorkflow.status)).participant_id
            everything = b" ".join(r["body"] for r in court.requests) + b" ".join(raw for _, raw in handler.messages)
            for private in (pid, "Person", "+15555550100", "1980-01-01"):
                assert private.encode() not in everything, private
            await handle.terminate("test over")


async def test_a_beacon_entered_ahead_is_in_every_roll_and_a_tampered_one_is_caught(
    time_env, records_engine, task_queue, tmp_path
):
    env, engine = time_env, records_engine
    async with api_stack(env.client, engine, task_queue, tmp_path) as stack:
        await move_to_day(env, 26)
        program = unique("court-b")
        store_program(engine, program, {})
        period = f"{local_date(await env.get_current_time(), ZONE):%Y-%m}"
        admin = stack.auth("admin")
        for role in ("staff", "auditor"):
            refused = await stack.http.post(
                "/selection/periods", headers=stack.auth(role), json={"program": program, "period": period}
            )
            assert refused.status_code == 403
        past = await stack.http.post(
            "/selection/periods", headers=admin, json={"program": program, "period": "2020-01"}
        )
        assert past.status_code == 422 and "over" in past.json()["detail"]
        opened = await stack.http.post("/selection/periods", headers=admin, json={"program": program, "period": period})
        assert opened.status_code == 201, opened.text
        the_round, commitment = opened.json()["beacon_round"], opened.json()["commitment"]
        randomness = "c0ffee" + "1" * 58
        path = f"/selection/periods/{program}/{period}/beacon"

        early = await stack.http.put(path, headers=admin, json={"round": the_round - 20, "randomness": randomness})
        assert early.status_code == 422 and f"round {the_round}" in early.json()["detail"], early.text
        malformed = await stack.http.put(path, headers=admin, json={"round": the_round, "randomness": "xyz"})
        assert malformed.status_code == 422
        nobody = await stack.http.put(
            f"/selection/periods/{program}-none/{period}/beacon",
            headers=admin,
            json={"round": the_round, "randomness": randomness},
        )
        assert nobody.status_code == 409 and "open the period first" in nobody.json()["detail"]
        fixed = await stack.http.put(path, headers=admin, json={"round": the_round, "randomness": randomness})
        assert fixed.status_code == 200, fixed.text
        beacon = f"drand:quicknet:{the_round}:{randomness}"
        assert fixed.json()["beacon"] == beacon and fixed.json()["commitment"] == commitment
        again = await stack.http.put(path, headers=admin, json={"round": the_round, "randomness": randomness})
        assert again.status_code == 200  # the same value again changes nothing
        other = await stack.http.put(path, headers=admin, json={"round": the_round, "randomness": "2" * 64})
        assert other.status_code == 409 and "cannot change" in other.json()["detail"]
        assert [e.detail for e in audited(engine, "selection.beacon")] == [f"beacon {beacon}"]

        today = local_date(await env.get_current_time(), ZONE)
        handles = [await enroll(env, engine, task_queue, program, today) for _ in range(2)]
        await skip_until(env, verifiable.reveal_moment(period) + timedelta(hours=1))

        # The next period was opened by its first roll, without a beacon: one now is refused.
        following = f"{verifiable.period_end(period) + timedelta(days=1):%Y-%m}"
        commitments = {
            c["period"]: c
            for c in (
                await stack.http.get("/selection/commitments", params={"program": program}, headers=admin)
            ).json()["items"]
        }
        late = await stack.http.put(
            f"/selection/periods/{program}/{following}/beacon",
            headers=admin,
            json={"round": commitments[following]["beacon_round"], "randomness": randomness},
        )
        assert late.status_code == 409, late.text
        detail = late.json()["detail"]
        assert "has been drawn from" in detail and "before a period's first draw" in detail

        shown = commitments[period]
        assert (shown["beacon"], shown["commitment"]) == (beacon, commitment) and shown["seed"]
        with Session(engine) as session:
            export = json.loads(json.dumps(selection.export(session, program, period)))
            draws = session.exec(select(SelectionDraw)).all()
        assert export["beacon"] == beacon and export["beacon_entered_at"] and len(export["draws"]) >= 2 * 3
        seed = bytes.fromhex(shown["seed"])
        first = export["draws"][0]
        assert first["roll"] == verifiable.roll(seed, program, first["participant_id"], first["day"], "select", beacon)
        assert first["roll"] != verifiable.roll(seed, program, first["participant_id"], first["day"], "select", None)
        assert {d.participant_id for d in draws} >= {d["participant_id"] for d in export["draws"]}
        script = standalone()
        assert verifiable.verify_export(export, shown["seed"], commitment_hex=commitment, beacon_text=beacon) == []
        assert script.check(export, shown["seed"], commitment, beacon) == []

        tampered = copy.deepcopy(export)
        tampered["beacon"] = f"drand:quicknet:{the_round}:{'3' * 64}"
        found = verifiable.verify_export(tampered, shown["seed"])
        assert any(f.where != "beacon" and f.problem.startswith("roll") for f in found), found
        assert any(f.where == "beacon" for f in verifiable.verify_export(tampered, shown["seed"], beacon_text=beacon))
        assert any(
            p.startswith("beacon: the export says") for p in script.check(tampered, shown["seed"], commitment, beacon)
        )
        assert any("roll recorded" in p for p in script.check(tampered, shown["seed"], commitment))
        chosen = copy.deepcopy(export)  # another round, with its rolls recomputed to match: still not the named one
        chosen["beacon"] = f"drand:quicknet:{the_round + 1}:{randomness}"
        for d in chosen["draws"]:
            d["roll"] = verifiable.roll(seed, program, d["participant_id"], d["day"], "select", chosen["beacon"])
        assert any(
            f.where == "beacon" and f"round {the_round}" in f.problem
            for f in verifiable.verify_export(chosen, shown["seed"])
        )
        assert any("not the round the commitment named" in p for p in script.check(chosen, shown["seed"]))
        for handle in handles:
            await handle.terminate("test over")
