"""Connecting to Temporal with the project's one data converter."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from iop.codec import CodecKey, CodecKeyError, data_converter, load_or_create_dev_key, parse_keys
from iop.settings import Settings


def codec_keys(settings: Settings) -> list[CodecKey]:
    if settings.codec_keys:
        return parse_keys(settings.codec_keys)
    if settings.env == "production":
        raise CodecKeyError(
            "IOP_CODEC_KEYS is required in production: set it to 'key-id:base64-of-32-bytes' "
            "(generate one with `iop codec new-key`)"
        )
    return load_or_create_dev_key(settings.data_dir / "codec-key")


def converter(settings: Settings) -> DataConverter:
    return data_converter(codec_keys(settings), refuse_plain=settings.env == "production")


async def connect(
    settings: Settings, *, lazy: bool = False, service: str = "iop", worker_index: int | None = None
) -> Client:
    """A client for `service` (the name its traces carry). A worker's client (worker_index set) has
    the runtime that serves the SDK's metrics when IOP_WORKER_METRICS_ADDRESS is set."""
    from iop import telemetry

    runtime = telemetry.runtime(settings, worker_index) if worker_index is not None else None
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=converter(settings),
        lazy=lazy,
        interceptors=telemetry.interceptors(telemetry.tracer(settings, service)),
        runtime=runtime,
    )


# Temporal did not answer in time, is unreachable, or cannot run the workflow's task right now.
_NOT_NOW = (
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.UNKNOWN,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
)


def not_available_now(exc: BaseException | None) -> bool:
    """Whether a failed call to Temporal may succeed if made again later (the request may even be
    in progress): timeouts, unavailability, and an update refused while the workflow's task is
    failing (WorkflowNotReadyFailure, "Workflow Task in failed state"). Looks through the causes."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (RPCTimeoutOrCancelledError, asyncio.TimeoutError)):
            return True
        if isinstance(exc, RPCError):
            if exc.status in _NOT_NOW or _workflow_not_ready(exc):
                return True
        elif isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
            return True  # a lazy client that never connected raises the core's connection error
        exc, seen = exc.__cause__, seen + 1
    return False


def _workflow_not_ready(exc: RPCError) -> bool:
    if "workflow task in failed state" in str(exc).lower():
        return True
    status = exc.grpc_status
    return any("WorkflowNotReadyFailure" in detail.type_url for detail in getattr(status, "details", ()))
