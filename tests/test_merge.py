from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from support import FakeWall

from py_agent.sync import (
    TOMBSTONE,
    HybridClock,
    Op,
    OpError,
    Replica,
    Timestamp,
    canonical_json,
    new_op,
)
from py_agent.sync.ops import MAX_PARENTS

T0 = 1_700_000_000_000


def make_op(
    op_id: str,
    value: Any,
    *,
    device: str = "dev-a",
    wall: int = T0,
    counter: int = 0,
    parents: tuple[str, ...] = (),
    collection: str = "tasks",
    record_id: str = "t1",
    field: str = "title",
) -> Op:
    return Op(
        op_id=op_id,
        device_id=device,
        collection=collection,
        record_id=record_id,
        field=field,
        value=value,
        hlc=Timestamp(wall, counter, device).encode(),
        parents=parents,
    )


def replica_of(*ops: Op) -> Replica:
    replica = Replica()
    replica.apply(ops)
    return replica


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def valid_json(**changes: Any) -> dict[str, Any]:
    data = make_op("op1", "buy milk").to_json()
    data.update(changes)
    return data


# --- the merge rule ---------------------------------------------------------------------


def test_a_single_write_is_displayed() -> None:
    replica = replica_of(make_op("a", "buy milk"))
    assert replica.record("tasks", "t1") == {"title": "buy milk"}
    assert replica.records("tasks") == {"t1": {"title": "buy milk"}}
    assert replica.heads("tasks", "t1", "title") == ("a",)
    assert replica.conflicts() == []


def test_unknown_records_and_fields() -> None:
    replica = replica_of(make_op("a", "buy milk"))
    assert replica.record("tasks", "nope") is None
    assert replica.record("notes", "t1") is None
    assert replica.records("notes") == {}
    assert replica.heads("tasks", "t1", "due") == ()
    assert Replica().state() == {"records": {}, "conflicts": []}


def test_sequential_overwrite_with_parents_is_not_a_conflict() -> None:
    first = make_op("a", "buy milk", device="dev-a", wall=T0)
    second = make_op("b", "buy oat milk", device="dev-b", wall=T0 + 5, parents=("a",))
    for ops in ([first, second], [second, first]):
        replica = replica_of(*ops)
        assert replica.record("tasks", "t1") == {"title": "buy oat milk"}
        assert replica.heads("tasks", "t1", "title") == ("b",)
        assert replica.conflicts() == []


def test_concurrent_heads_latest_wins_and_both_are_kept_as_a_conflict() -> None:
    a = make_op("a", "buy milk", device="dev-a", wall=T0 + 9)
    b = make_op("b", "buy bread", device="dev-b", wall=T0 + 3, counter=7)
    replica = replica_of(a, b)
    assert replica.record("tasks", "t1") == {"title": "buy milk"}
    assert replica.heads("tasks", "t1", "title") == ("a", "b")
    [conflict] = replica.conflicts()
    assert (conflict.collection, conflict.record_id, conflict.field) == ("tasks", "t1", "title")
    assert [(v.value, v.device_id, v.op_id, v.hlc) for v in conflict.versions] == [
        ("buy milk", "dev-a", "a", a.hlc),
        ("buy bread", "dev-b", "b", b.hlc),
    ]
    expected_id = hashlib.sha1(b'["tasks", "t1", "title", ["a", "b"]]').hexdigest()
    assert conflict.id == expected_id
    assert replica_of(b, a).conflicts()[0].id == expected_id


def test_equal_wall_and_counter_the_device_id_breaks_the_tie() -> None:
    a = make_op("a", "from a", device="dev-a")
    b = make_op("b", "from b", device="dev-b")
    assert replica_of(a, b).record("tasks", "t1") == {"title": "from b"}
    assert replica_of(b, a).record("tasks", "t1") == {"title": "from b"}


def test_concurrent_equal_values_are_not_a_conflict() -> None:
    a = make_op("a", {"text": "buy milk", "n": 1}, device="dev-a")
    b = make_op("b", {"n": 1.0, "text": "buy milk"}, device="dev-b", wall=T0 + 1)
    replica = replica_of(a, b)
    assert replica.heads("tasks", "t1", "title") == ("b", "a")
    assert replica.conflicts() == []


def test_true_and_1_are_different_values() -> None:
    a = make_op("a", True, device="dev-a")
    b = make_op("b", 1, device="dev-b")
    assert len(replica_of(a, b).conflicts()) == 1
    assert a != make_op("a", 1, device="dev-a")


def test_writing_with_all_heads_as_parents_resolves_the_conflict() -> None:
    wall = FakeWall(T0 + 100)
    clock = HybridClock("dev-c", wall)
    replica = replica_of(
        make_op("a", "buy milk", device="dev-a", wall=T0 + 9),
        make_op("b", "buy bread", device="dev-b", wall=T0 + 3),
    )
    [conflict] = replica.conflicts()
    keep = conflict.versions[1]  # keep the one that was not displayed
    resolution = new_op(
        clock,
        collection="tasks",
        record_id="t1",
        field="title",
        value=keep.value,
        parents=replica.heads("tasks", "t1", "title"),
    )
    assert replica.apply([resolution]) == [resolution.op_id]
    assert replica.conflicts() == []
    assert replica.record("tasks", "t1") == {"title": "buy bread"}
    assert replica.heads("tasks", "t1", "title") == (resolution.op_id,)


def test_a_write_that_saw_only_one_head_leaves_the_conflict() -> None:
    replica = replica_of(
        make_op("a", "buy milk", device="dev-a", wall=T0 + 1),
        make_op("b", "buy bread", device="dev-b", wall=T0 + 2),
        make_op("c", "buy eggs", device="dev-b", wall=T0 + 3, parents=("b",)),
    )
    [conflict] = replica.conflicts()
    assert [v.op_id for v in conflict.versions] == ["c", "a"]


