"""The options of an activity call, typed: `**ACTIVITY` is then checked against the SDK's
execute_activity_method and execute_local_activity_method signatures. Only keys both accept, so
one set of options serves a workflow's activities and its local activities alike."""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy


class ActivityOptions(TypedDict, total=False):
    start_to_close_timeout: timedelta
    retry_policy: RetryPolicy
