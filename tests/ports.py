"""A free TCP port on 127.0.0.1 for a server a test starts.

Port 0 hands out a port from the kernel's ephemeral range, the same range every outgoing connection
(and every Temporal server's own listeners) draws from, so on a busy machine the port can be taken
between the probe and the server's bind. Ports below that range are only ever taken on purpose.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default lower bound


def free_port() -> int:
    """A port below the ephemeral range that nothing holds now (random, so parallel workers rarely meet)."""
    low = min(_ephemeral_low(), 65000)
    for _ in range(200):
        port = random.randrange(10000, max(low, 10001))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # everything below the range is taken: fall back to the kernel's choice
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
