"""The export format (py_agent/export.py): what export writes, what import accepts, and that
an import is one commit of synced changes or nothing at all."""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from py_agent.export import (
    MAX_BYTES,
    MAX_PROBLEMS,
    DataFormatError,
    ImportSummary,
    UserData,
    export_data,
    import_data,
    parse_user_data,
)
from py_agent.platform import Put
from py_agent.skills.editing import NOTE_MAX, TITLE_MAX
from py_agent.state import State, embedding_key, open_state

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=timezone(timedelta(hours=1)))
DIM = 16


class Embedder:
    """A deterministic stand-in for the encoder that records what it embedded."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> np.ndarray:
        self.texts.append(text)
        vector = np.zeros(DIM, dtype=np.float32)
        vector[zlib.crc32(text.encode()) % DIM] = 1.0
        return vector


async def fresh(tmp_path: Path, name: str = "data.db") -> State:
    return await open_state(str(tmp_path / name), model="test/1")


def task(record_id: str, created_at: str, **fields: Any) -> Put:
    record = {
        "id": record_id,
        "title": f"task {record_id}",
        "due_date": None,
        "due_time": None,
        "done": False,
        "created_at": created_at,
        "done_at": None,
        **fields,
    }
    return Put("tasks", record_id, record)


def note(record_id: str, created_at: str, text: str) -> Put:
    return Put("notes", record_id, {"id": record_id, "text": text, "created_at": created_at})


async def sample(tmp_path: Path) -> State:
    """Tasks of every shape the agent writes, stored out of order."""
    state = await fresh(tmp_path)
    await state.save(
        [
            task("t3", "2026-11-17T09:00:00+01:00", title="buy milk", list="groceries"),
            task(
                "t1",
                "2026-11-16T09:00:00+01:00",
                title="call Mom",
                due_date="2026-11-19",
                due_time="17:00",
            ),
            task(
                "t2",
                "2026-11-16T09:00:00+01:00",
                title="take out the trash",
                due_date="2026-11-23",
                repeat="FREQ=WEEKLY;BYDAY=MO",
            ),
            task(
                "t4",
                "2026-11-17T10:00:00+01:00",
                title="pay rent",
                due_date="2026-11-01",
                done=True,
                done_at="2026-11-17T10:30:00+01:00",
            ),
            note("n2", "2026-11-17T08:00:00+01:00", "the gate code is 4321"),
            note("n1", "2026-11-15T08:00:00+01:00", "the wifi password is hunter2"),
        ]
    )
    return state


EXPECTED = {
    "tasks": [
        {
            "id": "t1",
            "title": "call Mom",
            "due": "2026-11-19T17:00",
            "done": False,
            "list": None,
            "repeat": None,
            "completed_at": None,
        },
        {
            "id": "t2",
            "title": "take out the trash",
            "due": "2026-11-23",
            "done": False,
            "list": None,
            "repeat": "FREQ=WEEKLY;BYDAY=MO",
            "completed_at": None,
        },
        {
            "id": "t3",
            "title": "buy milk",
            "due": None,
            "done": False,
            "list": "groceries",
            "repeat": None,
            "completed_at": None,
        },
        {
            "id": "t4",
            "title": "pay rent",
            "due": "2026-11-01",
            "done": True,
            "list": None,
            "repeat": None,
            "completed_at": "2026-11-17T10:30:00+01:00",
        },
    ],
    "notes": [
        {"id": "n1", "text": "the wifi password is hunter2"},
        {"id": "n2", "text": "the gate code is 4321"},
    ],
}


async def stored(state: State) -> dict[str, list[dict[str, Any]]]:
    """Everything in the store (not memory), to check that nothing was written."""
    return {name: await state.store.get_all(name) for name in ("ops", "outbox", "embeddings")}


# -- export ----------------------------------------------------------------------------


async def test_export_maps_the_stored_fields_and_sorts_by_creation_then_id(
    tmp_path: Path,
) -> None:
    state = await sample(tmp_path)
    assert export_data(state).to_json() == EXPECTED
    assert json.loads(export_data(state).to_text()) == EXPECTED


async def test_an_empty_store_exports_empty_lists(tmp_path: Path) -> None:
    assert json.loads(export_data(await fresh(tmp_path)).to_text()) == {"tasks": [], "notes": []}


async def test_deleted_records_are_not_exported(tmp_path: Path) -> None:
    from py_agent.platform import Delete

    state = await sample(tmp_path)
    await state.save([Delete("tasks", "t1"), Delete("notes", "n2")])
    exported = export_data(state).to_json()
    assert [t["id"] for t in exported["tasks"]] == ["t2", "t3", "t4"]
    assert [n["id"] for n in exported["notes"]] == ["n1"]


# -- round trips -----------------------------------------------------------------------


async def test_round_trip_into_a_fresh_store_is_identical(tmp_path: Path) -> None:
    text = export_data(await sample(tmp_path)).to_text()
    target = await fresh(tmp_path, "other.db")
    embed = Embedder()
    summary = await import_data(target, parse_user_data(text), embed, NOW)
    assert summary == ImportSummary(tasks=4, tasks_updated=0, notes=2, notes_updated=0)
    assert str(summary) == "imported 4 tasks and 2 notes"
    assert export_data(target).to_text() == text
    # Every title and text was embedded, and the vectors are stored with the records.
    assert sorted(embed.texts) == sorted(
        [t["title"] for t in EXPECTED["tasks"]] + [n["text"] for n in EXPECTED["notes"]]
    )
    reopened = await open_state(str(tmp_path / "other.db"), model="test/1")
    assert export_data(reopened).to_text() == text
    assert sorted(reopened.vectors["tasks"].ids) == ["t1", "t2", "t3", "t4"]
    assert sorted(reopened.vectors["notes"].ids) == ["n1", "n2"]


async def test_importing_an_export_into_its_own_store_changes_nothing(tmp_path: Path) -> None:
    state = await sample(tmp_path)
    text = export_data(state).to_text()
    before = await stored(state)
    embed = Embedder()
    summary = await import_data(state, parse_user_data(text), embed, NOW)
    assert str(summary) == "imported 4 tasks (4 updated) and 2 notes (2 updated)"
    assert await stored(state) == before  # no ops: every value was already there
    assert embed.texts == []
    assert export_data(state).to_text() == text


# -- merging ---------------------------------------------------------------------------


async def test_import_updates_known_ids_adds_new_ones_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    state = await sample(tmp_path)
    document = json.loads(export_data(state).to_text())
    first = document["tasks"][0]
    first.update(title="call Mom back", due="2026-11-20", done=True)
    first["completed_at"] = "2026-11-18T09:00:00+01:00"
    document["tasks"] = [first, {"id": "new", "title": "water the plants", "list": "home"}]
    document["notes"] = [{"id": "n9", "text": "the bike lock is 1234"}]
    commits: list[int] = []
    commit = state.store.commit

    async def counting(writes: Any) -> None:
        commits.append(len(writes))
        await commit(writes)

    state.store.commit = counting  # type: ignore[method-assign]
    embed = Embedder()
    summary = await import_data(state, parse_user_data(json.dumps(document)), embed, NOW)

    assert str(summary) == "imported 2 tasks (1 updated) and 1 note"
    assert len(commits) == 1  # one transaction: nothing can be half imported
    assert sorted(embed.texts) == ["call Mom back", "the bike lock is 1234", "water the plants"]
    t1 = state.tasks["t1"]
    assert (t1["title"], t1["due_date"], t1["due_time"], t1["done"], t1["done_at"]) == (
        "call Mom back",
        "2026-11-20",
        None,
        True,
        "2026-11-18T09:00:00+01:00",
    )
    assert t1["created_at"] == "2026-11-16T09:00:00+01:00"  # fields outside the format stay
    added = state.tasks["new"]
    assert (added["title"], added["list"], added["done"], added["due_date"]) == (
        "water the plants",
        "home",
        False,
        None,
    )
    # Nothing is deleted: the records the file leaves out are still there.
    assert {"t2", "t3", "t4"} <= set(state.tasks) and {"n1", "n2"} <= set(state.notes)
    exported = export_data(state).to_json()
    assert [t["id"] for t in exported["tasks"]][-1] == "new"  # created now: last in order
    assert state.vectors["tasks"].ids and "new" in state.vectors["tasks"].ids


async def test_imported_changes_are_sync_ops_waiting_in_the_outbox(tmp_path: Path) -> None:
    state = await fresh(tmp_path)
    document = {"tasks": [{"id": "a", "title": "renew passport", "due": "2026-12-14"}]}
    await import_data(state, parse_user_data(json.dumps(document)), Embedder(), NOW)
    ops = await state.store.get_all("ops")
    fields = {op["field"]: op["value"] for op in ops if op["record_id"] == "a"}
    assert fields["title"] == "renew passport" and fields["due_date"] == "2026-12-14"
    assert {o["op_id"] for o in await state.store.get_all("outbox")} == {o["op_id"] for o in ops}
    assert await state.store.get("embeddings", embedding_key("tasks", "a")) is not None


async def test_a_failure_before_the_commit_writes_nothing(tmp_path: Path) -> None:
    state = await sample(tmp_path)
    before = await stored(state)
    document = {"tasks": [{"id": "x", "title": "one"}, {"id": "y", "title": "two"}]}
    calls = 0

    async def failing(text: str) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the model fell over")
        return np.ones(DIM, dtype=np.float32)

    with pytest.raises(RuntimeError):
        await import_data(state, parse_user_data(json.dumps(document)), failing, NOW)
    assert await stored(state) == before
    assert "x" not in state.tasks


# -- validation ------------------------------------------------------------------------

GOOD_TASK = {
    "id": "a",
    "title": "call Mom",
    "due": "2026-11-19T17:00",
    "done": False,
    "list": "groceries",
    "repeat": None,
    "completed_at": None,
}


def with_task(**changes: Any) -> dict[str, Any]:
    return {"tasks": [{**GOOD_TASK, **changes}], "notes": []}


def problems(document: object) -> list[str]:
    text = document if isinstance(document, (str, bytes)) else json.dumps(document)
    with pytest.raises(DataFormatError) as caught:
        parse_user_data(text)
    return caught.value.problems


DATE = "which isn't a date: write it like 2026-11-19, or 2026-11-19T17:00 with a time"
ID = "an id is 1 to 64 printable characters."
LOWER = "a list's name is written in lower case with single spaces"
OFFSET = "write it as a time with its UTC offset, like 2026-11-18T10:00:00+00:00"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            with_task(due="2026-13-01"),
            f'Task 1\'s “due” is "2026-13-01", {DATE} (or null for none).',
        ),
        (with_task(due="2026-11-19T24:00"), f'Task 1\'s “due” is "2026-11-19T24:00", {DATE}'),
        (with_task(due="2026-11-19 17:00"), f'Task 1\'s “due” is "2026-11-19 17:00", {DATE}'),
        (with_task(due=20261119), f"Task 1's “due” is 20261119, {DATE}"),
        (
            with_task(colour="red"),
            "Task 1 has “colour”, which a task doesn't have (it has id, title, due, done, list, "
            "repeat, completed_at).",
        ),
        (with_task(id=""), f'Task 1\'s “id” is ""; {ID}'),
        (with_task(id="x" * 65), f"Task 1's “id” is \"{'x' * 56}…; {ID}"),
        (with_task(id="a\nb"), f'Task 1\'s “id” is "a\\nb"; {ID}'),
        (with_task(id=7), f"Task 1's “id” is 7; {ID}"),
        (with_task(title="   "), 'Task 1\'s “title” is "   "; it needs some text.'),
        (with_task(title=None), "Task 1's “title” is null; it needs some text."),
        (
            with_task(title="x" * (TITLE_MAX + 1)),
            f"Task 1's “title” is {TITLE_MAX + 1} characters long; at most {TITLE_MAX} fit.",
        ),
        (with_task(done="yes"), 'Task 1\'s “done” is "yes"; it is true or false.'),
        (with_task(list="Groceries"), f'Task 1\'s “list” is "Groceries"; {LOWER}'),
        (with_task(list="my  list"), f'Task 1\'s “list” is "my  list"; {LOWER}'),
        (with_task(list=""), f'Task 1\'s “list” is ""; {LOWER}'),
        (
            with_task(repeat=["FREQ=DAILY"]),
            'Task 1\'s “repeat” is ["FREQ=DAILY"]; a repeat is a rule like "FREQ=WEEKLY;BYDAY=MO"',
        ),
        (with_task(completed_at="yesterday"), f'Task 1\'s “completed_at” is "yesterday"; {OFFSET}'),
        (
            with_task(completed_at="2026-11-18T10:00:00"),
            f'Task 1\'s “completed_at” is "2026-11-18T10:00:00"; {OFFSET}',
        ),
        ({"tasks": [{"title": "no id"}]}, "Task 1 has no “id”."),
        ({"tasks": [{"id": "a"}]}, "Task 1 has no “title”."),
        ({"tasks": ["call Mom"]}, "Task 1 is text; a task is an object with “id” and “title”."),
        ({"tasks": {"a": GOOD_TASK}}, "“tasks” is an object; it should be a list of tasks."),
        ({"notes": [{"id": "n", "text": ""}]}, 'Note 1\'s “text” is ""; it needs some text.'),
        (
            {"notes": [{"id": "n", "text": "x" * (NOTE_MAX + 1)}]},
            f"Note 1's “text” is {NOTE_MAX + 1} characters long; at most {NOTE_MAX} fit.",
        ),
        (
            {"notes": [{"id": "n", "text": "t", "pinned": True}]},
            "Note 1 has “pinned”, which a note doesn't have (it has id, text).",
        ),
        ({"notes": [{"id": "n"}]}, "Note 1 has no “text”."),
        (
            {"tasks": [GOOD_TASK, {**GOOD_TASK, "title": "again"}]},
            'Task 2 has the same id as task 1 ("a"); each needs its own.',
        ),
        (
            {
                "notes": [
                    {"id": "n", "text": "a"},
                    {"id": "m", "text": "b"},
                    {"id": "n", "text": "c"},
                ]
            },
            'Note 3 has the same id as note 1 ("n"); each needs its own.',
        ),
        (
            {"tasks": [], "settings": {}},
            'The file has "settings", which an export doesn\'t have (it has "tasks" and "notes").',
        ),
        (
            [],
            'The file holds a list, not an export: an export is a JSON object with "tasks" and '
            '"notes".',
        ),
        (
            "{",
            "The file is not JSON: expecting property name enclosed in double quotes at line 1, "
            "column 2.",
        ),
        (
            '{"tasks": [], "tasks": []}',
            'The file is not JSON: the key "tasks" appears twice in one object.',
        ),
        (
            b'{"notes": [{"id": "n", "text": "caf\xe9"}]}',
            "The file is not text: it isn't UTF-8 (at byte 35).",
        ),
    ],
)
def test_each_problem_says_where_it_is_and_what_would_fix_it(
    document: object, expected: str
) -> None:
    found = problems(document)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_an_invalid_repeat_rule_is_refused_by_the_recurrence_rules() -> None:
    (found,) = problems(with_task(repeat="FREQ=SOMETIMES"))
    assert found == (
        "Task 1's “repeat” is \"FREQ=SOMETIMES\", a rule I can't follow: FREQ=SOMETIMES is not "
        "supported (DAILY, WEEKLY, MONTHLY or YEARLY)."
    )


def test_a_task_and_a_note_may_share_an_id() -> None:
    data = parse_user_data(json.dumps({"tasks": [GOOD_TASK], "notes": [{"id": "a", "text": "x"}]}))
    assert (data.tasks[0].id, data.notes[0].id) == ("a", "a")


def test_optional_keys_default_to_null_and_text_is_trimmed() -> None:
    data = parse_user_data(json.dumps({"tasks": [{"id": "a", "title": "  call Mom "}]}))
    assert data == UserData(tasks=(data.tasks[0],))
    assert data.tasks[0].to_json() == {
        "id": "a",
        "title": "call Mom",
        "due": None,
        "done": False,
        "list": None,
        "repeat": None,
        "completed_at": None,
    }
    assert parse_user_data("{}") == UserData()
    assert parse_user_data(b"\xef\xbb\xbf{}") == UserData()  # a byte-order mark is fine


def test_every_problem_is_listed_up_to_a_limit() -> None:
    document = {"tasks": [{**GOOD_TASK, "id": str(i), "due": "soon"} for i in range(15)]}
    with pytest.raises(DataFormatError) as caught:
        parse_user_data(json.dumps(document))
    assert len(caught.value.problems) == 15
    lines = str(caught.value).splitlines()
    assert len(lines) == MAX_PROBLEMS + 1 and lines[-1] == "…and 5 more problems."
    assert lines[0].startswith("Task 1's “due” ") and lines[9].startswith("Task 10's “due” ")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    oversized = b'{"notes": [' + b" " * MAX_BYTES + b"]}"
    (found,) = problems(oversized)
    assert found == "The file is 20.0 MB; at most 20 MB can be imported."
