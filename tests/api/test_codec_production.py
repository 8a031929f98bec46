"""Production mode: the worker refuses payloads that were not encrypted by our codec, so an update
sent straight to Temporal's port (no API, no audit) cannot finalise a review; the codec's encode
endpoint is for admins only."""

from __future__ import annotations

import asyncio
import base64

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from iop import codec as codec_module
from iop.settings import Settings
from iop.temporal import converter
from tests.api.test_lab import POSITIVE, URINE, collected, oru, post_hl7, screening
from tests.conftest import TEST_KEYS
from tests.helpers import api_stack
from workflows.screening import workflow_id as screening_workflow_id


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def test_a_production_codec_refuses_plain_payloads_a_development_one_passes_them():
    strict = codec_module.data_converter(TEST_KEYS, refuse_plain=True).payload_codec
    lenient = codec_module.data_converter(TEST_KEYS).payload_codec
    [refused] = asyncio.run(strict.decode([_plain('{"decision": "confirm"}')]))
    assert b"confirm" not in refused.SerializeToString()
    with pytest.raises(Exception, match="refused-unencrypted"):  # nothing can read it
        codec_module.data_converter(TEST_KEYS).payload_converter.from_payloads([refused])
    assert asyncio.run(lenient.decode([_plain("1")])) == [_plain("1")]
    sealed = asyncio.run(strict.encode([_plain("2")]))
    assert asyncio.run(strict.decode(sealed)) == [_plain("2")]
    # Settings decide: production refuses, development does not.
    spec = codec_module.format_key(TEST_KEYS[0])
    assert converter(Settings(env="production", codec_keys=spec)).payload_codec.refuse_plain
    assert not converter(Settings(env="development", codec_keys=spec)).payload_codec.refuse_plain


@pytest_asyncio.fixture
async def production_stack(dev_env, records_engine, task_queue, tmp_path):
    target = dev_env.client.service_client.config.target_host
    client = await Client.connect(target, data_converter=codec_module.data_converter(TEST_KEYS, refuse_plain=True))
    async with api_stack(client, records_engine, task_queue, tmp_path) as stack:
        yield stack


async def test_an_update_sent_around_the_codec_does_not_finalise_a_review(production_stack, dev_env):
    stack = production_stack
    pid, sid, specimen = await collected(stack)
    _, ack = await post_hl7(stack, oru("PROD-1", specimen, pid, obx=POSITIVE))
    assert ack.ack_code == "AA"
    assert (await screening(stack, sid))["status"] == "awaiting-review"

    # Straight to Temporal's port, with the SDK's default (plain JSON) converter: no codec, no API.
    target = dev_env.client.service_client.config.target_host
    intruder = await Client.connect(target)
    forged = {"decision": "excuse", "explanation": "forged", "actor": "nobody"}
    with pytest.raises(Exception):  # noqa: B017 - any failure will do, as long as it fails
        await asyncio.wait_for(
            intruder.get_workflow_handle(screening_workflow_id(sid)).execute_update("review", forged), 30
        )

    state = await screening(stack, sid)
    assert state["status"] == "awaiting-review" and state["final_outcome"] is None and state["reviews"] == []
    # The real route still works afterwards: the workflow was not wedged by the attempt.
    done = await stack.http.post(
        f"/screenings/{sid}/review",
        json={"decision": "confirm", "explanation": "checked"},
        headers=stack.auth("clinician"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["final_outcome"] == "positive" and len(done.json()["reviews"]) == 1


async def test_a_signal_sent_around_the_codec_is_dropped(production_stack, dev_env):
    stack = production_stack
    pid = (await stack.enroll())["id"]
    made = await stack.http.post(
        f"/participants/{pid}/screenings", json={"reason": "signal test"}, headers=stack.auth("staff")
    )
    sid = made.json()["screening_id"]
    intruder = await Client.connect(dev_env.client.service_client.config.target_host)
    await intruder.get_workflow_handle(screening_workflow_id(sid)).signal("cancel", "forged")
    # An update through the API comes after the signal in the workflow's history: had the signal been
    # acted on, the screening would be cancelled and refuse the collection.
    collected_now = await stack.http.post(f"/screenings/{sid}/collection", json=URINE, headers=stack.auth("staff"))
    assert collected_now.status_code == 200, collected_now.text
    state = await screening(stack, sid)
    assert state["status"] != "cancelled" and state["cancel_reason"] is None


async def test_codec_encode_is_admin_only_decode_stays_with_auditors(stack):
    body = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'"x"').decode(),
            }
        ]
    }
    for role, expected in (("admin", 200), ("auditor", 403), ("clinician", 403)):
        answer = await stack.http.post("/codec/encode", json=body, headers=stack.auth(role))
        assert answer.status_code == expected, (role, answer.text)
    sealed = (await stack.http.post("/codec/encode", json=body, headers=stack.auth("admin"))).json()
    opened = await stack.http.post("/codec/decode", json=sealed, headers=stack.auth("auditor"))
    assert opened.status_code == 200 and opened.json() == body