def test_replica_write_supersedes_the_heads_and_observes_them() -> None:
    # dev-b's op is an hour ahead of dev-c's wall clock and dev-c never observed it:
    # write() must still stamp the resolution later than its parents.
    replica = replica_of(
        make_op("a", "buy milk", device="dev-a", wall=T0),
        make_op("b", "buy bread", device="dev-b", wall=T0 + 3_600_000),
    )
    clock = HybridClock("dev-c", FakeWall(T0))
    [op] = replica.write(clock, collection="tasks", record_id="t1", field="title", value="both")
    assert op.parents == ("b", "a")
    assert op.hlc > replica_of(make_op("b", "x", device="dev-b", wall=T0 + 3_600_000)).ops()[0].hlc
    assert replica.conflicts() == []
    assert replica.record("tasks", "t1") == {"title": "both"}
    [again] = replica.write(clock, collection="tasks", record_id="t1", field="title", value="3")
    assert again.parents == (op.op_id,)


def test_more_heads_than_an_op_can_list_are_superseded_by_a_chain() -> None:
    many = [make_op(f"h{i:02}", f"value {i}", device=f"dev-{i:02}", wall=T0 + i) for i in range(70)]
    replica = replica_of(*many)
    assert len(replica.heads("tasks", "t1", "title")) == 70
    clock = HybridClock("dev-z", FakeWall(T0 + 1000))
    written = replica.write(clock, collection="tasks", record_id="t1", field="title", value="one")
    assert len(written) == 3
    assert all(len(op.parents) <= MAX_PARENTS for op in written)
    assert replica.heads("tasks", "t1", "title") == (written[-1].op_id,)
    assert replica.conflicts() == []
    # Elsewhere the chain works the same, in any order.
    assert replica_of(*reversed(written), *many).state() == replica.state()


def test_a_child_not_later_than_its_parent_does_not_hide_it() -> None:
    # An honest writer is always later than the ops it saw; an edge that says otherwise
    # is ignored, so a cycle can't leave a field without a head.
    a = make_op("a", "one", device="dev-a", wall=T0 + 5, parents=("b",))
    b = make_op("b", "two", device="dev-b", wall=T0 + 1, parents=("a",))
    for ops in ([a, b], [b, a]):
        replica = replica_of(*ops)
        assert replica.heads("tasks", "t1", "title") == ("a",)
        assert replica.record("tasks", "t1") == {"title": "one"}
    late_child = make_op("c", "three", device="dev-c", wall=T0, parents=("a",))
    assert replica_of(a, late_child).heads("tasks", "t1", "title") == ("a", "c")


def test_parents_only_dominate_ops_of_the_same_field() -> None:
    title = make_op("a", "buy milk", field="title")
    due = make_op("b", "2026-12-01", field="due", wall=T0 + 1, parents=("a",))
    replica = replica_of(title, due)
    assert replica.record("tasks", "t1") == {"due": "2026-12-01", "title": "buy milk"}


def test_parents_arriving_after_their_child_are_dominated() -> None:
    ops = [make_op(f"o{i}", i, wall=T0 + i, parents=(f"o{i - 1}",) if i else ()) for i in range(5)]
    replica = Replica()
    for op in reversed(ops):
        replica.apply([op])
    assert replica.heads("tasks", "t1", "title") == ("o4",)
    assert replica.record("tasks", "t1") == {"title": 4}


# --- tombstones ---------------------------------------------------------------------------


def test_a_deleted_record_is_hidden_but_kept_and_can_be_restored() -> None:
    clock = HybridClock("dev-a", FakeWall())
    replica = Replica()
    replica.write(clock, collection="tasks", record_id="t1", field="title", value="buy milk")
    replica.write(clock, collection="tasks", record_id="t2", field="title", value="call mum")
    replica.write(clock, collection="tasks", record_id="t1", field=TOMBSTONE, value=True)
    assert replica.record("tasks", "t1") is None
    assert replica.records("tasks") == {"t2": {"title": "call mum"}}
    assert replica.state()["records"]["tasks"]["t1"] == {TOMBSTONE: True, "title": "buy milk"}
    replica.write(clock, collection="tasks", record_id="t1", field=TOMBSTONE, value=False)
    assert replica.record("tasks", "t1") == {"title": "buy milk"}
    assert replica.conflicts() == []


def test_a_delete_and_a_concurrent_restore_are_a_conflict_and_the_record_stays_shown() -> None:
    delete = make_op("d", True, device="dev-a", wall=T0, field=TOMBSTONE, parents=("t",))
    keep = make_op("k", False, device="dev-b", wall=T0 + 50, field=TOMBSTONE)
    for ops in ([delete, keep], [keep, delete]):
        replica = replica_of(make_op("t", "buy milk", wall=T0 - 10), *ops)
        assert replica.record("tasks", "t1") == {"title": "buy milk"}
        assert replica.in_conflict("tasks", "t1")
        [conflict] = replica.conflicts()
        assert conflict.field == TOMBSTONE
        assert [v.op_id for v in conflict.versions] == ["d", "k"]  # the delete first
        assert conflict.edits == ()
        assert replica.state()["records"]["tasks"]["t1"][TOMBSTONE] is True


# --- an edit or completion concurrent with a delete ---------------------------------------
# The task "buy milk" (title t, done f0) was made on dev-a and synced. Then, neither having
# seen the other's change, dev-a checks it off and dev-b deletes it.

