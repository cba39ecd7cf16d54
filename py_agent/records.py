"""The records that cross between the worker and the page, typed once.

``py_agent.worker_api``'s functions take and return these (and two dataclasses of the
agent: ``agent.Reply``, ``router.RouterSettings``); ``tools/js_types.py`` turns them into
the JSDoc typedefs of ``web/src/types.js``, which ``tsc --checkJs`` holds the page to. A
field added here reaches the page's type check by regenerating that file (a test fails
until it is).

Records the agent keeps as plain dicts in its store (tasks, notes, messages) are passed
through as they are: their TypedDicts describe what the page may rely on, and a record
may carry more (a field a newer app syncs).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

from .router import Consent, ConsentChoice, RouterSettings


class Label:
    """Names the items of a list argument in error messages: ``Annotated[str, Label("text")]``
    makes a number among ``texts`` "text must be a string, got int"."""

    def __init__(self, name: str) -> None:
        self.name = name


Text = Annotated[str, Label("text")]
Collection = Literal["tasks", "notes"]

# -- errors and the envelope ------------------------------------------------------------


class WorkerError(TypedDict):
    """A failed call: the exception's class name and its own message (never a traceback);
    ``field`` names the argument at fault, e.g. ``texts[0]`` or ``changes.done``."""

    type: str
    message: str
    field: NotRequired[str]


class SpaceDevice(TypedDict):
    """A device of this device's space, as the server lists it (Settings → Sync)."""

    device_id: str
    name: str
    created_at: str  # ISO time, UTC
    last_seen: str | None  # ISO time, UTC; None until it first synced
    this_device: bool


class SyncStatus(TypedDict):
    """This device's sync, for the indicator. Times are Unix seconds (the worker's and the
    page's clocks are the browser's one clock)."""

    paired: bool
    device_id: str
    space_id: str | None
    pairing_code: str | None
    pending: int  # changes in the outbox
    revision: int  # counts changes that arrived from other devices
    conflicts: int
    # "synced": everything pushed, and pulled up to the newest cursor the device knows the
    # server has; "behind": the live stream told of changes not pulled yet.
    state: Literal["local", "synced", "pending", "behind", "syncing", "offline", "error"]
    error: str | None  # what went wrong, e.g. "server error 503" (when it is retried: retry_at)
    retry_at: float | None  # the automatic retry after a failure, if one is scheduled
    next_at: float | None  # the next automatic exchange: a retry, a push or a periodic pull
    last_synced_at: float | None
    retry_in_s: float | None  # retry_at, as seconds from when this status was made
    next_in_s: float | None  # next_at, as seconds from when this status was made


class LiveStream(TypedDict):
    """Where the page opens the live-sync stream (``GET``, Server-Sent Events) and the
    device's token for its Authorization header: a browser's EventSource cannot send one."""

    url: str
    token: str


class After(TypedDict):
    """What the worker does after every call: arm its one timer for ``next_at`` (then call
    ``tick``), and pass on what changed to the page's watchers."""

    next_at: float | None  # when automatic work (a sync, a second opinion) is next due
    sync: NotRequired[SyncStatus]  # the sync status, when it changed since the last call
    chat: NotRequired[int]  # queued requests second opinions settled since the last call


class Success(TypedDict):
    ok: Literal[True]
    value: Any  # the method's result, typed by the method (see PythonApi in types.js)
    after: After


class Failure(TypedDict):
    ok: Literal[False]
    error: WorkerError
    after: After


# -- the user's data ----------------------------------------------------------------------


class Task(TypedDict):
    id: str
    title: str
    done: bool
    created_at: str  # ISO time with offset
    done_at: str | None
    due_date: str | None  # YYYY-MM-DD
    due_time: str | None  # HH:MM, only with a due_date
    list: str | None  # a list's name; unset for the main list
    repeat: str | None  # an RRULE
    occurrence_of: NotRequired[str]  # a done copy of a repeating task's occurrence


