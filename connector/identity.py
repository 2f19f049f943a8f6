"""Who a process is, in the one format claims, leases and heartbeats share: "host:pid:uuid"."""

from __future__ import annotations

import os
import socket
import uuid


def process_id() -> str:
    """A fresh id for this process ("vm:20625:ac7c102e"): the uuid part tells a restarted pid apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
