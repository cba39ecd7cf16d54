// The service worker's precache manifest, by workbox-build's injectManifest.
// build.py runs `node web/build_sw.mjs job.json` and checks the report it writes.
import { readFile, writeFile } from 'node:fs/promises';
import workboxBuild from 'workbox-build';

const job = JSON.parse(await readFile(process.argv[2], 'utf8'));
let entries = [];
const { count, size, warnings } = await workboxBuild.injectManifest({
  swSrc: job.swSrc,
  swDest: job.swDest,
  globDirectory: job.globDirectory,
  globPatterns: ['**/*'],
  globIgnores: job.globIgnores,
  // Workbox's default (2 MB) silently leaves out the wasm runtimes, the stdlib, numpy
  // and the model; build.py still checks that nothing was left out.
  maximumFileSizeToCacheInBytes: job.maximumFileSizeToCacheInBytes,
  manifestTransforms: [
    async (manifest) => {
      // Subresource integrity from build.json's sha256: the browser refuses a precache
      // download that is not this build's bytes (a deploy between page load and install).
      entries = manifest.map((entry) => ({ ...entry, integrity: job.integrity[entry.url] }));
      return { manifest: entries, warnings: [] };
    },
  ],
});
await writeFile(job.report, JSON.stringify({ count, size, warnings, entries }, null, 1));
