"""Ports for servers a test starts itself (mock API server, a throwaway PostgreSQL).

Never port 0's pick: the kernel hands those out from the ephemeral range (32768-60999), where an outgoing connection
may take the port between our check and the server's bind. Pick below 32768 instead, at random (parallel sessions do
not collide on a fixed sequence), and count a port in TIME_WAIT as free (SO_REUSEADDR: servers bind such ports).
"""

from __future__ import annotations

import random
import socket


def bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(low: int = 20_000, high: int = 32_000) -> int:
    for port in random.sample(range(low, high), 200):
        if bindable(port):
            return port
    raise RuntimeError(f"no free port between {low} and {high}")
