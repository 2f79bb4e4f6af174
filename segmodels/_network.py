"""Is a host reachable? Answered within a timeout, a DNS lookup that hangs included.

Used before a download (ImageNet weights here, the dataset in ``bench.data``): the libraries that
download retry an unreachable host for minutes, where this fails in seconds and lets the caller
say what to do instead.
"""

from __future__ import annotations

import socket
import threading

PROBE_TIMEOUT_S = 3.0


def host_unreachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Tries a TCP connection to ``host:port``: ``None`` if it opens, else what went wrong.

    The attempt runs in a daemon thread, so a DNS lookup that hangs (name resolution ignores
    socket timeouts) holds the caller no longer than ``timeout``.

    Args:
        host: Host name or address.
        port: TCP port (443: the hosts probed serve HTTPS).
        timeout: Seconds to wait, the lookup included.

    Returns:
        ``None`` when the connection opened; otherwise one line, e.g.
        ``"gaierror: [Errno -2] Name or service not known"`` or ``"no answer within 3 s"``.
    """
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{type(error).__name__}: {error}")

    thread = threading.Thread(target=connect, name=f"probe-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"
