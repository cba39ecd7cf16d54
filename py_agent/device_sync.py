"""This device's side of sync: pairing it into a space, running exchanges, and the
status the page shows ("synced", "3 pending", "offline, retrying in 4 s").

A device works fully without ever pairing; its changes wait in the outbox and go
to the space when it joins one. The host (the web worker, or a test) owns the only
timer: it calls ``run`` again after ``status()["next_in_s"]`` seconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .platform import Delete, JsonObject, Put, Transport, TransportError
from .router import CloudUnavailable
from .state import SYNCED, State
from .sync.client import SyncAccount, SyncClient, error_detail
from .sync.hlc import Timestamp

# While the app is open it pulls the other devices' changes this often.
PERIODIC_S = 15.0
# The longest wait between attempts while the server is unreachable: a browser that
# stays online gets no "online" event when the server comes back, so this bounds how
# long a device lags behind after an outage.
BACKOFF_MAX_S = 60.0
# Changes made during an exchange go out this soon after it.
SOON_S = 1.0
DEVICE_NAME_MAX = 64


class PairingError(Exception):
    """Creating or joining a space failed; the message says why and what to do."""


class ServerUnreachable(PairingError):
    """No answer from the server: offline, or it is down."""


class DeviceSync:
    def __init__(
        self,
        state: State,
        transport: Transport,
        server_url: str = "",
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = random.random,
        after_pull: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.state = state
        self._transport = transport
        self._server_url = server_url.rstrip("/")
        self._clock = clock
        self._random = random
        self.after_pull = after_pull  # e.g. embed records that arrived from other devices
        account = state.account
        self._client = None if account is None else self._client_for(account)

    def _client_for(self, account: SyncAccount) -> SyncClient:
        return SyncClient(
            self.state,
            self._transport,
            account,
            clock=self._clock,
            random=self._random,
            backoff_max_s=BACKOFF_MAX_S,
        )

    # -- status ------------------------------------------------------------------------

    def status(self) -> JsonObject:
        account = self.state.account
        pending = len(self.state.outbox)
        base: JsonObject = {
            "paired": account is not None,
            "device_id": self.state.clock.device_id,
            "space_id": None if account is None else account.space_id,
            "pairing_code": self.state.sync_meta.get("pairing_code"),
            "pending": pending,
            "revision": self.state.revision,
            "conflicts": len(self.state.conflicts()),
        }
        if self._client is None:
            return {
                **base,
                "state": "local",
                "retry_in_s": None,
                "error": None,
                "last_synced_at": None,
                "next_in_s": None,
            }
        status = self._client.status
        state = status.state
        if state in ("synced", "pending"):
            state = "pending" if pending else "synced"
        if status.retry_in_s is not None:
            next_in: float | None = status.retry_in_s
        elif state == "error":
            next_in = None  # a retry would fail the same way: the user must act
        else:
            next_in = SOON_S if pending else PERIODIC_S
        return {
            **base,
            "state": state,
            "retry_in_s": status.retry_in_s,
            "error": status.error,
            "last_synced_at": status.last_synced_at,
            "next_in_s": next_in,
        }

    # -- exchanges ---------------------------------------------------------------------

    async def run(self) -> JsonObject:
        """One exchange with the server, if paired. Never raises for network or server
        failures: the status says what happened and when the next attempt is due."""
        if self._client is not None:
            revision = self.state.revision
            await self._client.sync()
            if self.state.revision != revision and self.after_pull is not None:
                await self.after_pull()
        return self.status()

    async def chat_reply(self) -> str:
        """Runs an exchange and says how it went, for the "sync now" request."""
        status = await self.run()
        pending = int(status["pending"])
        changes = f"{pending} change{'s' if pending != 1 else ''}"
        if status["state"] == "local":
            return (
                "This device is not paired yet: open Sync to create a space or join one. "
                "Until then everything stays on this device."
            )
        if status["state"] == "synced":
            return "Synced: this device is up to date with your other devices."
        if status["state"] == "offline":
            return f"I can't reach the server right now; {changes} will sync when you're online."
        if status["state"] == "pending":
            return f"Synced, and {changes} made meanwhile will follow in a moment."
        return f"Sync failed: {status['error']}"

    # -- pairing -----------------------------------------------------------------------

    async def create_space(self, device_name: object) -> JsonObject:
        """Create a space and pair this device into it; the status carries the code
        to type on the user's other devices."""
        name = _device_name(device_name)
        created = await self.post("/api/v1/spaces", None, "create a space")
        code = created.get("pairing_code")
        if not isinstance(code, str):
            raise PairingError("the server's answer has no pairing code; try again")
        return await self._pair(code, name)

    async def join(self, pairing_code: object, device_name: object) -> JsonObject:
        if not isinstance(pairing_code, str) or not pairing_code.strip():
            raise PairingError("type the pairing code shown on your other device")
        return await self._pair(pairing_code.strip(), _device_name(device_name))

    async def _pair(self, code: str, name: str) -> JsonObject:
        paired = await self.post(
            "/api/v1/devices", {"pairing_code": code, "name": name}, "join the space"
        )
        try:
            account = SyncAccount(
                self._server_url,
                str(paired["space_id"]),
                str(paired["device_id"]),
                str(paired["token"]),
            )
        except KeyError as exc:
            raise PairingError(f"the server's answer has no {exc}; try again") from None
        await self.state.pair(account, code)
        self._client = self._client_for(account)
        return await self.run()

    async def new_pairing_code(self) -> JsonObject:
        """A fresh code for adding another device (codes expire; this revokes the old)."""
        account = self.state.account
        if account is None:
            raise PairingError("this device is not in a space: create one or join one first")
        created = await self.post(
            f"/api/v1/spaces/{account.space_id}/pairing-code",
            None,
            "make a new pairing code",
            token=account.token,
        )
        code = created.get("pairing_code")
        if not isinstance(code, str):
            raise PairingError("the server's answer has no pairing code; try again")
        await self.state.set_pairing_code(code)
        return self.status()

    async def leave(self) -> JsonObject:
        await self.state.leave()
        self._client = None
        return self.status()

    async def post(
        self, path: str, body: JsonObject | None, what: str, token: str | None = None
    ) -> dict[str, Any]:
        """POST to the server expecting 201; ``PairingError`` says what went wrong."""
        headers = None if token is None else {"Authorization": f"Bearer {token}"}
        try:
            response = await self._transport.request(
                "POST", self._server_url + path, body, headers=headers
            )
        except TransportError:
            raise ServerUnreachable(
                f"can't reach the server to {what}: check the connection and try again"
            ) from None
        if response.status == 429:
            wait = response.headers.get("retry-after", "")
            later = f" in {wait} s" if wait.isdigit() else " later"
            raise PairingError(f"too many attempts: try again{later}")
        if response.status != 201 or not isinstance(response.body, dict):
            detail, _ = error_detail(response.body)
            raise PairingError(f"couldn't {what}: {detail}")
        return response.body