TASK = (
    make_op("t", "buy milk", device="dev-a", wall=T0),
    make_op("f0", False, device="dev-a", wall=T0, counter=1, field="done"),
)
# dev-b's delete lists what it had seen: the tombstone's heads (none) and the other fields'.
DELETE = make_op("d", True, device="dev-b", wall=T0 + 5, field=TOMBSTONE, parents=("f0", "t"))


def completed_at(wall: int) -> Op:
    return make_op("e", True, device="dev-a", wall=wall, field="done", parents=("f0",))


def every_order(ops: list[Op]) -> list[Replica]:
    return [replica_of(*order) for order in itertools.permutations(ops)]


@pytest.mark.parametrize("edit_wall", [T0 + 3, T0 + 7], ids=["edit-earlier", "edit-later"])
def test_a_completion_concurrent_with_a_delete_is_a_conflict_in_every_order(
    edit_wall: int,
) -> None:
    """Whether the completion's clock is before or after the delete's, the delete had not
    seen it: the task stays shown, done, in conflict, and the same on every replica."""
    edit = completed_at(edit_wall)
    replicas = every_order([*TASK, DELETE, edit])
    for replica in replicas:
        assert replica.record("tasks", "t1") == {"done": True, "title": "buy milk"}
        assert replica.records("tasks") == {"t1": {"done": True, "title": "buy milk"}}
        assert replica.in_conflict("tasks", "t1")
        [conflict] = replica.conflicts()
        assert (conflict.field, conflict.edits) == (TOMBSTONE, ("e",))
        assert [(v.value, v.op_id, v.device_id, v.changes) for v in conflict.versions] == [
            (True, "d", "dev-b", {}),  # keep deleted
            (False, "e", "dev-a", {"done": True}),  # restore with the completion
        ]
        assert conflict.versions[1].to_json()["changes"] == {"done": True}
        assert "changes" not in conflict.versions[0].to_json()
        assert replica.state() == replicas[0].state()
        assert conflict.id == replicas[0].conflicts()[0].id
    expected = hashlib.sha1(b'["tasks", "t1", "_deleted", ["d", "e"]]').hexdigest()
    assert replicas[0].conflicts()[0].id == expected


def test_an_edit_the_delete_had_seen_is_not_a_conflict() -> None:
    edit = completed_at(T0 + 3)
    delete = make_op("d", True, device="dev-b", wall=T0 + 5, field=TOMBSTONE, parents=("e", "t"))
    for replica in every_order([*TASK, edit, delete]):
        assert replica.record("tasks", "t1") is None
        assert replica.conflicts() == []


def choose(replica: Replica, device: str, keep: bool) -> list[Op]:
    """Pick a version of the contested delete, as State does: write it over the heads."""
    [conflict] = replica.conflicts()
    [version] = [v for v in conflict.versions if v.value is keep]
    clock = HybridClock(device, FakeWall(T0 + 100))
    return replica.write(
        clock, collection="tasks", record_id="t1", field=TOMBSTONE, value=version.value
    )


@pytest.mark.parametrize(
    ("keep", "shown"),
    [(True, None), (False, {"done": True, "title": "buy milk"})],
    ids=["keep-deleted", "restore-with-the-edit"],
)
@pytest.mark.parametrize("device", ["dev-a", "dev-b"])
def test_either_choice_on_either_device_converges_in_every_order(
    keep: bool, shown: dict[str, Any] | None, device: str
) -> None:
    edit = completed_at(T0 + 3)
    [choice] = choose(replica_of(*TASK, DELETE, edit), device, keep)
    if keep:  # the new delete saw everything, the completion included
        assert set(choice.parents) == {"d", "e", "t"}
    else:  # the restore supersedes the delete; the completion is the done field's head
        assert choice.parents == ("d",)
    replicas = every_order([*TASK, DELETE, edit, choice])
    for replica in replicas:
        assert replica.record("tasks", "t1") == shown
        assert replica.conflicts() == []
        assert replica.state() == replicas[0].state()
    # Idempotent: ops received again change nothing.
    again = replicas[0]
    before = again.state()
    assert again.apply([choice, edit, DELETE, *TASK]) == []
    assert again.state() == before


def test_both_choices_made_at_once_on_two_devices_are_a_conflict_again() -> None:
    edit = completed_at(T0 + 3)
    contested = [*TASK, DELETE, edit]
    [keep] = choose(replica_of(*contested), "dev-b", True)
    [restore] = choose(replica_of(*contested), "dev-a", False)
    for replica in every_order([*contested, keep, restore]):
        assert replica.record("tasks", "t1") == {"done": True, "title": "buy milk"}
        [conflict] = replica.conflicts()
        assert [v.op_id for v in conflict.versions] == [keep.op_id, restore.op_id]
        assert conflict.edits == ()


def test_an_edit_concurrent_with_keep_deleted_contests_it_again() -> None:
    """A third device renamed the task, unaware of all this: once its rename arrives the
    task is back in conflict, with the rename to restore -- never silently dropped."""
    edit = completed_at(T0 + 3)
    [keep] = choose(replica_of(*TASK, DELETE, edit), "dev-b", True)
    rename = make_op("r", "buy oat milk", device="dev-c", wall=T0 + 4, parents=("t",))
    for replica in every_order([*TASK, DELETE, edit, keep, rename]):
        assert replica.record("tasks", "t1") == {"done": True, "title": "buy oat milk"}
        [conflict] = replica.conflicts()
        assert conflict.edits == ("r",)
        assert conflict.versions[-1].changes == {"title": "buy oat milk"}


