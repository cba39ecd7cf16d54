// What the page puts on window (app.js): the e2e tests and the benchmarks call these.
interface Window {
  pyAgent: import('../src/api.js').PyAgent;
  pyAgentBoot: import('../src/worker.js').BootResult;
}
