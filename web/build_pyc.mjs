// Bytecode for the wheels the worker unpacks, compiled by Pyodide's own CPython (the
// build's Python may be another version): tools/build/bytecode.py runs
// `node web/build_pyc.mjs job.json`, job = {wheels: [{wheel, out}]}, and writes each
// wheel's .pyc files, as a zip of paths relative to site-packages, to its `out`.
import { readFile, writeFile } from 'node:fs/promises';
import { loadPyodide } from 'pyodide';

const job = JSON.parse(await readFile(process.argv[2], 'utf8'));
const pyodide = await loadPyodide();
const compile = pyodide.runPython(`
import compileall, io, os, py_compile, re, sysconfig, zipfile

def compile_wheel(root):
    # Unchecked hash-based pycs: the worker unpacks the sources anew each boot, with new
    # mtimes, and these must be used all the same. Left out, to keep the download small:
    # tests, and numpy's subpackages the core never imports (a module left out still
    # imports, from its source).
    unused = r"/tests?/|/numpy/(f2py|ma|polynomial|testing|fft|random|core|compat|doc|_pyinstaller)/"
    ok = compileall.compile_dir(
        root, ddir=sysconfig.get_paths()["purelib"], quiet=2, workers=1, rx=re.compile(unused),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise RuntimeError(f"some files of {root} did not compile")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for folder, dirs, names in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(".pyc"):
                    path = os.path.join(folder, name)
                    info = zipfile.ZipInfo(os.path.relpath(path, root), (1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(path, "rb") as pyc:
                        out.writestr(info, pyc.read())
    return archive.getvalue()

compile_wheel
`);
for (const [index, { wheel, out }] of job.wheels.entries()) {
  const root = `/build/${index}`;
  pyodide.unpackArchive(new Uint8Array(await readFile(wheel)), 'wheel', { extractDir: root });
  const zip = compile(root);
  await writeFile(out, zip.toJs());
  zip.destroy();
}