def test_several_concurrent_edits_restore_together_with_the_latest_of_each_field() -> None:
    first = make_op("r1", "buy oat milk", device="dev-a", wall=T0 + 2, parents=("t",))
    second = make_op("r2", "buy soy milk", device="dev-a", wall=T0 + 4, parents=("r1",))
    edit = completed_at(T0 + 3)
    replica = replica_of(*TASK, DELETE, first, second, edit)
    [conflict] = replica.conflicts()
    assert conflict.edits == ("r2", "e")  # heads only, latest first
    restore = conflict.versions[-1]
    assert (restore.op_id, restore.changes) == ("r2", {"title": "buy soy milk", "done": True})


def test_a_delete_listing_a_later_op_does_not_hide_it() -> None:
    """An honest delete is later than what it saw; a claim to have seen a later op is
    ignored, as parents are within a field."""
    edit = completed_at(T0 + 9)
    delete = make_op("d", True, device="dev-b", wall=T0 + 5, field=TOMBSTONE, parents=("e", "t"))
    replica = replica_of(*TASK, edit, delete)
    assert replica.record("tasks", "t1") == {"done": True, "title": "buy milk"}
    assert replica.conflicts()[0].edits == ("e",)


def test_a_delete_from_before_deletes_listed_what_they_saw_covers_what_is_earlier() -> None:
    old_delete = make_op("d", True, device="dev-b", wall=T0 + 5, field=TOMBSTONE)
    earlier, later = completed_at(T0 + 3), completed_at(T0 + 7)
    assert replica_of(*TASK, old_delete, earlier).record("tasks", "t1") is None
    assert replica_of(*TASK, old_delete, earlier).conflicts() == []
    [conflict] = replica_of(*TASK, old_delete, later).conflicts()
    assert conflict.edits == ("e",)


def test_a_delete_chained_over_many_heads_has_seen_every_one() -> None:
    clock = HybridClock("dev-z", FakeWall(T0 + 100))
    heads = [make_op(f"h{i}", f"title {i}", device="dev-a", wall=T0 + i) for i in range(40)]
    replica = replica_of(*heads, *TASK[1:])
    ops = replica.write(clock, collection="tasks", record_id="t1", field=TOMBSTONE, value=True)
    assert len(ops) == 2
    for merged in (replica, replica_of(*reversed([*heads, *TASK[1:], *ops]))):
        assert merged.record("tasks", "t1") is None
        assert [c.field for c in merged.conflicts()] == ["title"]  # the titles' own conflict


def test_restoring_an_uncontested_delete_with_a_later_edit_elsewhere_is_no_conflict() -> None:
    """A restore ends the deletion: later deletes are judged on their own."""
    edit = completed_at(T0 + 3)
    restore = make_op("u", False, device="dev-b", wall=T0 + 6, field=TOMBSTONE, parents=("d",))
    for replica in every_order([*TASK, DELETE, edit, restore]):
        assert replica.record("tasks", "t1") == {"done": True, "title": "buy milk"}
        assert replica.conflicts() == []


# --- duplicates and op ids ----------------------------------------------------------------


def test_duplicates_are_ignored() -> None:
    a = make_op("a", "buy milk")
    b = make_op("b", "buy bread", wall=T0 + 1, parents=("a",))
    replica = Replica()
    assert replica.apply([a, a, b, a]) == ["a", "b"]
    assert replica.apply([b, a]) == []
    assert replica.apply([Op.from_json(json.loads(json.dumps(a.to_json())))]) == []
    assert len(replica) == 2 and "a" in replica and "zzz" not in replica
    assert replica.ops() == [a, b]


def test_an_op_id_reused_for_different_content_is_refused_and_nothing_applied() -> None:
    replica = replica_of(make_op("a", "buy milk"))
    before = replica.state()
    fresh = make_op("b", "new", wall=T0 + 1)
    with pytest.raises(OpError, match=r"ops\[1\]\.op_id 'a' was already used for a different op"):
        replica.apply([fresh, make_op("a", "buy bread")])
    with pytest.raises(OpError, match=r"ops\[1\]\.op_id 'c' was already used"):
        replica.apply([make_op("c", 1), make_op("c", True)])
    assert replica.state() == before
    assert "b" not in replica


def test_apply_refuses_things_that_are_not_ops() -> None:
    with pytest.raises(OpError, match=r"ops\[0\] must be an Op, got dict"):
        Replica().apply([make_op("a", 1).to_json()])  # type: ignore[list-item]


def test_ops_are_sorted_by_hlc_then_op_id() -> None:
    ops = [
        make_op("z", 1, wall=T0),
        make_op("y", 2, wall=T0 + 1, device="dev-b"),
        make_op("x", 3, wall=T0 + 1, device="dev-b", field="due"),
        make_op("w", 4, wall=T0 + 1, device="dev-a"),
    ]
    assert [op.op_id for op in replica_of(*ops).ops()] == ["z", "w", "x", "y"]


def test_read_values_are_copies() -> None:
    replica = replica_of(make_op("a", {"tags": ["x"]}))
    shown = replica.record("tasks", "t1")
    assert shown is not None
    shown["title"]["tags"].append("y")
    replica.state()["records"]["tasks"]["t1"]["title"]["tags"].append("z")
    assert replica.record("tasks", "t1") == {"title": {"tags": ["x"]}}


# --- the op format ------------------------------------------------------------------------


def test_new_op_uses_the_clock_and_a_uuid() -> None:
    clock = HybridClock("dev-a", FakeWall())
    op = new_op(clock, collection="notes", record_id="n1", field="text", value="hi")
    assert len(op.op_id) == 32 and int(op.op_id, 16) >= 0
    assert op.hlc == "001700000000000:00000:dev-a" and op.device_id == "dev-a"
    assert op.parents == ()
    second = new_op(clock, collection="notes", record_id="n1", field="text", value="ho")
    assert second.hlc > op.hlc and second.op_id != op.op_id


