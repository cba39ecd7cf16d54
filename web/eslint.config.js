// ESLint's recommended rules over the page, its workers and the build scripts (make lint).
// Types are tsc's job (tsconfig.json); this catches what a type check does not.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';

export default defineConfig([
  { ignores: ['dist/', 'node_modules/'] },
  js.configs.recommended,
  {
    files: ['src/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    // The module workers: the agent worker and the bridge it registers with Pyodide.
    files: ['src/worker.js', 'src/bridge.js', 'src/ort_worker.js'],
    languageOptions: { globals: globals.worker },
  },
  {
    // A classic service worker script (importScripts), not a module.
    files: ['src/sw.js'],
    languageOptions: { sourceType: 'script', globals: globals.serviceworker },
  },
  {
    files: ['*.js', '*.mjs'],
    languageOptions: { globals: globals.node },
  },
]);
