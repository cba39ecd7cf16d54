"""Connection floods against `py-agent serve` on 127.0.0.1 (issue 15, row 5; the guard is
server/connections.py). uvicorn alone kept every idle, half-sent or trickling connection open
for good, and under a 256-file limit accept() ran out of descriptors, health checks timed out
and asyncio filled the log. The floods here come from other loopback addresses (127.0.0.2 and
up), so the per-address cap can tell them from the client that checks the server's health.
Each flood is bounded: 1,000 connections at most, and every wait has a deadline."""

from __future__ import annotations

import re
import selectors
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from server.connections import BURSTS_IN_FLIGHT, OWN_FILES, FileBudget, file_budget
from tools.harness import ServerProcess

FLOOD = 1000
PER_ADDRESS = 100
OPEN_FILES = 512
BUDGET = file_budget(OPEN_FILES, 2000, FLOOD).connections  # 224
WAIT_S = 20.0  # a deadline for the server's answers, far above what they take


Serve = Callable[..., ServerProcess]


@pytest.fixture
def serve(dist: Path, tmp_path: Path) -> Iterator[Serve]:
    """Starts `py-agent serve` with these PY_AGENT_* settings, under an open-file limit."""
    started: list[ServerProcess] = []

    def start(settings: dict[str, str], open_files: int = OPEN_FILES) -> ServerProcess:
        data = tmp_path / f"data{len(started)}"
        data.mkdir()
        server = ServerProcess(data, dist=dist, settings=settings, open_files=open_files)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


def connect(server: ServerProcess, source: str, first_bytes: bytes = b"") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


IDLE = b""
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


def slow_body(token: str) -> bytes:
    """A request whose body never arrives in full, to a route that reads its body before
    answering (one that refused the token or the rate first would not wait for it)."""
    return (
        b"POST /api/v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Authorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{"text": "remind' % token.encode()
    )


def flood(server: ServerProcess, sources: list[str]) -> list[socket.socket]:
    """FLOOD connections, idle, half-sent headers and a trickling body in turn, spread over
    ``sources``."""
    status, install = server.api("POST", "/api/v1/installs")
    assert status == 201, install
    kinds = (IDLE, PARTIAL_HEADERS, slow_body(install["token"]))
    return [connect(server, sources[i % len(sources)], kinds[i % len(kinds)]) for i in range(FLOOD)]


# The flood's requests to /infer are not turned away by its rate limit before their bodies,
# and no deadline passes while the flood is still connecting.
ROOMY = {
    "PY_AGENT_INFER_BURST": str(FLOOD),
    "PY_AGENT_INSTALLS_PER_MIN": "100",
    "PY_AGENT_HEADER_TIMEOUT_S": "600",
    "PY_AGENT_BODY_TIMEOUT_S": "600",
}


RESET = b"<reset>"


def answers(socks: list[socket.socket], count: int) -> dict[socket.socket, bytes]:
    """What the server sent on the first ``count`` sockets to hear back, until it closed
    them, waiting for them as they come. A server that closes a connection with bytes of
    the client's still unread makes the kernel reset it, which can drop what it wrote:
    those read as ``RESET``."""
    heard: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + WAIT_S
    # epoll, not select(): a process holding 1,000 sockets has descriptors past select's 1,024.
    with selectors.DefaultSelector() as waiting:
        for sock in socks:
            waiting.register(sock, selectors.EVENT_READ)
        while len(heard) < count and waiting.get_map() and time.monotonic() < deadline:
            for key, _ in waiting.select(deadline - time.monotonic()):
                sock = cast(socket.socket, key.fileobj)
                sock.settimeout(WAIT_S)
                data = b""
                try:
                    while chunk := sock.recv(65536):
                        data += chunk
                except ConnectionResetError:
                    data = RESET
                heard[sock] = data
                waiting.unregister(sock)
    return heard


def refused(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") or data == RESET


RESET_STATUS = 0


def health(server: ServerProcess) -> int:
    """/healthz's status, or RESET_STATUS when a refusal reset the connection."""
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=WAIT_S) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (ConnectionResetError, urllib.error.URLError) as error:
        if isinstance(error, ConnectionResetError) or isinstance(
            error.reason, ConnectionResetError
        ):
            return RESET_STATUS
        raise


