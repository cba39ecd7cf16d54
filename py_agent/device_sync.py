"""This device's side of sync: pairing it into a space, running exchanges, deciding
when the next one is due, and the status the page shows ("synced", "3 pending",
"offline", "error, retrying in 4 s").

A device works fully without ever pairing; its changes wait in the outbox and go
to the space when it joins one.

When to sync is decided here, and only here (``next_at``); the host (the web worker)
keeps one timer for that time and then calls ``tick``, and passes on the browser's
events (``wake`` when it comes back online, ``set_visible``) and the live stream's
(``set_live``, ``space_changed``: web/src/live_sync.js holds the server's event stream).
In order:

- at once after a local change (``note_changes`` spots them): changes made during an
  exchange go in it, or in the next right after it, so a burst of edits takes few;
- ``IDLE_S`` after the last change, pulled or local (and after a local change's push):
  ``after_pull`` (embedding what arrived, or an edit's new text), on a tick of its own
  once changes pause, so that neither the page, nor the push, nor the next change's way
  to the other devices waits for the model, and a burst of edits is embedded once;
- at once after ``wake``: the app started, or the browser came back online;
- at the retry time after a failure (``SyncClient``'s backoff, or the server's
  Retry-After), which local changes made meanwhile wait for;
- never after a failure a retry would repeat (the device was unpaired, the server
  refused the request as malformed): the user must act, or make a change;
- at once when the live stream says the space is ahead of this device's cursor;
- ``PERIODIC_S`` after the last exchange, to pull the other devices' changes -- only
  while the live stream is down (polling is its fallback), and while the page is
  visible; a hidden page pulls as soon as it is shown again.

Only one exchange runs at a time: ``run`` waits for one under way.

"Synced" means the device has pushed everything and pulled up to the newest cursor it
knows the server has (from the last exchange, or the live stream since): a change the
stream announced makes the device "behind" until it has pulled it.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .platform import Delete, JsonObject, Put, Transport, TransportError
from .records import Conflict, LiveStream, SpaceDevice, SyncStatus
from .router import CloudUnavailable
from .state import SYNCED, State
from .sync.client import SyncAccount, SyncClient, error_detail
from .sync.hlc import Timestamp

# While the page is visible and the live stream is down, it pulls the other devices'
# changes this often.
PERIODIC_S = 15.0
# The longest wait between attempts while the server is unreachable: a browser that
# stays online gets no "online" event when the server comes back, so this bounds how
# long a device lags behind after an outage.
BACKOFF_MAX_S = 60.0
# The work after changes (after_pull) waits for this pause in them. A turn that comes
# first embeds what it needs itself (Agent._embed_changed).
IDLE_S = 1.0
# Where a paired device listens for "your space changed" (server/live.py).
EVENTS_PATH = "/api/v1/spaces/{space_id}/events"
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
        # E.g. embed the records that arrived from other devices, or this device's edited
        # text. It runs on a tick once changes pause, not inside an exchange nor before
        # it: the exchange's end is when the page hears of the changes and shows them,
        # and its start when the other devices can, and embedding first would hold either
        # up (as it would the next change's exchange, on a busy machine).
        self.after_pull = after_pull
        self._after_pull_at: float | None = None
        account = state.account
        self._client = None if account is None else self._client_for(account)
        self._exchange = asyncio.Lock()
        self._wake_at: float | None = clock()  # sync right after the app starts
        self._changed_at: float | None = None  # the last local change not yet sent
        self._newest_local = self._newest_pending()
        self._last_run_at = clock()  # the periodic pull counts from here (wake comes first)
        self._visible = True
        self._live = False  # the live stream is open: no periodic pull
        self._server_cursor = 0  # the newest cursor the live stream told of
        self._pull_at: float | None = None  # when it told of one this device lacks

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

    def status(self) -> SyncStatus:
        account = self.state.account
        now = self._clock()
        next_at = self.next_at()
        status: SyncStatus = {
            "paired": account is not None,
            "device_id": self.state.clock.device_id,
            "space_id": None if account is None else account.space_id,
            "pairing_code": self.state.sync_meta.get("pairing_code"),
            "pending": len(self.state.outbox),
            "revision": self.state.revision,
            "conflicts": len(self.state.conflicts()),
            "state": "local",
            "error": None,
            "retry_at": None,
            "next_at": next_at,
            "last_synced_at": None,
            "retry_in_s": None,
            "next_in_s": None if next_at is None else max(0.0, next_at - now),
        }
        if self._client is None:
            return status
        client = self._client.status
        status["state"] = client.state
        if client.state in ("synced", "pending"):
            if status["pending"]:
                status["state"] = "pending"
            elif self._behind():
                status["state"] = "behind"
            else:
                status["state"] = "synced"
        status["error"] = client.error
        status["retry_at"] = client.retry_at
        status["last_synced_at"] = client.last_synced_at
        if client.retry_at is not None:
            status["retry_in_s"] = max(0.0, client.retry_at - now)
        return status

    # -- when ----------------------------------------------------------------------------

    def next_at(self) -> float | None:
        """When the next exchange or ``after_pull`` is due (see the module docstring);
        None: neither is, or an exchange is under way (its end decides)."""
        if self._exchange.locked():
            return None
        exchange_at = self._exchange_at()
        if self._after_pull_at is None or exchange_at is None:
            return exchange_at if self._after_pull_at is None else self._after_pull_at
        return min(exchange_at, self._after_pull_at)

    def _exchange_at(self) -> float | None:
        if self._client is None:
            return None
        client = self._client.status
        if self._wake_at is not None:
            return self._wake_at
        if client.retry_at is not None:
            return client.retry_at
        if self._changed_at is not None:
            return self._changed_at
        if client.state == "error":
            return None
        if self._pull_at is not None and self._behind():
            return self._pull_at
        if self._live or not self._visible:
            return None
        return self._last_run_at + PERIODIC_S

    async def tick(self) -> None:
        """Run what is due: an exchange that pushes local changes, else the work after a
        pull (or after those changes), else the exchange."""
        now = self._clock()
        due = self.next_at()
        if due is None or due > now:
            return
        exchange_at = self._exchange_at()
        pushes = self._changed_at is not None and exchange_at is not None and exchange_at <= now
        if self._after_pull_at is None or self._after_pull_at > now or pushes:
            await self.run()
            return
        async with self._exchange:  # never beside an exchange: both write the records
            self._after_pull_at = None
            if self.after_pull is not None:
                await self.after_pull()

    def note_changes(self) -> None:
        """Spot local changes since the last look (the host looks after every call): a new
        op in the outbox is newer than every op before it."""
        newest = self._newest_pending()
        if newest is not None and (self._newest_local is None or newest > self._newest_local):
            self._changed_at = self._clock()
            if self.after_pull is not None:
                self._after_pull_at = self._changed_at + IDLE_S
        self._newest_local = newest

    def _newest_pending(self) -> str | None:
        return max(self.state.outbox.values(), default=None)

    def wake(self) -> None:
        """The browser came back online: sync now, whatever the backoff said."""
        self._wake_at = self._clock()

    def set_visible(self, visible: bool) -> None:
        self._visible = visible

    # -- the live stream ---------------------------------------------------------------

    def live_stream(self) -> LiveStream | None:
        """Where the host opens the live stream, and with which token (None: unpaired)."""
        account = self.state.account
        if account is None:
            return None
        path = EVENTS_PATH.format(space_id=account.space_id)
        return {"url": account.server_url + path, "token": account.token}

    def set_live(self, live: bool) -> None:
        """The live stream opened, or closed (then periodic pulls take over)."""
        self._live = live

    def space_changed(self, cursor: str) -> None:
        """The live stream says the space's ops run up to ``cursor``; a device behind it
        pulls at once. A cursor that is not the server's kind (digits) is ignored."""
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 18):
            return
        if int(cursor) > self._server_cursor:
            self._server_cursor = int(cursor)
            if self._behind():
                self._pull_at = self._clock()

    def _behind(self) -> bool:
        """The live stream told of ops this device has not pulled yet."""
        cursor = self.state.sync_meta.get("cursor")
        pulled = int(cursor) if isinstance(cursor, str) and cursor.isdigit() else 0
        return self._server_cursor > pulled

    # -- exchanges ---------------------------------------------------------------------

    async def run(self) -> SyncStatus:
        """One exchange with the server, if paired, after any exchange under way. Never
        raises for network or server failures: the status says what happened and when
        the next attempt is due."""
        async with self._exchange:
            # This exchange carries them. An exchange that ends still behind the stream's
            # cursor waits for the stream's next word or the retry: it never loops.
            self._wake_at = self._changed_at = self._pull_at = None
            if self._client is not None:
                revision = self.state.revision
                await self._client.sync()
                self._last_run_at = self._clock()
                if not self.state.outbox:  # it also carried the changes made meanwhile
                    self._changed_at = None
                if self.state.revision != revision and self.after_pull is not None:
                    self._after_pull_at = self._clock() + IDLE_S
        return self.status()

    async def chat_reply(self) -> str:
        """Runs an exchange and says how it went, for the "sync now" request."""
        status = await self.run()
        pending = status["pending"]
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
        if status["state"] == "behind":
            return "Synced, and newer changes from your other devices are on their way."
        retry_at = status["retry_at"]
        if retry_at is None:
            return f"Sync failed: {status['error']}"
        wait = max(1, math.ceil(retry_at - self._clock()))
        return f"Sync failed: {status['error']}, retrying in {wait} s"

    # -- pairing -----------------------------------------------------------------------

    async def create_space(self, device_name: object) -> SyncStatus:
        """Create a space and pair this device into it; the status carries the code
        to type on the user's other devices."""
        name = _device_name(device_name)
        created = await self.call("POST", "/api/v1/spaces", None, "create a space")
        code = created.get("pairing_code")
        if not isinstance(code, str):
            raise PairingError("the server's answer has no pairing code; try again")
        return await self._pair(code, name)

    async def join(self, pairing_code: object, device_name: object) -> SyncStatus:
        if not isinstance(pairing_code, str) or not pairing_code.strip():
            raise PairingError("type the pairing code shown on your other device")
        return await self._pair(pairing_code.strip(), _device_name(device_name))

    async def _pair(self, code: str, name: str) -> SyncStatus:
        paired = await self.call(
            "POST", "/api/v1/devices", {"pairing_code": code, "name": name}, "join the space"
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
        self._server_cursor = 0  # another space's cursors mean nothing here
        return await self.run()

    async def new_pairing_code(self) -> SyncStatus:
        """A fresh code for adding another device (codes expire; this revokes the old)."""
        account = self._paired()
        created = await self.call(
            "POST",
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

    async def leave(self) -> SyncStatus:
        await self.state.leave()
        self._client = None
        self._server_cursor = 0
        return self.status()

    async def call(
        self,
        method: str,
        path: str,
        body: JsonObject | None,
        what: str,
        *,
        token: str | None = None,
        expect: int = 201,
    ) -> Any:
        """A request to the server expecting ``expect``; ``PairingError`` says what went
        wrong. Answers the response's JSON body (None for an empty one)."""
        headers = None if token is None else {"Authorization": f"Bearer {token}"}
        try:
            response = await self._transport.request(
                method, self._server_url + path, body, headers=headers
            )
        except TransportError:
            raise ServerUnreachable(
                f"can't reach the server to {what}: check the connection and try again"
            ) from None
        if response.status == 429:
            wait = response.headers.get("retry-after", "")
            later = f" in {wait} s" if wait.isdigit() else " later"
            raise PairingError(f"too many attempts: try again{later}")
        if response.status != expect or (expect != 204 and not isinstance(response.body, dict)):
            detail, _ = error_detail(response.body)
            raise PairingError(f"couldn't {what}: {detail}")
        return response.body

    async def devices(self) -> list[SpaceDevice]:
        """The devices of this device's space, as the server knows them."""
        account = self._paired()
        answer = await self.call(
            "GET",
            "/api/v1/devices",
            None,
            "list the space's devices",
            token=account.token,
            expect=200,
        )
        try:
            return [
                SpaceDevice(
                    device_id=str(row["device_id"]),
                    name=str(row["name"]),
                    created_at=str(row["created_at"]),
                    last_seen=None if row["last_seen"] is None else str(row["last_seen"]),
                    this_device=bool(row["this_device"]),
                )
                for row in answer["devices"]
            ]
        except (KeyError, TypeError):
            raise PairingError("the server's list of devices is unreadable; try again") from None

    async def remove_device(self, device_id: str) -> list[SpaceDevice]:
        """Removes another device from the space (its token stops working); answers the
        devices left. This device leaves with Leave, not here."""
        account = self._paired()
        if device_id == account.device_id:
            raise PairingError("to take this device out of the space, use Leave")
        await self.call(
            "DELETE",
            f"/api/v1/devices/{device_id}",
            None,
            "remove the device",
            token=account.token,
            expect=204,
        )
        return await self.devices()

    def _paired(self) -> SyncAccount:
        account = self.state.account
        if account is None:
            raise PairingError("this device is not in a space: create one or join one first")
        return account


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
                created = await self.sync.call(
                    "POST", "/api/v1/installs", None, "register this device"
                )
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


def conflicts_json(state: State) -> list[Conflict]:
    """The conflicts for the page: each with a label and its versions, displayed first."""
    result: list[Conflict] = []
    for conflict in state.conflicts():
        record = state.records[conflict.collection].get(conflict.record_id) or {}
        label = record.get(SYNCED[conflict.collection], conflict.record_id)
        result.append(
            {
                "id": conflict.id,
                # state.conflicts() lists only the synced collections: tasks and notes.
                "collection": "tasks" if conflict.collection == "tasks" else "notes",
                "record_id": conflict.record_id,
                "field": conflict.field,
                "label": str(label),
                "versions": [
                    {
                        "value": version.value,
                        "hlc": version.hlc,
                        "device_id": version.device_id,
                        "op_id": version.op_id,
                        "at": written_at(version.hlc),
                        "this_device": version.device_id == state.clock.device_id,
                        "changes": dict(version.changes),
                    }
                    for version in conflict.versions
                ],
            }
        )
    return result