def test_json_round_trip_and_canonical_values() -> None:
    op = make_op("a", {"b": [1.0, 2.5, -0.0, (3, 4)], "a": None}, parents=("p", "q"))
    assert op.value == {"b": [1, 2.5, 0, [3, 4]], "a": None}
    data = op.to_json()
    assert data["parents"] == ["p", "q"]
    assert list(data) == list(Op.__dataclass_fields__)[:8]
    back = Op.from_json(json.loads(json.dumps(data)), "ops[0]")
    assert back == op and hash(back) == hash(op)
    assert back.to_json() == data
    assert canonical_json(op.value) == '{"a":null,"b":[1,2.5,0,[3,4]]}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "ops[3] must be a JSON object, got list"),
        ({"op_id": "a"}, "ops[3] is missing device_id, collection, record_id, field, value, hlc"),
        (valid_json(extra=1), "ops[3] has unknown fields extra"),
        (valid_json(op_id=""), "ops[3].op_id must be a non-empty printable string"),
        (
            valid_json(op_id="x" * 65),
            "ops[3].op_id must be a non-empty printable string of at most 64",
        ),
        (
            valid_json(op_id=7),
            "ops[3].op_id must be a non-empty printable string of at most 64 characters, got int",
        ),
        (valid_json(device_id="dev:a"), "ops[3].device_id must not contain ':'"),
        (valid_json(collection="Tasks"), "ops[3].collection must be a lowercase identifier"),
        (valid_json(collection="t" * 65), "ops[3].collection must be a lowercase identifier"),
        (valid_json(record_id="a\nb"), "ops[3].record_id must be a non-empty printable"),
        (valid_json(field=""), "ops[3].field must be a non-empty printable string"),
        (valid_json(field="f" * 65), "ops[3].field must be a non-empty printable string"),
        (valid_json(hlc=17), "ops[3].hlc must be a string like 000001700000000:00000:device-a"),
        (
            valid_json(hlc="17:00000:dev-a"),
            "ops[3].hlc must be a string like 000001700000000:00000:device-a: HLC timestamp "
            "'17:00000:dev-a': wall-clock part '17' must be 15 digits",
        ),
        (
            valid_json(hlc="001700000000000:00000:dev-b"),
            "ops[3].hlc must carry the op's device_id 'dev-a', got 'dev-b'",
        ),
        (valid_json(parents="a"), "ops[3].parents must be a list of op ids, got str"),
        (valid_json(parents=[f"p{i}" for i in range(33)]), "ops[3].parents must list at most 32"),
        (valid_json(parents=["p", "p"]), "ops[3].parents must not list an op id twice"),
        (valid_json(parents=["op1"]), "ops[3].parents[0] must not be the op itself"),
        (valid_json(parents=["ok", ""]), "ops[3].parents[1] must be a non-empty"),
        (valid_json(value=float("nan")), "ops[3].value must be a finite number"),
        (valid_json(value={"a": [2**53]}), "ops[3].value['a'][0] must be within"),
        (valid_json(value={1: "x"}), "ops[3].value must have string keys"),
        (valid_json(value={"x": {1, 2}}), "ops[3].value['x'] must be a JSON value, got set"),
        (valid_json(value="\ud800"), "ops[3].value must not contain lone surrogates"),
        (valid_json(value="x" * (64 * 1024)), "ops[3].value must be at most 65536 bytes"),
        (
            valid_json(value=deep(65)),
            "ops[3].value[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]",
        ),
    ],
)
def test_from_json_names_the_bad_field(data: Any, message: str) -> None:
    with pytest.raises(OpError) as caught:
        Op.from_json(data, "ops[3]")
    assert message in str(caught.value)


def test_the_largest_and_deepest_values_are_accepted() -> None:
    assert Op.from_json(valid_json(value="x" * (64 * 1024 - 2))).value_json.startswith('"x')
    assert Op.from_json(valid_json(value=deep(64))).value == deep(64)


def test_constructing_a_bad_op_names_op_dot_field() -> None:
    with pytest.raises(OpError, match=r"^op\.collection must be a lowercase identifier"):
        make_op("a", 1, collection="My Tasks")


# --- scale ----------------------------------------------------------------------------


def test_ten_thousand_ops_merge_quickly_in_any_order() -> None:
    rng = random.Random(7)
    ops: list[Op] = []
    heads: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i in range(12_000):
        key = (f"r{rng.randrange(500)}", rng.choice(["title", "done", "due"]))
        device = rng.choice(["dev-a", "dev-b", "dev-c"])
        # Mostly sequential edits, sometimes a concurrent one that saw nothing.
        parents = tuple(heads[key]) if rng.random() < 0.8 else ()
        op = make_op(
            f"op{i}",
            rng.randrange(3),
            device=device,
            wall=T0 + i,
            record_id=key[0],
            field=key[1],
            parents=parents,
        )
        heads[key] = [op.op_id] if parents or not heads[key] else [*heads[key], op.op_id]
        ops.append(op)
    started = time.perf_counter()
    forward = replica_of(*ops)
    shuffled = ops[:]
    rng.shuffle(shuffled)
    backward = Replica()
    for start in range(0, len(shuffled), 100):
        backward.apply(shuffled[start : start + 100])
    assert forward.state() == backward.state()
    elapsed = time.perf_counter() - started
    assert forward.conflicts()
    assert elapsed < 5, f"merging 2 x 12,000 ops took {elapsed:.1f} s"