def metric(server: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=WAIT_S) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def test_a_flood_from_one_address_leaves_room_for_everyone_else(
    serve: Serve,
) -> None:
    server = serve(
        {**ROOMY, "PY_AGENT_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS)}, open_files=4096
    )
    socks = flood(server, ["127.0.0.2"])
    try:
        heard = answers(socks, FLOOD - PER_ADDRESS)
        assert len(heard) == FLOOD - PER_ADDRESS
        assert all(refused(data) for data in heard.values())
        # A connection that sent nothing yet reads the whole answer.
        idle = [heard[sock] for sock in socks[::3] if sock in heard]
        assert idle and all(b"\r\nRetry-After: 5\r\n" in data for data in idle), idle[:3]
        assert health(server) == 200  # from 127.0.0.1, while 127.0.0.2 holds its 100
        assert metric(
            server, 'py_agent_connections_closed_total{reason="too_many_from_address"}'
        ) == (FLOOD - PER_ADDRESS)
        # The flood's 100, and this request's own connection.
        assert metric(server, "py_agent_connections_open") == PER_ADDRESS + 1
    finally:
        close_all(socks)
    log = server.log_path.read_text()
    assert "out of system resource" not in log
    assert log.count("refusing connections") == 1, log[-3000:]  # once a minute at most


def test_connections_past_the_open_file_limit_are_refused_not_left_to_fail(
    serve: Serve,
) -> None:
    """Under a 512-file limit and from ten addresses, the flood fills every slot the limit
    allows: the rest are answered 503 rather than failing accept() (so is anyone else while
    the slots are full: that is what the deadlines and the per-address cap are for), and
    the server serves again as soon as the flood lets go."""
    server = serve({**ROOMY, "PY_AGENT_MAX_CONNECTIONS_PER_ADDRESS": str(FLOOD)})
    socks = flood(server, [f"127.0.0.{n}" for n in range(2, 12)])
    try:
        heard = answers(socks, FLOOD - BUDGET)
        assert len(heard) == FLOOD - BUDGET
        assert all(refused(data) for data in heard.values())
        assert health(server) in {503, RESET_STATUS}
    finally:
        close_all(socks)
    server.wait_until_healthy(WAIT_S)
    log = server.log_path.read_text()
    assert f"the open-file limit allows {BUDGET} connections, {BUDGET // 2} per address" in log
    assert "out of system resource" not in log
    assert log.count("refusing connections") == 1, log[-3000:]


def test_slow_clients_are_closed_at_their_deadlines(serve: Serve) -> None:
    server = serve(
        {
            **ROOMY,
            "PY_AGENT_HEADER_TIMEOUT_S": "1",
            "PY_AGENT_BODY_TIMEOUT_S": "1",
            "PY_AGENT_KEEP_ALIVE_TIMEOUT_S": "1",
        }
    )
    status, install = server.api("POST", "/api/v1/installs")
    assert status == 201, install
    each = 20
    kinds = (IDLE, PARTIAL_HEADERS, slow_body(install["token"]))
    slow = [connect(server, "127.0.0.2", kind) for kind in kinds for _ in range(each)]
    # A client that sent one whole request, and then nothing on the kept-alive connection.
    kept = connect(server, "127.0.0.2", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        heard = answers([*slow, kept], len(slow) + 1)
        assert [heard.get(sock) for sock in slow] == [b""] * len(slow)  # closed, no word
        assert heard[kept].startswith(b"HTTP/1.1 200 OK")  # answered, then closed when idle
        assert metric(server, 'py_agent_connections_closed_total{reason="header_timeout"}') == (
            2 * each
        )
        assert metric(server, 'py_agent_connections_closed_total{reason="body_timeout"}') == each
    finally:
        close_all([*slow, kept])
    log = server.log_path.read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_a_shutdown_is_not_held_up_by_a_client_that_owes_its_body(
    serve: Serve,
) -> None:
    server = serve({**ROOMY, "PY_AGENT_BODY_TIMEOUT_S": "600"})
    status, install = server.api("POST", "/api/v1/installs")
    assert status == 201, install
    sock = connect(server, "127.0.0.2", slow_body(install["token"]))
    try:
        assert metric(server, "py_agent_connections_open") == 2  # it, and this request's
        server.stop()  # fails if the server is still running 30 s after SIGTERM
    finally:
        sock.close()


def test_a_request_sent_in_pieces_within_its_deadlines_is_answered(
    serve: Serve,
) -> None:
    """The deadlines are for whole headers and whole bodies, not for each packet: a client
    on a bad link that sends its request in pieces is served."""
    server = serve({"PY_AGENT_HEADER_TIMEOUT_S": "30", "PY_AGENT_BODY_TIMEOUT_S": "30"})
    body = b'{"name": "phone", "pairing_code": "0000-0000-0000-0000"}'
    request = (
        b"POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    sock = connect(server, "127.0.0.2")
    try:
        for start in range(0, len(request), 7):
            sock.sendall(request[start : start + 7])
        heard = answers([sock], 1)
    finally:
        sock.close()
    # The code is unknown: the app read the whole body and answered it.
    assert heard[sock].startswith(b"HTTP/1.1 404") or heard[sock].startswith(b"HTTP/1.1 403"), (
        heard[sock][:200]
    )


def test_the_open_file_limit_shares_its_files_between_connections_and_accept_bursts() -> None:
    """The 256-file server of the issue: its connections and accept bursts fit under the
    limit, and one address gets at most half the connections, so a flood from it leaves
    room for everyone else; a roomy limit gives the settings and uvicorn's backlog."""
    small = file_budget(256, max_connections=2000, per_address=100)
    assert small == FileBudget(connections=96, per_address=48, backlog=24)
    assert OWN_FILES + small.connections + BURSTS_IN_FLIGHT * small.backlog <= 256
    roomy = file_budget(20_000, max_connections=2000, per_address=100)
    assert roomy == FileBudget(connections=2000, per_address=100, backlog=2048)
