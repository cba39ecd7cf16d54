"""Driving the real server and Debian's Chromium: shared by the browser tests (e2e/) and the
benchmarks (bench/).

What only the e2e tests need (chat turns, devices, pairing) is in ``e2e/harness.py``. This
module needs the ``dev`` extra (Playwright); nothing in ``py_agent`` or ``server`` imports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Playwright

from server.precompressed import PRECOMPRESSED, sibling

ROOT = Path(__file__).resolve().parent.parent
DIST = Path(os.environ.get("PY_AGENT_DIST", ROOT / "web" / "dist"))
CHROMIUM = os.environ.get("PY_AGENT_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium phones home at start, which
# this machine's closed network refuses (and the no-external-request check would flag).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BOOT_TIMEOUT_MS = 120_000
# Live sync (e2e/test_live_sync.py, bench/live_sync.py): on the reading device, sets
# window.liveSeenAt (epoch ms) when a task whose text holds `text` is first on screen.
WATCH_FOR_TASK = """(text) => {
  window.liveSeenAt = undefined;
  const seen = () => [...document.querySelectorAll('[data-role="task"]')]
    .some((task) => task.textContent.includes(text));
  const observer = new MutationObserver(() => {
    if (!seen()) return;
    window.liveSeenAt = performance.timeOrigin + performance.now();
    observer.disconnect();
  });
  observer.observe(document.body, { subtree: true, childList: true, characterData: true });
}"""
# A server's shutdown waits for its model preload (server/app.py's lifespan).
STOP_TIMEOUT_S = 30
# The server's test-only fault switch (server/faults.py); ServerProcess sets it only when asked.
TEST_FAULTS_ENV = "PY_AGENT_TEST_FAULTS"
FAULTS_PATH = "/api/v1/_test/faults"


def app_files(dist: Path = DIST) -> dict[str, int]:
    """The app's own files in the dist (build.json) and their sizes, without the server's
    precompressed copies of them: what the service worker precaches and a browser holds."""
    files = json.loads((dist / "build.json").read_text())["files"]
    copies = {PRECOMPRESSED}
    if (dist / PRECOMPRESSED).is_file():
        listing = json.loads((dist / PRECOMPRESSED).read_text())
        copies |= {sibling(rel, coding) for rel, codings in listing.items() for coding in codings}
    return {rel: entry["bytes"] for rel, entry in files.items() if rel not in copies}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Callable[[], str]
) -> None:
    """Poll ``url``/healthz until it answers 200; raise with ``log()`` if the process
    exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)  # polling a readiness probe, not synchronising on time
    raise RuntimeError(f"server did not answer /healthz: {log()}")


# Every context the tests and benchmarks open passes bypass_csp=True: Playwright's
# wait_for_function and add_script_tag evaluate code the app's Content-Security-Policy
# (server/headers.py) forbids on the page. e2e/test_security_headers.py alone runs the app
# under the policy, and proves it works there.
def launch_chromium(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class ServerProcess:
    """`py-agent serve` in a child process, so tests can stop and restart it (on the same
    port and data). ``test_faults`` turns on the server's fault switch (``faults()``);
    without it the child never inherits the switch from the shell."""

    def __init__(
        self,
        data_dir: Path,
        *,
        test_faults: bool = False,
        dist: Path = DIST,
        settings: Mapping[str, str] | None = None,
        open_files: int | None = None,
        tree: Path | None = None,
    ) -> None:
        """``settings`` are PY_AGENT_* variables for the child; ``open_files`` caps its
        open-file limit (RLIMIT_NOFILE, soft and hard), as a small machine's would be;
        ``tree`` is the checkout whose packages it runs (another commit's worktree, for a
        benchmark's "before"; its working directory comes first on sys.path)."""
        self.port = free_port()
        self.data_dir = data_dir
        self.dist = dist
        self.settings = dict(settings or {})
        self.open_files = open_files
        self.tree = tree
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.test_faults = test_faults
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {name: value for name, value in os.environ.items() if name != TEST_FAULTS_ENV}
        if self.test_faults:
            env[TEST_FAULTS_ENV] = "1"
        env |= self.settings
        limit = self.open_files
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tools.cli",
                "serve",
                "--port",
                str(self.port),
                "--dist-dir",
                str(self.dist),
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.tree,
            preexec_fn=None
            if limit is None
            else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
        )
        self.wait_until_healthy(30)

    def wait_until_healthy(self, timeout_s: float) -> None:
        """Poll /healthz until it answers 200 (a server refusing connections recovers)."""
        assert self._process is not None, "start the server first"
        wait_until_healthy(
            self.url, self._process, timeout_s, lambda: self.log_path.read_text()[-2000:]
        )

    @property
    def pid(self) -> int | None:
        """The running server's process id (bench.sync reads its CPU counter)."""
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        """Stop the server as a shutdown does (SIGTERM). Its shutdown waits for the model's
        preload, which a busy machine can stretch: a server still running after
        ``STOP_TIMEOUT_S`` is killed, so none outlives the test, and the stop fails."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError(
                f"server did not stop within {STOP_TIMEOUT_S} s of SIGTERM: "
                f"{self.log_path.read_text()[-2000:]}"
            ) from None

    def api(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, Any]:
        """One JSON request to the server, as (status, parsed body or None)."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({} if token is None else {"Authorization": f"Bearer {token}"}),
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None

    def faults(self, **spec: Any) -> None:
        """Arm a fault (server/faults.py documents ``spec``); needs ``test_faults``."""
        status, answer = self.api("POST", FAULTS_PATH, spec)
        if status != 201:
            raise RuntimeError(f"arming {spec} failed: {status} {answer}")

    def faults_clear(self) -> None:
        """Disarm every fault and start the injected count over."""
        status, answer = self.api("DELETE", FAULTS_PATH)
        if status != 204:
            raise RuntimeError(f"DELETE {FAULTS_PATH}: {status} {answer}")

    def faults_state(self) -> dict[str, Any]:
        status, answer = self.api("GET", FAULTS_PATH)
        if status != 200:
            raise RuntimeError(f"GET {FAULTS_PATH}: {status} {answer}")
        return dict(answer)


def wait_for_boot(page: Page) -> str:
    """Wait until the page says ready or error; return which."""
    page.wait_for_function(
        "['ready', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS
    )
    return str(page.evaluate("document.body.dataset.state"))


class ByteCounter:
    """A TCP proxy in front of a server, counting the bytes the server sends through it:
    what a visit downloads (headers and bodies) whoever asked for it, the page, its workers
    or the service worker, and whatever the browser's caches did."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self) -> int:
        with self._lock:
            return self._received

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client:
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # the server is down: the browser sees the connection close
                return
            with upstream:
                requests = threading.Thread(target=self._pump, args=(client, upstream, False))
                requests.start()
                self._pump(upstream, client, True)
                requests.join()

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
                if count:
                    with self._lock:
                        self._received += len(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:  # the other side went away: the relay is over
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