class TaskView(Task):
    """A task for the panes: every field, and its repeat rule in words."""

    repeat_text: str | None


class Note(TypedDict):
    id: str
    text: str
    created_at: str


class RecordChanges(TypedDict, total=False):
    """A direct edit from the panes: a task's fields or a note's text."""

    title: str
    done: bool
    due_date: str | None
    due_time: str | None
    list: str | None
    repeat: str | None
    text: str


class Removed(TypedDict):
    removed: str


class CacheStats(TypedDict):
    hits: int
    misses: int
    size: int


class Snapshot(TypedDict):
    tasks: list[TaskView]
    notes: list[Note]
    cache: CacheStats


class Proposal(TypedDict):
    """The action a second opinion offers to carry out ("Apply")."""

    intent: str
    text: str
    now: str


class ConsentQuestion(TypedDict):
    """The request a consent question is about, carried out once it is answered."""

    text: str
    now: str


class Message(TypedDict):
    """A chat message as stored: the agent's carry how the request was understood."""

    id: str
    role: Literal["user", "agent"]
    text: str
    at: str
    intent: NotRequired[str]
    confidence: NotRequired[float]
    source: NotRequired[Literal["local", "cloud", "tentative"]]
    latency_ms: NotRequired[float]
    cached: NotRequired[bool]
    model: NotRequired[str]
    cloud_ms: NotRequired[float]
    local_intent: NotRequired[str]
    confirmed_by: NotRequired[str]  # the server's model read it the same way
    refines: NotRequired[str]  # the id of the message this second opinion (or follow-up) is about
    records: NotRequired[list[str]]  # the tasks and notes the turn changed, "tasks:<id>"
    proposal: NotRequired[Proposal]
    applied: NotRequired[bool]
    consent_question: NotRequired[ConsentQuestion]  # "Ask the server?", with its buttons
    consent_answer: NotRequired[ConsentChoice]  # set once the question is answered


class ConflictVersion(TypedDict):
    value: Any  # the field's value in this version
    hlc: str
    device_id: str
    op_id: str
    at: str  # when it was written, ISO time
    this_device: bool
    changes: dict[str, Any]  # restoring a contested delete: what the edits set; else empty


class Conflict(TypedDict):
    """A field edited differently on two devices, with each version (displayed first)."""

    id: str
    collection: Collection
    record_id: str
    field: str
    label: str  # the record's title or text
    versions: list[ConflictVersion]


class SettingsChanges(TypedDict, total=False):
    consent: Consent
    cloud_help: bool  # the older switch: true is consent "always", false "never"
    threshold: float


class Stats(TypedDict):
    turns: int
    fallback_rate: float | None  # share of turns sent to the server
    cloud_answered: int
    tentative: int
    agreement: float | None  # share of server answers that agreed with the device
    cloud_p50_ms: float | None
    cloud_p95_ms: float | None
    queue: int  # requests waiting for a second opinion
    settings: RouterSettings


class ImportResult(TypedDict):
    summary: str  # "imported 2 tasks and 1 note"
    tasks: int
    tasks_updated: int
    notes: int
    notes_updated: int


# -- the runtime ------------------------------------------------------------------------


class ModelInfo(TypedDict):
    name: str
    version: str
    dimension: int


class Environment(TypedDict):
    py_agent: str
    python: str
    numpy: str
    platform: str
    sys_platform: str
    runtime: str
    threads: int


class Tensor(TypedDict):
    dtype: str
    shape: list[int]
    data: list[Any]  # nested or flat numbers, numpy's order


class RunTimes(TypedDict):
    create: float
    run: float


class RunResult(TypedDict):
    outputs: dict[str, Tensor]
    runtime: str
    threads: int
    ms: RunTimes


class Check(TypedDict):
    ok: bool
    error: NotRequired[str]
    read_back: NotRequired[bool]
    deleted: NotRequired[bool]
    status: NotRequired[int]
    body: NotRequired[Any]


class SelfCheck(TypedDict):
    ok: bool
    checks: dict[str, Check]
    environment: Environment
