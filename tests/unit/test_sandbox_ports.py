"""Port picking: free loopback ports, and a requested port in use refused by number."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from kubellm.errors import SpecError
from kubellm.sandbox import ports


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_picks_distinct_free_ports() -> None:
    picked = ports.pick(5)
    assert len(set(picked)) == 5
    assert all(ports.is_free(p) for p in picked)


def test_busy_port_is_not_free(busy_port: int) -> None:
    assert not ports.is_free(busy_port)


def test_requested_free_port_is_used() -> None:
    [free] = ports.pick(1)
    assert ports.pick(3, requested={1: free})[1] == free


def test_requested_port_in_use_is_refused_by_number(busy_port: int) -> None:
    with pytest.raises(SpecError) as err:
        ports.pick(3, requested={2: busy_port})
    assert f"127.0.0.1:{busy_port} is already in use" in str(err.value)
    assert err.value.field == "port"


def test_out_of_range_port_is_refused() -> None:
    with pytest.raises(SpecError, match="70000 is not a TCP port"):
        ports.pick(1, requested={0: 70000})


def test_picked_ports_avoid_a_busy_one(busy_port: int) -> None:
    assert busy_port not in ports.pick(20)
