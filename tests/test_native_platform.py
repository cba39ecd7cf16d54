from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from py_agent import diagnostics
from py_agent.platform import (
    Delete,
    InferenceError,
    Put,
    StoreError,
    TransportError,
    http_transport,
    inference_runtime,
    open_store,
)


async def test_store_round_trip_survives_reopen(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    store = await open_store(location, ["tasks", "meta"])
    await store.commit(
        [Put("tasks", "t1", {"title": "rent", "done": False}), Put("meta", "v", {"n": 1})]
    )
    await store.close()

    store = await open_store(location, ["tasks", "meta"])
    assert await store.get("tasks", "t1") == {"title": "rent", "done": False}
    assert await store.get_all("meta") == [{"n": 1}]
    await store.commit([Delete("tasks", "t1")])
    assert await store.get("tasks", "t1") is None
    await store.close()


async def test_failed_commit_writes_nothing() -> None:
    store = await open_store(":memory:", ["tasks"])
    with pytest.raises(StoreError, match="commit of 2 writes failed"):
        await store.commit([Put("tasks", "a", {"ok": 1}), Put("tasks", "b", {"bad": object()})])
    assert await store.get_all("tasks") == []


async def test_unknown_collection_is_refused_before_writing() -> None:
    store = await open_store(":memory:", ["tasks"])
    with pytest.raises(StoreError, match="unknown collection 'notes'; this store has tasks"):
        await store.commit([Put("tasks", "a", {}), Put("notes", "b", {})])
    assert await store.get_all("tasks") == []


@pytest.mark.parametrize("name", ["Tasks", "1st", "drop table", ""])
async def test_bad_collection_names_are_refused(name: str) -> None:
    with pytest.raises(StoreError, match="collection name"):
        await open_store(":memory:", [name])


def identity_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


async def test_runtime_runs_a_model() -> None:
    runtime = inference_runtime(threads=2)
    assert runtime.threads == 2
    session = await runtime.create_session(identity_model())
    assert session.input_names == ("x",) and session.output_names == ("y",)
    outputs = await session.run({"x": np.array([1.5, -2.0], dtype=np.float32)})
    np.testing.assert_array_equal(outputs["y"], [1.5, -2.0])


async def test_runtime_refuses_garbage() -> None:
    with pytest.raises(InferenceError, match="cannot load model"):
        await inference_runtime().create_session(b"not a model")


async def test_run_model_with_json_feeds() -> None:
    result = await diagnostics.run_model(
        inference_runtime(),
        identity_model(),
        {"x": {"dtype": "float32", "shape": [2], "data": [1, 2]}},
    )
    assert result["outputs"]["y"] == {"dtype": "float32", "shape": [2], "data": [1.0, 2.0]}
    assert result["runtime"].startswith("onnxruntime ")


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ([1, 2], "must be an object"),
        ({"dtype": "float32", "shape": [2]}, "missing data"),
        ({"dtype": "float32", "shape": [3], "data": [1, 2]}, "feed 'x': cannot reshape"),
        ({"dtype": "nope", "shape": [1], "data": [1]}, "feed 'x': data type 'nope' not understood"),
    ],
)
async def test_bad_feeds_name_the_input(feed: object, message: str) -> None:
    with pytest.raises(diagnostics.FeedError, match=message):
        await diagnostics.run_model(inference_runtime(), identity_model(), {"x": feed})


async def test_transport_reports_unreachable_server() -> None:
    transport = http_transport("http://127.0.0.1:9")
    with pytest.raises(TransportError, match="GET /healthz"):
        await transport.request("GET", "/healthz", timeout_s=2)


async def test_self_check_reports_each_part(tmp_path: Path) -> None:
    report = await diagnostics.self_check(
        inference_runtime(), http_transport("http://127.0.0.1:9"), str(tmp_path / "check.db")
    )
    assert report["checks"]["numpy"] == {"ok": True}
    assert report["checks"]["store"] == {"ok": True, "read_back": True, "deleted": True}
    assert report["checks"]["server"]["ok"] is False
    assert report["ok"] is False
    assert report["environment"]["platform"] == "native"
