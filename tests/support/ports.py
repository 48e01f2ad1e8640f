"""A loopback port for a server a test or a benchmark is about to start (or, as no one listens on it once this
returns, a port that refuses connections)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
