"""The on-device encoder in the browser worker, against the same model run natively."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from playwright.sync_api import Page, Route

from py_agent.encoder import load_encoder
from py_agent.platform import inference_runtime

from .harness import ROOT, ServerProcess, wait_for_boot

MODELS = ROOT / "models"
SENTENCES = ROOT / "data" / "eval" / "sentences.txt"


def parity_sentences() -> list[str]:
    lines = [line for line in SENTENCES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(lines) >= 200, f"{SENTENCES} needs at least 200 sentences"
    return lines[:200]


def native_embeddings(texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
    async def run() -> tuple[np.ndarray, list[list[int]]]:
        encoder = await load_encoder(str(MODELS), inference_runtime())
        vectors = [await encoder.embed(text) for text in texts]
        return np.stack(vectors), [encoder.tokenizer.encode(text) for text in texts]

    # Playwright's sync API keeps an event loop running on this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_browser_embeddings_match_native(page: Page, server: ServerProcess) -> None:
    texts = parity_sentences()
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready", page.inner_text("body")

    browser = np.array(page.evaluate("(texts) => window.pyAgent.embed(texts)", texts))
    browser_ids = page.evaluate("(texts) => window.pyAgent.tokenize(texts)", texts)
    native, native_ids = native_embeddings(texts)

    assert browser_ids == native_ids
    assert browser.shape == native.shape == (200, 384)
    cosines = (browser * native).sum(axis=1) / (
        np.linalg.norm(browser, axis=1) * np.linalg.norm(native, axis=1)
    )
    worst = int(cosines.argmin())
    # Most sentences agree to ~1e-8. A few differ by up to ~0.6%: onnxruntime-web's
    # wasm kernels and native x86 ones round fp32 differently in the last bit, and
    # dynamic int8 quantisation turns such a bit into a step when it moves a tensor's
    # min or max, which rescales the whole tensor. Both sides stay equally close to
    # the fp32 model (the build's quality report); raw onnxruntime-web on the same
    # token ids shows the same spread, so py_agent's tokenizer, FFI and pooling add nothing.
    assert np.median(cosines) >= 0.99999
    assert (cosines >= 0.9999).mean() >= 0.85, f"{(cosines < 0.9999).sum()} below 0.9999"
    assert cosines.min() >= 0.99, f"cosine {cosines[worst]:.6f} on {texts[worst]!r}"
    np.testing.assert_allclose(np.linalg.norm(browser, axis=1), 1.0, atol=1e-5)


def test_bad_input_is_a_clear_error_and_the_worker_survives(
    page: Page, server: ServerProcess
) -> None:
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"

    def error_of(texts: object) -> str:
        return str(
            page.evaluate(
                "(texts) => window.pyAgent.embed(texts).then(() => 'no error', (e) => e.message)",
                texts,
            )
        )

    assert "text is empty" in error_of([""])
    assert "text is empty" in error_of(["   \n"])
    assert "text must be a string, got int" in error_of([42])
    assert "texts must be a JSON array" in error_of("not a list")
    long_text = "word " * 2000  # 10 kB: truncated to 256 tokens, not refused
    [vector] = page.evaluate("(texts) => window.pyAgent.embed(texts)", [long_text])
    assert len(vector) == 384
    [ids] = page.evaluate("(texts) => window.pyAgent.tokenize(texts)", [long_text])
    assert len(ids) == 256


def test_tampered_model_is_refused_with_a_clear_error(page: Page, server: ServerProcess) -> None:
    def corrupt(route: Route) -> None:
        response = route.fetch()
        body = bytearray(response.body())
        body[len(body) // 2] ^= 0xFF
        route.fulfill(response=response, body=bytes(body))

    page.route("**/model.int8.onnx", corrupt)
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "error"
    message = page.inner_text("#boot-error-text")
    assert "model.int8.onnx: sha256 is" in message and "refusing it" in message


def test_model_is_fetched_once_and_before_python_needs_it(
    page: Page, server: ServerProcess
) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(server.url + "/")
    assert wait_for_boot(page) == "ready"
    model = [i for i, url in enumerate(urls) if url.endswith(".onnx")]
    head = [i for i, url in enumerate(urls) if "/models/intent-head/" in url]
    assert len(model) == 1, "the boot prefetch and Python's load must share one download"
    # Requested at the start of the boot, not once Python loads its models (the head first).
    assert model[0] < head[0]
