"""Tests for tools/build/finetune.py: the cache key, the cache itself, and one real (tiny)
tuning.

tools/build/models.py's use of it is tested in tests/test_build_models.py with a fake
`finetuned`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest

from tools.build import files as build_files
from tools.build import finetune as bf

DATA = bf.TrainingSet(
    texts=("remind me to call mom", "note that the wifi password is hunter2", "hello"),
    labels=(0, 1, 2),
    names=("task.add", "note.add", "greeting"),
)
SETTINGS = bf.FinetuneSettings()


@pytest.fixture
def base(tmp_path) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"base weights")
    (folder / "config.json").write_text("{}\n")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(build_files.CACHE_ENV, str(root))
    return root


def key(base: Path, data: bf.TrainingSet = DATA, settings: bf.FinetuneSettings = SETTINGS) -> str:
    return bf.finetune_key(base, "model.safetensors", data, settings)


def changed(value: object) -> object:
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 + 0.5
    raise AssertionError(f"no other value for {value!r}")


# --- the key -------------------------------------------------------------------------------


def test_key_is_stable_and_changes_with_the_base_weights(base):
    first = key(base)
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert key(base) == first
    # Only the weights are hashed: the rest of a base folder comes with them.
    (base / "config.json").write_text('{"other": 1}\n')
    assert key(base) == first
    (base / "model.safetensors").write_bytes(b"other weights")
    assert key(base) != first


def test_key_changes_with_each_text_label_and_intent_name(base):
    first = key(base)
    others = [
        dataclasses.replace(DATA, texts=("remind me to call dad", *DATA.texts[1:])),
        dataclasses.replace(DATA, texts=DATA.texts[::-1], labels=DATA.labels[::-1]),  # order
        dataclasses.replace(DATA, labels=(1, 0, 2)),  # the same texts, other intents
        dataclasses.replace(DATA, names=("task.add", "note.add", "smalltalk")),
        dataclasses.replace(DATA, names=("note.add", "task.add", "greeting")),
        dataclasses.replace(DATA, texts=(*DATA.texts, "hi"), labels=(*DATA.labels, 2)),
    ]
    keys = {key(base, data) for data in others}
    assert len(keys) == len(others)
    assert first not in keys
    # Text and label are kept apart: moving a character between them is not the same data.
    split_a = bf.TrainingSet(("1a",), (0,), ("x", "y"))
    split_b = bf.TrainingSet(("a",), (1,), ("x", "y"))
    assert split_a.sha256() != split_b.sha256()


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(bf.FinetuneSettings)])
def test_key_changes_with_each_setting(base, field):
    other = dataclasses.replace(SETTINGS, **{field: changed(getattr(SETTINGS, field))})
    assert key(base, settings=other) != key(base)


def test_key_changes_with_the_revision(base, monkeypatch):
    first = key(base)
    monkeypatch.setattr(bf, "FINETUNE_REVISION", bf.FINETUNE_REVISION + 1)
    assert key(base) != first


def test_training_set_indexes_intents_by_their_place_in_names():
    data = bf.training_set([("hi", "greeting"), ("note x", "note.add")], DATA.names)
    assert data == bf.TrainingSet(("hi", "note x"), (2, 1), DATA.names)


# --- the cache -----------------------------------------------------------------------------


def test_cache_root_is_py_agent_cache_else_the_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(build_files.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert build_files.cache_root() == tmp_path / "elsewhere"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = tmp_path / "home" / ".cache" / "py_agent"
    monkeypatch.setenv(build_files.CACHE_ENV, "")  # set but empty: as if unset
    assert build_files.cache_root() == default
    monkeypatch.delenv(build_files.CACHE_ENV)
    assert build_files.cache_root() == default


class FakeTune:
    """Stands in for tools.build.finetune.tune: writes a weights file and reports, or fails
    half-way through after writing one file."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.calls: list[tuple[Path, Path]] = []
        self.fail = fail

    def __call__(self, base, out, data, settings, log) -> dict:
        self.calls.append((base, out))
        (out / "model.safetensors").write_bytes(b"tuned weights")
        if self.fail is not None:
            raise self.fail
        return {"examples": len(data.texts), "seconds": 12.0, "epoch_loss": [1.0, 0.5]}


def test_finetuned_tunes_into_the_cache_once_then_reuses_it(base, cache, monkeypatch):
    tune, log = FakeTune(), []
    monkeypatch.setattr(bf, "tune", tune)

    folder = bf.finetuned("tiny", base, "model.safetensors", DATA, SETTINGS, log.append)

    assert folder == cache / "finetune" / f"tiny-{key(base)}"
    assert len(tune.calls) == 1 and tune.calls[0][0] == base
    assert tune.calls[0][1].parent == folder.parent  # staged beside it, then renamed
    assert (folder / "model.safetensors").read_bytes() == b"tuned weights"
    report = json.loads((folder / bf.REPORT).read_text())
    assert report == {"examples": 3, "seconds": 12.0, "epoch_loss": [1.0, 0.5]}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # not mkdtemp's 0700
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert log[0] == "finetune: tuning tiny on 3 utterances (3 epochs)"

    def must_not_tune(*args) -> dict:
        raise AssertionError("tuned again, but the cache holds the result")

    monkeypatch.setattr(bf, "tune", must_not_tune)
    log.clear()
    assert bf.finetuned("tiny", base, "model.safetensors", DATA, SETTINGS, log.append) == folder
    assert log == [f"finetune: tiny-{key(base)} cached in {folder} (tuned in 12 s on 3 utterances)"]


