// The one DOM helper the page's modules share.

/**
 * The element with `id`, of the class `kind` (HTMLElement unless said): a missing or
 * different element is a mistake in index.html, said at once rather than as a later null.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new () => T} [kind]
 * @returns {T}
 */
export function $(id, kind) {
  const element = document.getElementById(id);
  const wanted = kind ?? HTMLElement;
  if (!(element instanceof wanted)) {
    throw new Error(`index.html has no ${wanted.name} #${id}`);
  }
  return /** @type {T} */ (element);
}