# --- properties ---------------------------------------------------------------------------

DEVICES = ("dev-a", "dev-b", "dev-c")
RECORDS = ("r0", "r1")
FIELDS = ("title", "done", TOMBSTONE)
VALUES = ("x", "y", 1, True, None)


class Device:
    def __init__(self, name: str, wall: FakeWall) -> None:
        self.name = name
        self.wall = wall
        self.clock = HybridClock(name, wall)
        self.replica = Replica()
        self.known: set[str] = set()  # op ids in the replica
        self.outbox: list[Op] = []  # written here, not acknowledged by the server
        self.cursor = 0  # how much of the server's log this device has pulled
        self.issued: list[str] = []  # the hlc of every op written here, in order


class World:
    """Three devices and a server, syncing over a lossy JSON "network"."""

    def __init__(self) -> None:
        self.wall = FakeWall()
        self.devices = [Device(name, self.wall) for name in DEVICES]
        self.server = Replica()
        self.server_clock = HybridClock("server", self.wall)
        self.log: list[Op] = []  # the server's ops in arrival order: the pull cursor's index
        self.seen: dict[str, frozenset[str]] = {}  # op id -> op ids its writer had
        self.resolutions = 0

    def write(
        self, device: Device, collection: str, record_id: str, field: str, value: Any
    ) -> None:
        # Replica.write: a delete lists the heads of the record's other fields too.
        for op in device.replica.write(
            device.clock, collection=collection, record_id=record_id, field=field, value=value
        ):
            self.seen[op.op_id] = frozenset(device.known)
            device.known.add(op.op_id)
            device.outbox.append(op)
            device.issued.append(op.hlc)

    def edit(self, device: Device, record: int, field: int, value: int) -> None:
        name = FIELDS[field]
        chosen = VALUES[value] if name != TOMBSTONE else value % 2 == 0
        if chosen is True and not device.replica.state()["records"].get("tasks", {}).get(
            RECORDS[record], {}
        ).keys() - {TOMBSTONE}:
            return  # as in the app, a device deletes only a record it has fields of
        self.write(device, "tasks", RECORDS[record], name, chosen)

    def resolve(self, device: Device, which: int, keep: int) -> None:
        conflicts = device.replica.conflicts()
        if not conflicts:
            return
        conflict = conflicts[which % len(conflicts)]
        heads = device.replica.heads(conflict.collection, conflict.record_id, conflict.field)
        # A contested delete has one more version: restore with the concurrent edits.
        restore = 1 if conflict.edits else 0
        assert heads + conflict.edits[:restore] == tuple(v.op_id for v in conflict.versions)
        version = conflict.versions[keep % len(conflict.versions)]
        self.write(device, conflict.collection, conflict.record_id, conflict.field, version.value)
        self.resolutions += 1
        assert all(c.id != conflict.id for c in device.replica.conflicts())

    def push(self, device: Device, picks: list[int], fate: str) -> None:
        if not device.outbox:
            return
        sent = [device.outbox[pick % len(device.outbox)] for pick in picks]
        wire = json.dumps({"ops": [op.to_json() for op in sent]})
        if fate == "request lost":
            return
        received = [
            Op.from_json(item, f"ops[{i}]") for i, item in enumerate(json.loads(wire)["ops"])
        ]
        for op in received:
            self.server_clock.observe(Timestamp.decode(op.hlc))
        by_id = {op.op_id: op for op in received}
        self.log.extend(by_id[op_id] for op_id in self.server.apply(received))
        if fate == "acknowledged":
            acked = set(by_id)
            device.outbox = [op for op in device.outbox if op.op_id not in acked]

    def pull(self, device: Device, limit: int) -> None:
        batch = self.log[device.cursor : device.cursor + limit]
        wire = json.dumps([op.to_json() for op in batch])
        received = [Op.from_json(item, f"ops[{i}]") for i, item in enumerate(json.loads(wire))]
        for op in received:
            device.clock.observe(Timestamp.decode(op.hlc))
        device.replica.apply(received)
        device.known.update(op.op_id for op in received)
        device.cursor += len(batch)

    def restart(self, device: Device, rng: random.Random) -> None:
        """The app restarts: the clock resumes from its persisted `last`, the replica is
        rebuilt from the stored ops (in whatever order the store returns them)."""
        last = device.clock.last
        persisted = None if last is None else last.encode()
        device.clock = HybridClock(
            device.name, device.wall, None if persisted is None else Timestamp.decode(persisted)
        )
        stored = device.replica.ops()
        rng.shuffle(stored)
        rebuilt = Replica()
        rebuilt.apply(stored)
        assert rebuilt.state() == device.replica.state()
        device.replica = rebuilt

    def sync_everything(self) -> None:
        for device in self.devices:
            while device.outbox:
                self.push(device, list(range(len(device.outbox))), "acknowledged")
        for device in self.devices:
            self.pull(device, len(self.log))


device_index = st.integers(0, len(DEVICES) - 1)
edit = st.tuples(
    st.just("edit"),
    device_index,
    st.integers(0, len(RECORDS) - 1),
    st.integers(0, len(FIELDS) - 1),
    st.integers(0, len(VALUES) - 1),
)
resolve = st.tuples(st.just("resolve"), device_index, st.integers(0, 7), st.integers(0, 3))
push = st.tuples(
    st.just("push"),
    device_index,
    st.lists(st.integers(0, 50), max_size=8),  # outbox picks: any order, duplicates
    st.sampled_from(["acknowledged", "acknowledged", "request lost", "response lost"]),
)
pull = st.tuples(st.just("pull"), device_index, st.integers(0, 20))
tick = st.tuples(st.just("tick"), st.integers(-3_000, 3_000))  # the wall clock may go back
restart = st.tuples(st.just("restart"), device_index)
# Repeating a strategy in one_of weights it.
actions = st.one_of(edit, edit, edit, resolve, resolve, push, push, pull, pull, tick, restart)


