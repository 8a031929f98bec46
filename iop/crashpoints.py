"""TEST-ONLY crash points for the fault tests (tests/faults/test_crash_between_steps.py).

`crash_point("enroll.after-commit")` ends the process at once (os._exit(137), as SIGKILL would:
no cleanup, no answer) when the environment variable IOP_TEST_CRASH_AT names that step, so a
test can kill the API deterministically between two steps. Unset (always, outside those tests)
it does nothing. Steps: enroll.after-commit, enroll.after-start, lab.after-raw-stored, lab.after-filed.
"""

from __future__ import annotations

import os

_STEP = os.environ.get("IOP_TEST_CRASH_AT") or None


def crash_point(step: str) -> None:
    if _STEP is not None and _STEP == step:
        os._exit(137)
