"""Starting the real server and Debian's Chromium, shared by the e2e tests and bench/."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_chromium(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


class ServerProcess:
    """`py-agent serve` in a child process, so tests can stop and restart it."""

    def __init__(self, data_dir: Path, *, dist: Path = DIST) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.dist = dist
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "py_agent.cli",
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
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # polling a readiness probe, not synchronising on time
        raise RuntimeError(f"server did not answer /healthz: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def wait_for_boot(page: Page) -> str:
    """Wait until the page says ready or error; return which."""
    page.wait_for_function(
        "['ready', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS
    )
    return str(page.evaluate("document.body.dataset.state"))


def say(page: Page, text: str) -> str:
    """Send one chat message and return the agent's reply, once the page shows it."""
    turn = int(page.evaluate("document.body.dataset.turns ?? '0'")) + 1
    page.fill("#input", text)
    page.press("#input", "Enter")
    page.wait_for_function(f"document.body.dataset.turns === '{turn}'")
    return page.inner_text("#messages li.agent:last-child")


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