def displayed_head(ops: list[Op], field: str) -> Op:
    ordered = sorted(ops, key=lambda op: (op.hlc, op.op_id), reverse=True)
    if field == TOMBSTONE:
        ordered.sort(key=lambda op: op.value is not True)  # stable: latest delete first
    return ordered[0]


@settings(max_examples=500, deadline=None)
@given(steps=st.lists(actions, min_size=30, max_size=100), rng=st.randoms(use_true_random=False))
def test_replicas_converge_and_nothing_is_lost(
    steps: list[tuple[Any, ...]], rng: random.Random
) -> None:
    world = World()
    for step in steps:
        kind = step[0]
        if kind == "tick":
            world.wall.ms = max(0, world.wall.ms + step[1])
            continue
        device = world.devices[step[1]]
        if kind == "edit":
            world.edit(device, *step[2:])
        elif kind == "resolve":
            world.resolve(device, *step[2:])
        elif kind == "push":
            world.push(device, *step[2:])
        elif kind == "pull":
            world.pull(device, step[2])
        else:
            world.restart(device, rng)
    world.sync_everything()
    # Then each device settles some of the conflicts it sees -- concurrently, so two
    # devices may settle the same conflict differently -- and everyone syncs again.
    for device in world.devices:
        for which in range(len(device.replica.conflicts())):
            if rng.random() < 0.5:
                world.resolve(device, which, rng.randrange(4))
    world.sync_everything()
    event(f"ops: {len(world.seen) // 20 * 20}+")
    event(f"conflicts at the end: {min(len(world.server.conflicts()), 3)}")
    event(f"resolutions: {min(world.resolutions, 3)}")
    contested = sum(bool(c.edits) for c in world.server.conflicts())
    event(f"deletes contested by a concurrent edit at the end: {min(contested, 2)}")

    # Convergence: the same op set gives the same state everywhere.
    expected = world.server.state()
    for device in world.devices:
        assert device.replica.state() == expected
        assert device.replica.ops() == world.server.ops()
    everything = {op.op_id: op for op in world.server.ops()}
    assert set(everything) == set(world.seen)

    # Each device's clock only went forwards, restarts and wall-clock jumps included.
    for device in world.devices:
        assert device.issued == sorted(set(device.issued))
    # Causality: an op is later than everything its writer had seen.
    for op_id, seen in world.seen.items():
        assert all(everything[earlier].hlc < everything[op_id].hlc for earlier in seen)

    by_field: dict[tuple[str, str, str], list[Op]] = defaultdict(list)
    for op in everything.values():
        by_field[(op.collection, op.record_id, op.field)].append(op)
    # A head of another field of a deleted record is an edit concurrent with the delete
    # when no writer of a deleting head had seen it; such a record stays shown.
    concurrent_edits: dict[tuple[str, str], set[str]] = {}
    for collection, record_id, field in by_field:
        if field != TOMBSTONE:
            continue
        tombstones = [everything[h] for h in world.server.heads(collection, record_id, field)]
        deletes = [op for op in tombstones if op.value is True]
        edits = {
            head
            for c, r, name in by_field
            if (c, r) == (collection, record_id) and name != TOMBSTONE
            for head in world.server.heads(c, r, name)
            if not any(head in world.seen[delete.op_id] for delete in deletes)
        }
        concurrent_edits[(collection, record_id)] = edits if deletes else set()
        contested = len({op.value_json for op in tombstones}) > 1 or bool(edits)
        hidden = bool(deletes) and not contested
        assert (world.server.record(collection, record_id) is None) == hidden
    conflicts = {(c.collection, c.record_id, c.field): c for c in world.server.conflicts()}
    for (collection, record_id, field), ops in by_field.items():
        heads = set(world.server.heads(collection, record_id, field))
        # An op is superseded exactly when some writer of this field had seen it.
        for op in ops:
            superseded = any(op.op_id in world.seen[other.op_id] for other in ops)
            assert (op.op_id not in heads) == superseded
        head_ops = [everything[op_id] for op_id in heads]
        values = {op.value_json for op in head_ops}
        conflict = conflicts.pop((collection, record_id, field), None)
        edits = (
            concurrent_edits.get((collection, record_id), set()) if field == TOMBSTONE else set()
        )
        assert (conflict is not None) == (len(values) > 1 or bool(edits))
        if conflict is not None:
            assert {v.op_id for v in conflict.versions} == heads | set(conflict.edits[:1])
            assert set(conflict.edits) == edits
        shown = expected["records"][collection][record_id][field]
        assert canonical_json(shown) == displayed_head(head_ops, field).value_json
        # Nothing disappears: a value that isn't displayed was superseded by a writer
        # that had seen it, or is a head kept in a conflict.
        for op in ops:
            if op.value_json != canonical_json(shown):
                superseded = any(
                    op.op_id in other.parents and op.op_id in world.seen[other.op_id]
                    for other in ops
                )
                kept = conflict is not None and op.op_id in {v.op_id for v in conflict.versions}
                assert superseded or kept
    assert conflicts == {}

    # Any order, any batching, any duplicates: the same state again.
    shuffled = list(everything.values()) * 2
    rng.shuffle(shuffled)
    again = Replica()
    while shuffled:
        size = rng.randint(1, 10)
        again.apply(shuffled[:size])
        shuffled = shuffled[size:]
    assert again.state() == expected


