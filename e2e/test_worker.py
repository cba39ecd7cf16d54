"""The foundation end to end: page → worker → Pyodide + numpy → onnxruntime-web, and back."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from playwright.sync_api import Page

from .conftest import RequestLog
from .harness import ServerProcess, wait_for_boot

RNG = np.random.default_rng(7)
WEIGHTS = RNG.standard_normal((4, 3)).astype(np.float32)
BIAS = RNG.standard_normal(3).astype(np.float32)


def small_model() -> bytes:
    """probs = softmax(relu(x @ W + b)); doubled = ids * 2 (int64, to cross the BigInt path)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Relu", ["logits"], ["relu"]),
            helper.make_node("Softmax", ["relu"], ["probs"], axis=-1),
            helper.make_node("Mul", ["ids", "two"], ["doubled"]),
        ],
        "small",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"]),
        ],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("doubled", TensorProto.INT64, ["n"]),
        ],
        initializer=[
            numpy_helper.from_array(WEIGHTS, "W"),
            numpy_helper.from_array(BIAS, "b"),
            numpy_helper.from_array(np.array(2, dtype=np.int64), "two"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def expected_probs(x: np.ndarray) -> np.ndarray:
    relu = np.maximum(x @ WEIGHTS + BIAS, 0)
    exp = np.exp(relu - relu.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def test_python_in_worker_runs_onnx_with_numpy(
    page: Page, server: ServerProcess, requests_seen: RequestLog
) -> None:
    page.goto(server.url + "/?threads=2")
    assert wait_for_boot(page) == "ready", page.inner_text("body")

    x = RNG.standard_normal((5, 4)).astype(np.float32)
    ids = np.array([1, -3, 2**40, 0], dtype=np.int64)
    feeds = {
        "x": {"dtype": "float32", "shape": list(x.shape), "data": x.ravel().tolist()},
        "ids": {"dtype": "int64", "shape": [4], "data": ids.tolist()},
    }
    result = page.evaluate(
        "([bytes, feeds]) => window.pyAgent.runModel(new Uint8Array(bytes), feeds)",
        [list(small_model()), feeds],
    )

    probs = result["outputs"]["probs"]
    assert probs["dtype"] == "float32" and probs["shape"] == [5, 4 - 1]
    np.testing.assert_allclose(
        np.array(probs["data"]).reshape(5, 3), expected_probs(x), rtol=1e-5, atol=1e-6
    )
    assert result["outputs"]["doubled"]["data"] == (ids * 2).tolist()
    assert result["runtime"] == "onnxruntime-web 1.30.0"
    assert page.evaluate("crossOriginIsolated") is True
    assert result["threads"] == 2

    assert any(url.endswith("/pyodide/pyodide.asm.wasm") for url in requests_seen.urls), (
        "the worker's requests are not being recorded, so the next check would prove nothing"
    )
    assert requests_seen.external() == []


def test_boot_reports_every_stage(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/?threads=1")
    assert wait_for_boot(page) == "ready"
    stages = page.eval_on_selector_all(
        "#boot-stages li", "items => items.map(i => i.dataset.stage)"
    )
    assert stages == ["python", "numpy", "packages", "model", "ready"]
    boot = page.evaluate("window.pyAgentBoot")
    # unpack (writing the wheels' files) is a part of python, timed on its own.
    assert set(boot["timings"]) == {"python", "unpack", "numpy", "packages", "model"}
    assert 0 <= boot["timings"]["unpack"] <= boot["timings"]["python"]
    assert boot["environment"]["platform"] == "browser"
    assert boot["environment"]["threads"] == 1


def test_self_check_uses_indexeddb_and_server(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    report = page.evaluate("window.pyAgent.selfCheck()")
    assert report["checks"]["store"] == {"ok": True, "read_back": True, "deleted": True}
    assert report["checks"]["server"]["body"]["status"] == "ok"
    assert report["ok"] is True
    stores = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const request = indexedDB.open('py_agent_selfcheck');
            request.onsuccess = () => {
                resolve(Array.from(request.result.objectStoreNames));
                request.result.close();
            };
            request.onerror = () => reject(request.error);
        })"""
    )
    assert stores == ["checks"]


def test_bad_thread_setting_shows_an_error_not_a_blank_page(
    page: Page, server: ServerProcess
) -> None:
    page.goto(server.url + "/?threads=many")
    assert wait_for_boot(page) == "error"
    assert page.is_visible("#boot-error")
    assert '?threads= must be an integer from 1 to 16, got "many"' in page.inner_text(
        "#boot-error-text"
    )


def test_missing_wheel_index_shows_the_real_error(page: Page, server: ServerProcess) -> None:
    page.route("**/wheels/index.json", lambda route: route.fulfill(status=404, body="gone"))
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "error"
    assert "wheels/index.json" in page.inner_text("#boot-error-text")


def test_bad_model_is_a_clear_error(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    error = page.evaluate(
        """() => window.pyAgent.runModel(new Uint8Array([1, 2, 3]), {}).then(
            () => 'no error', (e) => e.message)"""
    )
    assert "cannot load model" in error
    # The worker survives a bad call.
    assert page.evaluate("window.pyAgent.environment()")["platform"] == "browser"
