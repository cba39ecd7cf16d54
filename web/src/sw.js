// The service worker: precaches every file of the build (build.py injects the list,
// with each file's revision and integrity, where the manifest placeholder is) and serves them, so the app boots and answers
// with no network. A new build installs beside the running one and takes over only
// when the user accepts the page's "Update available — reload" (no skipWaiting
// here), so a tab never mixes files of two builds.
//
// A classic worker loading Workbox's prebuilt runtime (copied into workbox/ by
// build.py): no bundler, no CDN.
importScripts(
  'workbox/workbox-core.prod.js',
  'workbox/workbox-routing.prod.js',
  'workbox/workbox-strategies.prod.js',
  'workbox/workbox-precaching.prod.js',
);

const { precaching } = self.workbox;

precaching.addPlugins([
  {
    // Workbox fetches revisioned files with cache: 'reload', which bypasses the HTTP
    // cache. The page registers this worker after its boot has downloaded those very
    // files, so revalidate instead: an unchanged file costs a 304, not its bytes again.
    // (The manifest's integrity still rejects bytes that are not this build's.)
    requestWillFetch: async ({ request }) => new Request(request, { cache: 'no-cache' }),
  },
]);

// Nothing the app loads varies by query (?threads=2 is read by the page itself).
precaching.precacheAndRoute(self.__WB_MANIFEST, { ignoreURLParametersMatching: [/.*/] });
precaching.cleanupOutdatedCaches();

self.addEventListener('message', (event) => {
  if (event.data?.type === 'SKIP_WAITING') self.skipWaiting();
});
