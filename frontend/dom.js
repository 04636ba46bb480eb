// The only way this app builds DOM: elements from code, text from data as text nodes.
// Nothing here (or anywhere in the app) parses HTML: no innerHTML, outerHTML, insertAdjacentHTML; and
// index.html declares Trusted Types (`require-trusted-types-for 'script'`), so such a sink would throw.

/**
 * h("p", {class: "x", "aria-live": "polite"}, "text", childNode, [more]) -> HTMLParagraphElement
 *
 * Props: `class`, `text` (textContent), `on<event>` (listener), `hidden`/`disabled`/`checked`... (booleans),
 * anything else is set with setAttribute. Children: nodes, or strings/numbers inserted as text nodes.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function $$(selector, root = document) {
  return Array.from(root.querySelectorAll(selector));
}

let counter = 0;

/** A fresh element id (for label/aria-describedby pairs of generated elements). */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Hand `blob` to the browser as a download named `name`. */
export function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", {href: url, download: name, hidden: true});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
