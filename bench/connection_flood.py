"""Connection floods against `py-agent serve` on 127.0.0.1 (issue 15, row 5).

    python -m bench.connection_flood [--tree DIR] [--phase after]
    git worktree add /tmp/flood-before f741f46   # the code before the connection guard, then:
    python -m bench.connection_flood --tree /tmp/flood-before --phase before

Each scenario starts a fresh server (as `py-agent serve` does, from the tree measured, with
the default connection settings) and opens 1,000 connections to it from 127.0.0.2, in turn
idle, with half their headers sent, and with a request to /api/v1/infer whose body stops
partway (the infer rate limit is raised so those requests wait for their bodies): once
under the machine's own open-file limit, once under a limit of 256 files (soft and hard).
With the flood open, ``/healthz`` is probed from 127.0.0.1, a new connection a probe,
10 warm-up probes and then ``--probes``; and again 15 s after the flood opened (its last
connection did). How many flood connections the server closed is counted 15 s and 65 s
after it opened, and how much the server's log grew. The machine's load average is
recorded, and a run waits (up to 10 minutes) for it to fall under 1.5 first. Writes the run
as ``before`` or ``after`` in bench/results/connection_flood.json, keeping the other.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.settings import Settings

from . import phases, report
from .state_reads import wait_for_quiet

FLOOD = 1000
FLOOD_FROM = "127.0.0.2"
SMALL_OPEN_FILES = 256
WARMUP_PROBES = 10
PROBE_TIMEOUT_S = 5.0
# Probes start on a schedule, each on its own connection and thread, rather than one after
# the other: a server that hangs cannot stretch the run to probes times 5 s, and a slow answer
# does not delay (and so hide) the probes behind it.
PROBE_EVERY_S = 0.05
FIRST_COUNT_S = 15.0  # past the header deadline (10 s), before the body one (60 s)
SECOND_COUNT_S = 65.0  # past every deadline
CONNECT_TIMEOUT_S = 10.0
LIMITS = (
    "max_connections",
    "max_connections_per_address",
    "header_timeout_s",
    "body_timeout_s",
    "keep_alive_timeout_s",
)
KINDS = ("idle", "headers", "body")
PARTIAL_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
OUT_OF_RESOURCE = b"out of system resource"


def slow_body(token: str) -> bytes:
    """A request whose body never arrives in full, to a route that reads its body before
    answering."""
    return (
        b"POST /api/v1/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Authorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{"text": "remind' % token.encode()
    )


def install_token(port: int) -> str:
    request = b"POST /api/v1/installs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
    answer = exchange(port, request + b"Connection: close\r\n\r\n", 30.0)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201"), answer[:300]
    token: str = json.loads(body)["token"]
    return token


def exchange(port: int, request: bytes, timeout_s: float, source: str = "127.0.0.1") -> bytes:
    """Sends ``request`` on a new connection and reads until the server closes it."""
    with socket.socket() as sock:
        sock.settimeout(timeout_s)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@dataclass
class Probe:
    outcome: str  # "ok", "503", "timeout", "reset", "refused" or another status
    ms: float


def probe(port: int) -> Probe:
    started = time.perf_counter()
    try:
        answer = exchange(port, HEALTHZ, PROBE_TIMEOUT_S)
    except TimeoutError:
        outcome = "timeout"
    except ConnectionRefusedError:
        outcome = "refused"
    except ConnectionResetError:
        outcome = "reset"
    else:
        status = answer[9:12].decode(errors="replace") if answer else "reset"
        outcome = "ok" if status == "200" else status
    return Probe(outcome, (time.perf_counter() - started) * 1000)


def probes(port: int, count: int) -> list[Probe]:
    """``count`` probes, started PROBE_EVERY_S apart whatever the earlier ones wait for."""
    results: list[Probe | None] = [None] * count

    def run(i: int) -> None:
        results[i] = probe(port)

    threads = []
    started = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, started + i * PROBE_EVERY_S - time.monotonic()))  # the schedule
        thread = threading.Thread(target=run, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return [result for result in results if result is not None]


def probe_summary(measured: list[Probe]) -> dict[str, Any]:
    """Latency of the probes answered 200; the others counted by how they failed."""
    answered = [p.ms for p in measured if p.outcome == "ok"]
    failed = Counter(p.outcome for p in measured if p.outcome != "ok")
    latency = (
        {
            "median": round(statistics.median(answered), 1),
            "p95": round(report.percentile(answered, 95), 1),
            "max": round(max(answered), 1),
        }
        if answered
        else None
    )
    return {"n": len(measured), "ok": len(answered), "failed": dict(failed), "ms": latency}


class Flood:
    """FLOOD connections from FLOOD_FROM, the three kinds in turn; tracks which the server
    closed."""

    def __init__(self, port: int, token: str) -> None:
        first_bytes = (b"", PARTIAL_HEADERS, slow_body(token))
        self.socks: list[tuple[str, socket.socket]] = []
        started = time.monotonic()
        self.connect_failed = 0
        for i in range(FLOOD):
            sock = socket.socket()
            sock.settimeout(CONNECT_TIMEOUT_S)
            sock.bind((FLOOD_FROM, 0))
            try:
                sock.connect(("127.0.0.1", port))
                if first_bytes[i % 3]:
                    sock.sendall(first_bytes[i % 3])
            except OSError:  # a full backlog: the connection never opened
                sock.close()
                self.connect_failed += 1
                continue
            sock.setblocking(False)
            self.socks.append((KINDS[i % 3], sock))
        self.opened_at = time.monotonic()
        # A server that accepts slowly (or refuses through a short backlog) keeps connect()
        # waiting: the deadlines of the first connections may pass before the last opens.
        self.open_s = self.opened_at - started
        self.closed: dict[socket.socket, bool] = {}  # closed sockets: answered 503 first?
        self.heard: dict[socket.socket, bytes] = {}

    def count_closed(self) -> dict[str, int]:
        """Reads what the server sent; a socket at EOF or reset is one it closed."""
        waiting = [sock for _, sock in self.socks if sock not in self.closed]
        poller = select.poll()  # not select.select(): it takes no descriptor past 1023
        for sock in waiting:
            poller.register(sock, select.POLLIN | select.POLLHUP | select.POLLERR)
        ready = {fd for fd, _ in poller.poll(0)}
        for sock in waiting:
            if sock.fileno() in ready:
                self._read(sock)
        counts = Counter(kind for kind, sock in self.socks if sock in self.closed)
        return {
            "total": len(self.closed),
            **{kind: counts[kind] for kind in KINDS},
            "answered_503": sum(self.closed.values()),
        }

    def _read(self, sock: socket.socket) -> None:
        data = self.heard.get(sock, b"")
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except BlockingIOError:  # bytes, but no EOF yet: still open
            self.heard[sock] = data
            return
        except ConnectionResetError:
            pass
        self.closed[sock] = data.startswith(b"HTTP/1.1 503")

    def close(self) -> None:
        for _, sock in self.socks:
            sock.close()


def log_size(path: Path) -> int:
    return path.stat().st_size


def log_mentions(path: Path, text: bytes) -> int:
    """How often ``text`` occurs in the log, read a chunk at a time (it can be large)."""
    count, tail = 0, b""
    with path.open("rb") as log:
        while chunk := log.read(1 << 22):
            window = tail + chunk
            count += window.count(text)
            tail = window[-(len(text) - 1) :]  # too short to hold one: none counted twice
    return count


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))  # the measured wait of the scenario


def scenario(tree: Path, open_files: int | None, count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        # The flood's requests to /infer are not turned away by its rate limit: they wait
        # for their bodies.
        server = phases.server(tree, Path(tmp), {"PY_AGENT_INFER_BURST": str(FLOOD)}, open_files)
        server.start()
        try:
            token = install_token(server.port)
            load = os.getloadavg()[0]
            log_before = log_size(server.log_path)
            flood = Flood(server.port, token)
            try:
                measured = probes(server.port, WARMUP_PROBES + count)[WARMUP_PROBES:]
                wait_until(flood.opened_at + FIRST_COUNT_S)
                closed_first = flood.count_closed()
                later = probes(server.port, count)
                wait_until(flood.opened_at + SECOND_COUNT_S)
                closed_second = flood.count_closed()
            finally:
                flood.close()
            log_growth = log_size(server.log_path) - log_before
            out_of_resource = log_mentions(server.log_path, OUT_OF_RESOURCE)
        finally:
            server.stop()
    return {
        "open_files": open_files or resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "load_average": round(load, 2),
        "flood_opened": len(flood.socks),
        "flood_connect_failed": flood.connect_failed,
        "flood_open_s": round(flood.open_s, 2),
        "healthz": probe_summary(measured),
        "healthz_after_15s": probe_summary(later),
        "closed_at_15s": closed_first,
        "closed_at_65s": closed_second,
        "log_growth_bytes": log_growth,
        "out_of_system_resource_lines": out_of_resource,
    }


def measure(tree: Path, count: int) -> dict[str, Any]:
    load = wait_for_quiet()
    return {
        "load_average": round(load, 2),
        "scenarios": {
            "default_limit": scenario(tree, None, count),
            "small_limit": scenario(tree, SMALL_OPEN_FILES, count),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=100)
    phases.add_arguments(parser)
    args = parser.parse_args()
    result = {"commit": phases.commit_of(args.tree), **measure(args.tree, args.probes)}
    limits = {name: Settings.model_fields[name].default for name in LIMITS}
    phases.write(
        "connection_flood",
        args.phase,
        result,
        flood=FLOOD,
        small_open_files=SMALL_OPEN_FILES,
        limits_after=limits,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