# Arbitrary, even dishonest, op sets: parents that point anywhere (forward, backwards,
# at unknown ops, in cycles), clocks in any order. The merge must still be a function of
# the op set, and every field must keep at least one head.
raw_ops = st.lists(
    st.tuples(
        st.integers(0, 2),  # device
        st.integers(0, 3),  # wall offset
        st.integers(0, 2),  # counter
        st.integers(0, 1),  # record
        st.integers(0, len(FIELDS) - 1),
        st.integers(0, len(VALUES) - 1),
        st.lists(st.integers(0, 30), max_size=4, unique=True),  # parents by index
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(raw=raw_ops, rng=st.randoms(use_true_random=False))
def test_any_op_set_merges_the_same_in_any_order(
    raw: list[tuple[Any, ...]], rng: random.Random
) -> None:
    ops = []
    for i, (device, wall, counter, record, field, value, parents) in enumerate(raw):
        name = FIELDS[field]
        ops.append(
            make_op(
                f"o{i}",
                VALUES[value] if name != TOMBSTONE else value % 2 == 0,
                device=DEVICES[device],
                wall=T0 + wall,
                counter=counter,
                record_id=RECORDS[record],
                field=name,
                parents=tuple(f"o{p}" for p in parents if p != i),
            )
        )
    forward = replica_of(*ops)
    shuffled = ops * 2
    rng.shuffle(shuffled)
    backward = Replica()
    for op in shuffled:
        backward.apply([op])
    assert backward.state() == forward.state()
    for op in ops:
        heads = forward.heads(op.collection, op.record_id, op.field)
        assert heads and heads == backward.heads(op.collection, op.record_id, op.field)


# --- the state a page at a time -----------------------------------------------------------


def read_in_pages(replica: Replica, limit: int) -> tuple[dict[str, Any], int]:
    """``state()`` as the pages give it, checking each holds at most ``limit`` records that
    no earlier page held; and how many pages it took."""
    records: dict[str, dict[str, Any]] = {}
    conflicts: list[dict[str, Any]] = []
    after, pages = None, 0
    while True:
        page = replica.page(after, limit)
        pages += 1
        assert sum(len(shown) for shown in page.records.values()) <= limit
        for collection, shown in page.records.items():
            assert not set(shown) & set(records.get(collection, {}))
            records.setdefault(collection, {}).update(shown)
        conflicts += [conflict.to_json() for conflict in page.conflicts]
        if page.last is None:
            return {"records": records, "conflicts": conflicts}, pages
        after = page.last


def test_pages_make_up_the_state_exactly_conflicts_and_contested_deletes_included() -> None:
    contested = [*TASK, DELETE, completed_at(T0 + 3)]  # tasks/t1: its delete is contested
    clash = [
        make_op("a", "buy milk", device="dev-a", wall=T0 + 9, record_id="t2"),
        make_op("b", "buy bread", device="dev-b", wall=T0 + 3, record_id="t2"),
    ]
    deleted = [
        make_op("n", "old", collection="notes", record_id="n1"),
        make_op("nd", True, wall=T0 + 1, collection="notes", record_id="n1", field=TOMBSTONE),
    ]
    plain = [make_op(f"p{i}", f"note {i}", collection="notes", record_id=f"n{i}") for i in (2, 3)]
    replica = replica_of(*contested, *clash, *deleted, *plain)
    whole = replica.state()
    assert len(whole["conflicts"]) == 2 and whole["records"]["notes"]["n1"][TOMBSTONE] is True
    for limit in range(1, 7):
        paged, pages = read_in_pages(replica, limit)
        # Equal, and in the same order: records by (collection, record_id), conflicts too.
        assert json.dumps(paged) == json.dumps(whole)
        assert pages == -(-5 // limit)  # 5 records: the last page says it is the last


def test_a_page_after_a_record_added_since_the_last_page_goes_on_from_there() -> None:
    replica = replica_of(*(make_op(f"o{i}", i, record_id=f"t{i}") for i in (1, 3, 5)))
    first = replica.page(None, 2)
    assert list(first.records["tasks"]) == ["t1", "t3"] and first.last == ("tasks", "t3")
    replica.apply([make_op("o2", 2, record_id="t2"), make_op("o4", 4, record_id="t4")])
    rest = replica.page(first.last, 2)
    assert list(rest.records["tasks"]) == ["t4", "t5"] and rest.last is None
    assert replica.page(("tasks", "t9"), 2) == replica.page(("zzz", ""), 1)  # past the end
    assert replica.page(("tasks", "t9"), 2).records == {}
    with pytest.raises(ValueError, match="at least one record"):
        replica.page(None, 0)


@settings(max_examples=200, deadline=None)
@given(raw=raw_ops, limit=st.integers(1, 3))
def test_any_op_set_reads_the_same_in_pages(raw: list[tuple[Any, ...]], limit: int) -> None:
    replica = Replica()
    for i, (device, wall, counter, record, field, value, parents) in enumerate(raw):
        name = FIELDS[field]
        op = make_op(
            f"o{i}",
            VALUES[value] if name != TOMBSTONE else value % 2 == 0,
            device=DEVICES[device],
            wall=T0 + wall,
            counter=counter,
            collection=("tasks", "notes")[i % 2],
            record_id=RECORDS[record],
            field=name,
            parents=tuple(f"o{p}" for p in parents if p != i),
        )
        replica.apply([op])
        if i % 3 == 0:  # read between applies too: the sorted records must follow
            assert read_in_pages(replica, limit)[0] == replica.state()
    assert json.dumps(read_in_pages(replica, limit)[0]) == json.dumps(replica.state())
