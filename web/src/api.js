// The page's handle on the agent worker: window.pyAgent. Any method name is a call of the
// worker's one Comlink method, `call(name, ...args)` (worker.js): the worker's own methods
// and every Python function of py_agent.worker_api, typed in types.js. A failed call
// rejects with a WorkerError carrying Python's structured error.
import * as Comlink from './vendor/comlink.mjs';

/**
 * @typedef {import('./types.js').PythonApi & import('./worker.js').WorkerApi} PyAgent
 */

export class WorkerError extends Error {
  /** @param {import('./types.js').WorkerError} error */
  constructor({ type, message, field }) {
    super(message);
    this.name = type;
    /** The exception's class, e.g. "ArgumentError", "PairingError". */
    this.type = type;
    /** The argument at fault, e.g. "texts[0]", when the worker knows it. */
    this.field = field;
  }
}

/** @param {Worker} worker @returns {PyAgent} */
export function connect(worker) {
  /** @type {Comlink.Remote<import('./worker.js').Exposed>} */
  const remote = Comlink.wrap(worker);
  const agent = new Proxy(
    {},
    {
      get(_, name) {
        // Not a thenable (`await agent`), nor anything but a method name.
        if (typeof name !== 'string' || name === 'then') return undefined;
        return async (/** @type {unknown[]} */ ...args) => {
          const outcome = await remote.call(name, ...args);
          if (!outcome.ok) throw new WorkerError(outcome.error);
          return outcome.value;
        };
      },
    },
  );
  return /** @type {PyAgent} */ (agent);
}
