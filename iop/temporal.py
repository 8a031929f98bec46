"""Connecting to Temporal with the project's one data converter."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.converter import DataConverter

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


async def connect(settings: Settings, *, lazy: bool = False, service: str = "iop", worker_index: int | None = None
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
        **({"runtime": runtime} if runtime else {}),
    )
