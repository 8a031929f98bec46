"""A worker killed with SIGKILL in the middle of a delivery: after a restart the report arrives,
and the receiver keeps one copy, recognised by its webhook-id."""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import threading

from sqlmodel import Session

from domain.webhook_signing import new_webhook_secret
from iop.codec import format_key
from store.models import Disclosure
from tests.conftest import TEST_KEYS
from tests.receiver import webhook_receiver
from tests.workflows.test_disclosure_delivery import setup_records, start_delivery


def worker_process(dev_env, database_url: str, task_queue: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "IOP_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "IOP_DATABASE_URL": database_url,
        "IOP_TASK_QUEUE": task_queue,
        "IOP_CODEC_KEYS": ",".join(format_key(k) for k in TEST_KEYS),
        "IOP_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "iop.cli", "worker"], env=env)


async def test_sigkill_during_delivery_then_restart_delivers_once(dev_env, records_engine, task_queue):
    database_url = records_engine.url.render_as_string(hide_password=False)
    first_request_arrived, release = threading.Event(), threading.Event()
    with webhook_receiver() as receiver:
        receiver.secret = new_webhook_secret(secrets.token_bytes(32))
        original_answer = receiver.answer

        def hold_the_first(*args):
            if not first_request_arrived.is_set():
                first_request_arrived.set()
                release.wait(30)  # the worker dies while its request is in flight
            return original_answer()

        receiver.answer = hold_the_first
        pid, _, _ = setup_records(records_engine, receiver.url, receiver.secret)
        dev_env.task_queue = task_queue
        worker = worker_process(dev_env, database_url, task_queue)
        try:
            handle, disclosure_id = await start_delivery(dev_env, records_engine, pid)
            assert await asyncio.to_thread(first_request_arrived.wait, 60), "the first attempt never arrived"
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            release.set()
            worker = worker_process(dev_env, database_url, task_queue)
            result = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            worker.kill()
            worker.wait(10)
    assert result.status == "delivered"
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) >= 2 and set(ids) == {disclosure_id}  # sent again after the crash, same id
    assert list(receiver.kept) == [disclosure_id]  # one report at the receiver
    with Session(records_engine) as session:
        assert session.get(Disclosure, disclosure_id).status == "delivered"
