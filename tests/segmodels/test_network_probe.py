"""The one network probe (segmodels._network): an answer within its timeout, whatever the network does."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from segmodels._network import host_unreachable


def test_a_hanging_dns_lookup_costs_the_timeout_and_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    # Name resolution ignores socket timeouts; a resolver that never answers must not hold the caller.
    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: release.wait(60) and [])
    start = time.monotonic()
    try:
        problem = host_unreachable("weights.example", timeout=0.5)
    finally:
        release.set()  # let the abandoned daemon thread finish
    assert time.monotonic() - start < 1.5
    assert problem == "no answer within 0.5 s"


class _Connection:
    def close(self) -> None:
        pass


def test_a_hanging_connect_costs_the_timeout_and_no_more(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: release.wait(60) and _Connection())
    start = time.monotonic()
    try:
        problem = host_unreachable("weights.example", timeout=0.5)
    finally:
        release.set()
    assert time.monotonic() - start < 1.5
    assert problem == "no answer within 0.5 s"


def test_a_refused_connection_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> socket.socket:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert host_unreachable("weights.example", timeout=0.5) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_an_open_port_is_reachable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        assert host_unreachable("127.0.0.1", server.getsockname()[1], timeout=2.0) is None


def test_the_harness_and_the_library_share_the_probe() -> None:
    from bench.data import tfds_source
    from segmodels import weights

    assert tfds_source.probe is host_unreachable
    assert weights.host_unreachable is host_unreachable
