from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from py_agent.encoder import EncoderError, ModelManifest, l2_normalize, load_encoder, mean_pool
from py_agent.platform import IntegrityError, ResourceError, inference_runtime

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!"]
TABLE = np.random.default_rng(3).standard_normal((len(VOCAB), 4)).astype(np.float32)
TYPES = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)


def tiny_encoder() -> bytes:
    """last_hidden_state = word_table[input_ids] + type_table[token_type_ids]."""
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["words"]),
            helper.make_node("Gather", ["types", "token_type_ids"], ["kinds"]),
            helper.make_node("Add", ["words", "kinds"], ["last_hidden_state"]),
        ],
        "tiny",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 4]
            )
        ],
        initializer=[
            numpy_helper.from_array(TABLE, "table"),
            numpy_helper.from_array(TYPES, "types"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny" / "v1"
    folder.mkdir(parents=True)
    model, vocab = tiny_encoder(), "\n".join(VOCAB).encode()
    (folder / "model.int8.onnx").write_bytes(model)
    (folder / "vocab.txt").write_bytes(vocab)
    manifest = {
        "name": "tiny",
        "version": "v1",
        "embedding_size": 4,
        "tokenizer": {
            "type": "wordpiece",
            "vocab": "vocab.txt",
            "lowercase": True,
            "max_tokens": 6,
        },
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "output": "last_hidden_state",
        "pooling": "mean",
        "normalize": True,
        "files": {
            "model.int8.onnx": {"sha256": sha(model), "precision": "int8"},
            "vocab.txt": {"sha256": sha(vocab)},
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "manifest.json").write_text(json.dumps({"encoder": "tiny/v1"}))
    return tmp_path


def expected(ids: list[int]) -> np.ndarray:
    pooled = (TABLE[ids] + TYPES[0]).mean(axis=0)
    return pooled / np.linalg.norm(pooled)


async def test_embed_is_mean_pooled_and_normalised(models_root: Path) -> None:
    encoder = await load_encoder(str(models_root), inference_runtime())
    vector = await encoder.embed("Hello worlds!")
    assert vector.dtype == np.float32 and vector.shape == (4,)
    np.testing.assert_allclose(vector, expected([2, 5, 6, 7, 8, 3]), rtol=1e-5)


async def test_batch_padding_does_not_leak_into_the_mean(models_root: Path) -> None:
    encoder = await load_encoder(str(models_root), inference_runtime())
    batch = await encoder.embed_batch(["hello", "hello worlds!"])
    np.testing.assert_allclose(batch[0], expected([2, 5, 3]), rtol=1e-5)
    np.testing.assert_allclose(batch[1], expected([2, 5, 6, 7, 8, 3]), rtol=1e-5)
    assert (await encoder.embed_batch([])).shape == (0, 4)


async def test_long_text_is_truncated_not_refused(models_root: Path) -> None:
    encoder = await load_encoder(str(models_root), inference_runtime())
    vector = await encoder.embed("hello " * 2000)
    np.testing.assert_allclose(vector, expected([2, 5, 5, 5, 5, 3]), rtol=1e-5)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "text is empty"), ("  \n\t ", "text is empty"), (42, "text must be a string, got int")],
)
async def test_bad_text_is_a_clear_error(models_root: Path, text: object, message: str) -> None:
    encoder = await load_encoder(str(models_root), inference_runtime())
    with pytest.raises(EncoderError, match=message):
        await encoder.embed(text)  # type: ignore[arg-type]


async def test_tampered_model_is_refused(models_root: Path) -> None:
    model = models_root / "tiny" / "v1" / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    model.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"model\.int8\.onnx: sha256 is .* refusing it"):
        await load_encoder(str(models_root), inference_runtime())


async def test_missing_models_say_how_to_build_them(tmp_path: Path) -> None:
    with pytest.raises(ResourceError, match=r"python build\.py models"):
        await load_encoder(str(tmp_path), inference_runtime())


async def test_unknown_precision_names_what_exists(models_root: Path) -> None:
    with pytest.raises(EncoderError, match="no fp32 model"):
        await load_encoder(str(models_root), inference_runtime(), precision="fp32")


def test_manifest_errors_name_the_field() -> None:
    with pytest.raises(EncoderError, match=r"m\.json: missing 'files'"):
        ModelManifest.parse({"name": "x"}, "m.json")
    with pytest.raises(EncoderError, match=r"'files\.a\.sha256' must be a string"):
        ModelManifest.parse({"files": {"a": {}}}, "m.json")


def test_pooling_maths() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2.0, 2.0]])
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0]], dtype=np.float32)), [[0.6, 0.8]])
    assert np.all(l2_normalize(np.zeros((1, 2), dtype=np.float32)) == 0)
