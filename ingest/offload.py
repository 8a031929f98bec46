"""CPU-heavy work on lab messages, off the event loop.

A thread is not enough for a large message: parsing 60,000 OBX segments allocates millions of
objects, and CPython's full garbage collections (seconds long on such a heap) hold the GIL, so
the event loop stalls as if the parse ran on it. Messages above LARGE_BYTES are therefore parsed
in a worker process (spawned, never forked from a threaded server); smaller ones in a thread.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from fastapi.concurrency import run_in_threadpool

T = TypeVar("T")
LARGE_BYTES = 256 * 1024

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


async def off_loop(function: Callable[[str], T], text: str) -> T:
    """`function(text)` in a thread, or in the worker process when the text is large. `function`
    must be importable by name (module level) and its result picklable."""
    if len(text) < LARGE_BYTES:
        return await run_in_threadpool(function, text)
    pool = _executor()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, function, text)
    except BrokenProcessPool:  # the worker died (killed, out of memory): a new one next time
        _discard(pool)
        raise


def shutdown() -> None:
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