def test_other_settings_tune_again_beside_the_cached_result(base, cache, monkeypatch):
    tune = FakeTune()
    monkeypatch.setattr(bf, "tune", tune)
    first = bf.finetuned("tiny", base, "model.safetensors", DATA, SETTINGS, lambda line: None)
    other = dataclasses.replace(SETTINGS, epochs=1)
    second = bf.finetuned("tiny", base, "model.safetensors", DATA, other, lambda line: None)
    assert first != second
    assert len(tune.calls) == 2
    assert (first / bf.REPORT).is_file() and (second / bf.REPORT).is_file()


@pytest.mark.parametrize("failure", [bf.FinetuneError("no torch"), KeyboardInterrupt()])
def test_a_failed_tuning_leaves_neither_a_folder_nor_its_staging(base, cache, monkeypatch, failure):
    monkeypatch.setattr(bf, "tune", FakeTune(fail=failure))
    with pytest.raises(type(failure)):
        bf.finetuned("tiny", base, "model.safetensors", DATA, SETTINGS, lambda line: None)
    assert list((cache / "finetune").iterdir()) == []


def test_a_folder_without_its_report_is_an_interrupted_run_and_tuned_again(
    base, cache, monkeypatch
):
    folder = cache / "finetune" / f"tiny-{key(base)}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"half written")
    (folder / "stray").write_text("left over")
    tune = FakeTune()
    monkeypatch.setattr(bf, "tune", tune)

    assert bf.finetuned("tiny", base, "model.safetensors", DATA, SETTINGS, print) == folder
    assert len(tune.calls) == 1
    assert sorted(p.name for p in folder.iterdir()) == [bf.REPORT, "model.safetensors"]
    assert (folder / "model.safetensors").read_bytes() == b"tuned weights"


@pytest.mark.parametrize(
    "data",
    [
        bf.TrainingSet((), (), ("a", "b")),
        bf.TrainingSet(("hi", "hello"), (0, 0), ("a", "b")),
    ],
)
def test_tune_needs_two_intents_and_says_so_before_loading_torch(tmp_path, monkeypatch, data):
    for name in ("torch", "sentence_transformers"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(bf.FinetuneError, match="needs utterances of at least two intents"):
        bf.tune(tmp_path, tmp_path / "out", data, SETTINGS, print)


# --- one real tuning, of a tiny model --------------------------------------------------------

TEXTS = (
    *("remind me to call mom", "remind me to buy milk"),
    *("remind me to call the dentist", "remind me to pay rent"),
    *("note that the wifi password is hunter2", "note that mom likes tulips"),
    *("note that the car is blue", "note that rent is due"),
    *("hello", "hi there", "good morning", "hello there"),
)
TINY = bf.TrainingSet(TEXTS, (0,) * 4 + (1,) * 4 + (2,) * 4, DATA.names)


@pytest.fixture
def tiny_model(tmp_path, monkeypatch) -> Path:
    """A sentence-transformers folder as the real bases are (BERT + mean pooling, with
    vocab.txt beside it), but 2 layers of 32 dimensions, random, made here."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    st = pytest.importorskip("sentence_transformers")
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    # tune() sets these for the build's process; monkeypatch puts them back afterwards.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    hf = tmp_path / "hf"
    hf.mkdir()
    words = sorted({word for text in TEXTS for word in text.split()})
    (hf / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]))
    transformers.BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(str(hf))
    config = transformers.BertConfig(
        vocab_size=5 + len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(hf))
    base = tmp_path / "tiny-base"
    modules = [Transformer(str(hf), max_seq_length=48), Pooling(32, "mean")]
    st.SentenceTransformer(modules=modules, device="cpu").save(str(base))
    shutil.copyfile(hf / "vocab.txt", base / "vocab.txt")  # as the real bases carry it
    return base


def tensors(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_real_tuning_of_a_tiny_model_lowers_the_loss_and_saves_a_loadable_model(
    tiny_model, cache
):
    from sentence_transformers import SentenceTransformer

    settings = bf.FinetuneSettings(
        epochs=2,
        learning_rate=3e-3,
        head_learning_rate=1e-2,
        batch_size=4,
        distill=0.1,
        frozen_layers=1,
        max_tokens=16,
    )
    log: list[str] = []
    folder = bf.finetuned("tiny", tiny_model, "model.safetensors", TINY, settings, log.append)

    report = json.loads((folder / bf.REPORT).read_text())
    assert report["examples"] == 12 and report["steps"] == 2 * 3
    assert report["intents"] == list(DATA.names)
    assert report["settings"] == settings.manifest()
    assert report["data_sha256"] == TINY.sha256()
    first, last = report["epoch_loss"]
    assert last < first
    assert [line.split(" mean loss")[0] for line in log if "finetune: epoch" in line] == [
        "finetune: epoch 1/2",
        "finetune: epoch 2/2",
    ]
    # The word embeddings and the frozen bottom layer are as they were (and BERT's pooler,
    # which mean pooling never reads); every other tensor moved.
    before, after = tensors(tiny_model), tensors(folder)
    assert sorted(before) == sorted(after)
    kept = ("word_embeddings", "layer.0.", "pooler.")
    assert {part for part in (*kept, "layer.1.") if any(part in name for name in before)} == {
        *kept,
        "layer.1.",
    }
    for name in before:
        same = bool((before[name] == after[name]).all())
        assert same == any(part in name for part in kept), name
    # vocab.txt (the export and the browser read it) comes along, and the model loads with
    # its own length limit, not the tuning's.
    assert (folder / "vocab.txt").read_bytes() == (tiny_model / "vocab.txt").read_bytes()
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    assert model.max_seq_length == 48
    assert model.encode(["hello there"]).shape == (1, 32)
