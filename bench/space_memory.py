"""The server's memory under a big space, and under many (issue 15, row 3).

    python -m bench.space_memory [--ops 50000] [--spaces 8] [--tree DIR] [--phase after]
    git worktree add /tmp/space-before 00f31b6   # before quotas and the bounded cache, then:
    python -m bench.space_memory --tree /tmp/space-before --phase before

One device pushes ``--ops`` ops of about 1 KB (60 MB on the wire), one record each, into
one space through /api/v1/sync (batches of 1,000), and then reads the space's whole state
once (page by page, following ``next``; an answer without it is the whole
state: the code before pagination). Then, on a fresh server, the same volume is spread over
``--spaces`` spaces, and each one's state read once; then twice the volume over twice the
spaces, more than the state worker's cache holds. The resident memory (RSS) of the
server's process and of its child processes (the state worker) is taken when idle after the
start, after the pushes and after the reads. The server is `py-agent serve` from the tree
measured (``--tree``), with the sync, space-creation and state-read rate limits raised so
they throttle nothing. The machine's load average is recorded, and a run waits (up to 10
minutes) for it to fall under 1.5 first. Writes the run as ``before`` or ``after`` in
bench/results/space_memory.json, keeping the other.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from server.settings import Settings
from tools.harness import ServerProcess

from . import phases, state_reads
from .state_reads import push, read_whole, wait_for_quiet
from .sync import wait_until_idle

# state_reads' settings, and room for a space per run.
SETTINGS = state_reads.SETTINGS | {"PY_AGENT_SPACES_PER_MIN": "1000"}
LIMITS = ("space_max_ops", "space_max_bytes", "replica_cache_bytes")


def vm_rss(pid: int) -> int:
    """A process's resident bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS


def descendants(pid: int) -> list[int]:
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def role(pid: int) -> str:
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return "resource_tracker" if b"resource_tracker" in command else "worker"


def rss(pid: int) -> dict[str, Any]:
    """Resident bytes of the server's process, and of its child processes (the state
    worker, and the resource tracker multiprocessing starts with it), together and each."""
    children = {child: vm_rss(child) for child in descendants(pid)}
    return {
        "server": vm_rss(pid),
        "children": sum(children.values()),
        "each_child": [{"role": role(child), "rss": size} for child, size in children.items()],
    }


def settled(server: ServerProcess) -> dict[str, Any]:
    assert server.pid is not None
    wait_until_idle(server.pid)  # what is freed after a request is freed by now
    return rss(server.pid)


def new_space(http: httpx.Client) -> dict[str, str]:
    """A space and its one device: {"space_id", "device_id", "token"}."""
    code = http.post("/api/v1/spaces").json()["pairing_code"]
    answer = http.post("/api/v1/devices", json={"pairing_code": code, "name": "writer"})
    answer.raise_for_status()
    device: dict[str, str] = answer.json()
    return device


def run(tree: Path, tmp: Path, spaces: int, ops: int) -> dict[str, Any]:
    """One fresh server: ``ops`` ops pushed, spread evenly over ``spaces`` spaces, each read."""
    server = phases.server(tree, tmp, SETTINGS)
    server.start()
    try:
        idle = settled(server)
        with httpx.Client(base_url=server.url, timeout=300) as http:
            devices = [new_space(http) for _ in range(spaces)]
            started = time.perf_counter()
            sent = sum(push(http, device, ops // spaces) for device in devices)
            push_s = time.perf_counter() - started
            after_pushes = settled(server)
            started = time.perf_counter()
            pages = read_size = 0
            for device in devices:
                _, read_pages, size = read_whole(http, device["space_id"], device["token"])
                pages, read_size = pages + read_pages, read_size + size
            read_s = time.perf_counter() - started
        after_read = settled(server)
    finally:
        server.stop()
    return {
        "spaces": spaces,
        "ops": ops // spaces * spaces,
        "wire_bytes": sent,
        "push_s": round(push_s, 1),
        "state_pages": pages,
        "state_bytes": read_size,
        "read_s": round(read_s, 1),
        "rss_idle": idle,
        "rss_after_pushes": after_pushes,
        "rss_after_read": after_read,
    }


def measure(tree: Path, spaces: int, ops: int) -> dict[str, Any]:
    load = wait_for_quiet()
    runs = {
        "one_space": (1, ops),
        "many_spaces": (spaces, ops),
        # Twice the volume in twice the spaces: past the after's cache of 64 MB of changes.
        "past_the_cache": (2 * spaces, 2 * ops),
    }
    result: dict[str, Any] = {"load_average": round(load, 2)}
    for name, (count, size) in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            result[name] = run(tree, Path(tmp), count, size)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=50_000, help="1 KB ops: 60 MB on the wire")
    parser.add_argument("--spaces", type=int, default=8)
    phases.add_arguments(parser)
    args = parser.parse_args()
    result = {"commit": phases.commit_of(args.tree), **measure(args.tree, args.spaces, args.ops)}
    limits = {name: Settings.model_fields[name].default for name in LIMITS}
    phases.write("space_memory", args.phase, result, limits_after=limits)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
