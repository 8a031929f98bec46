"""Runtime configuration, read from the environment (prefix IOP_).

Never import this from workflow code: reading the environment is a side effect that the workflow
sandbox forbids. Workflows get what they need as inputs.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOP_", env_file=None, extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".data")
    # Empty means SQLite under data_dir; any SQLAlchemy URL (postgresql+psycopg://...) switches.
    database_url: str = ""
    # Empty means the embedded Temporal dev server that `iop dev` starts itself.
    temporal_address: str = ""
    temporal_namespace: str = "default"
    task_queue: str = "iop"
    temporal_dev_port: int = 7233
    temporal_ui_port: int = 8233
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # "key-id:base64(32 bytes)" entries, comma separated; the first encrypts, all decrypt.
    codec_keys: str = Field(default="", repr=False)
    # The audit chain's HMAC keys, "key-id:base64(32 bytes)" entries like the codec keys: the first signs,
    # all verify. Kept out of the database so its role cannot re-sign an edited trail. Empty in development:
    # a generated key in data_dir/audit-key; required in production.
    audit_keys: str = Field(default="", repr=False)
    # Signed checkpoints of the audit chain's head: an append-only file (empty: data_dir/audit-checkpoints.jsonl)
    # and, if set, an auditor's webhook (Standard Webhooks signature with the whsec_ secret).
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_url: str = ""
    audit_checkpoint_secret: str = Field(default="", repr=False)
    # How often the worker's Temporal schedule takes a checkpoint; 0 turns the schedule off.
    audit_checkpoint_minutes: int = Field(default=15, ge=0, le=24 * 60)
    # Origin of the Temporal UI, the only origin allowed to call the codec endpoint from a browser.
    temporal_ui_origin: str = "http://127.0.0.1:8233"
    log_level: str = "INFO"
    # `iop simulate`: the lab's prices per test (the site's currency), for the lab cost it reports.
    sim_cost_per_screen: float = Field(default=10.0, ge=0)
    sim_cost_per_confirmation: float = Field(default=45.0, ge=0)
    # Where participant notifications go. Empty: recorded in the database only (staff call or
    # text from the Today list). A URL: an SMS/voice gateway receives a signed JSON POST.
    notify_webhook_url: str = ""
    notify_webhook_secret: str = Field(default="", repr=False)
    # Urgent worklist items, when they escalate, are paged here: a JSON POST signed like reports
    # (Standard Webhooks; the secret starts with whsec_). It names the item, kind, severity, site and
    # role, never the participant. Empty: no paging (the worklist page shows them).
    worklist_page_url: str = ""
    worklist_page_secret: str = Field(default="", repr=False)
    # Where the gateway posts delivery receipts (this API's /channel/receipts, as the gateway reaches it).
    notify_receipt_url: str = ""
    # The participant channel (/channel/inbound, /channel/receipts): a gateway proves itself with either
    # Twilio's X-Twilio-Signature (its auth token) or a Standard Webhooks signature (a whsec_ secret).
    channel_twilio_auth_token: str = Field(default="", repr=False)
    channel_webhook_secret: str = Field(default="", repr=False)
    # The public base URL the gateway calls (Twilio signs the URL it used), e.g. https://iop.example.org;
    # empty: the URL of the request as it arrived.
    channel_public_url: str = ""
    # The reconciler (a Temporal schedule the worker creates): how often it runs, when an
    # enrollment still "enrolling" or a lab message still "received" counts as stuck, and when a
    # lab message it still cannot process is put before staff (quarantine, "intake-stalled").
    reconcile_every_seconds: int = Field(default=60, ge=1)
    reconcile_stuck_after_seconds: int = Field(default=300, ge=0)
    reconcile_lab_staff_after_seconds: int = Field(default=3600, ge=0)
    # Recipients (courts, employers) at loopback, link-local or private addresses are refused unless
    # this is set: an on-premise court system on the clinic's network. Development allows loopback.
    allow_private_recipients: bool = False
    # Lab intake: the largest body /lab/hl7 and /lab/results take (a real batch fits in 5 MB).
    lab_max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    # `iop hl7 listen` (MLLP): where it listens, and the peers (addresses or CIDR networks, comma
    # separated) it accepts connections from; every other peer is refused and the refusal audited.
    mllp_host: str = "127.0.0.1"
    mllp_port: int = Field(default=2575, ge=1, le=65535)
    mllp_allow: str = "127.0.0.1,::1"
    # The take-home rule set new medication orders use unless they name one: a jurisdiction
    # ("federal", "US-WI", "US-CA") or a rule-set name from domain/rules/takehome/ (iop/takehome_rules.py).
    takehome_rules: str = "federal"
    # Processes (README "Observability" and "Using the cores"). Worker processes `iop dev` runs (the first
    # in its own process, the others as children that die with it); empty means one per core. API
    # processes `iop api` runs (uvicorn workers); metrics are then gathered across them.
    workers: int | None = Field(default=None, ge=1, le=256)
    api_workers: int = Field(default=1, ge=1, le=256)
    # Who may read the API's /metrics: with a token set, whoever presents it as a bearer token (Prometheus
    # in docker-compose.yml); without one, loopback peers only. Labels are route templates, never paths.
    metrics_token: str = Field(default="", repr=False)
    # The worker's Temporal SDK metrics (Prometheus text on http://ADDRESS/metrics), e.g. 0.0.0.0:9000;
    # empty turns them off. `iop dev` gives its N-th worker process the port plus N.
    worker_metrics_address: str = ""
    # OpenTelemetry traces (API request -> workflow -> activity), off by default. IOP_TRACING=1 exports
    # them over OTLP/HTTP to IOP_OTEL_ENDPOINT (or the exporter's own OTEL_EXPORTER_OTLP_* variables);
    # setting IOP_OTEL_ENDPOINT alone also turns tracing on.
    tracing: bool = False
    otel_endpoint: str = ""
    # The equity report (domain/equity.py): groups with fewer participants are suppressed, and a
    # group's rate ratio at or above the upper / at or below the lower threshold is flagged.
    # Email recipients' reports go through this mail relay (issue 16); without a host they wait, retried, and are
    # never recorded as delivered. STARTTLS upgrades the connection before any login.
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = ""
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_starttls: bool = False
    # The program's letterhead on every report document (PDF and mail): name, address, telephone.
    report_letterhead: str = "Intensive outpatient program"
    equity_min_group_size: int = Field(default=11, ge=1, le=1000)
    equity_ratio_high: float = Field(default=1.25, gt=1.0, le=100.0)
    equity_ratio_low: float = Field(default=0.8, gt=0.0, lt=1.0)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'iop.db').as_posix()}"

    @property
    def audit_checkpoint_path(self) -> Path:
        return self.audit_checkpoint_file or self.data_dir / "audit-checkpoints.jsonl"

    @property
    def worker_processes(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def tracing_enabled(self) -> bool:
        return self.tracing or bool(self.otel_endpoint)

    @property
    def embedded_temporal(self) -> bool:
        return not self.temporal_address

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_dev_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
