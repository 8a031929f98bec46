import pytest_asyncio

from tests.helpers import api_stack


@pytest_asyncio.fixture
async def stack(dev_env, records_engine, task_queue, tmp_path):
    async with api_stack(dev_env.client, records_engine, task_queue, tmp_path) as s:
        yield s