class ServerIdentity:
    """Who this device is to the server's model (``router.Credentials``): its sync token
    once paired, before that a per-install token it registers on first use."""

    def __init__(self, state: State, sync: DeviceSync) -> None:
        self.state = state
        self.sync = sync

    async def token(self) -> str:
        account = self.state.account
        if account is not None:
            return account.token
        install = self.state.meta.get("install")
        if install is None:
            try:
                created = await self.sync.post("/api/v1/installs", None, "register this device")
            except ServerUnreachable:
                raise CloudUnavailable("offline", retry=True) from None
            except PairingError as exc:
                raise CloudUnavailable(str(exc), retry=True) from None
            install = {"install_id": str(created.get("install_id")), "token": created.get("token")}
            if not isinstance(install["token"], str):
                raise CloudUnavailable("the server gave this device no token", retry=True)
            await self.state.save([Put("meta", "install", install)])
        return str(install["token"])

    async def forget(self) -> None:
        if self.state.account is None and "install" in self.state.meta:
            await self.state.save([Delete("meta", "install")])


def _device_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= DEVICE_NAME_MAX:
        raise PairingError(f"the device name must be 1 to {DEVICE_NAME_MAX} characters")
    if not name.strip().isprintable():
        raise PairingError("the device name must be printable text")
    return name.strip()


def written_at(hlc: str) -> str:
    """When a version was written, as ISO time (from its timestamp's wall clock)."""
    wall_ms = Timestamp.decode(hlc).wall_ms
    return datetime.fromtimestamp(wall_ms / 1000, UTC).isoformat(timespec="seconds")


def conflicts_json(state: State) -> list[JsonObject]:
    """The conflicts for the page: each with a label and its versions, displayed first."""
    result = []
    for conflict in state.conflicts():
        record = state.records[conflict.collection].get(conflict.record_id) or {}
        label = record.get(SYNCED[conflict.collection], conflict.record_id)
        result.append(
            {
                **conflict.to_json(),
                "label": str(label),
                "versions": [
                    {
                        **version.to_json(),
                        "at": written_at(version.hlc),
                        "this_device": version.device_id == state.clock.device_id,
                    }
                    for version in conflict.versions
                ],
            }
        )
    return result
