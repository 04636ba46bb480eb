// The URL of each caseworker view, so that Back, reload, bookmarks and a second tab work:
//   #/tasks                                       the task list
//   #/task/<code>?case=<case ref>                 a task's case reference and subject search
//   #/task/<code>/screen?case=<ref>&subject=<h>   the screen of one subject, named by its opaque, expiring
//                                                 handle from a search (h:...), NEVER by an identifier (RRN)
//   #/audit                                       the access history
//   #/receipts                                    a citizen's own receipts (내 정보 이용내역)
//   #/admin/<page>                                an admin page (catalog, mapping, task, changes, ...)
// A hash route: the server serves the same page for every one of them, and nothing of it reaches a server log.

const HANDLE_RE = /^h:[A-Za-z0-9_=-]{16,512}$/;

/** The route of a view: {view, task, caseRef, subject} as in `state`. */
export function format(route) {
  const enc = encodeURIComponent;
  if (route.view === "tasks") return "#/tasks";
  if (route.view === "audit") return "#/audit";
  if (route.view === "receipts") return "#/receipts";
  if (typeof route.view === "string" && route.view.startsWith("admin-")) return `#/admin/${enc(route.view.slice(6))}`;
  if ((route.view === "subject" || route.view === "screen") && route.task) {
    const params = new URLSearchParams();
    if (route.caseRef) params.set("case", route.caseRef);
    if (route.view === "screen" && isHandle(route.subject)) params.set("subject", route.subject);
    const query = params.toString();
    return `#/task/${enc(route.task)}${route.view === "screen" ? "/screen" : ""}${query ? `?${query}` : ""}`;
  }
  return "";
}

/** The route in a URL's hash, or null when it names none. */
export function parse(hash) {
  const text = String(hash || "").replace(/^#/, "");
  const [path, query = ""] = text.split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map((p) => {
    try { return decodeURIComponent(p); } catch { return ""; }
  });
  if (parts.length === 1 && parts[0] === "tasks") return {view: "tasks"};
  if (parts.length === 1 && parts[0] === "audit") return {view: "audit"};
  if (parts.length === 1 && parts[0] === "receipts") return {view: "receipts"};
  if (parts.length === 2 && parts[0] === "admin" && /^[a-z-]+$/.test(parts[1])) return {view: `admin-${parts[1]}`};
  if (parts[0] === "task" && parts[1] && parts.length <= 3) {
    const caseRef = params.get("case") || "";
    if (parts.length === 3 && parts[2] === "screen") {
      return {view: "screen", task: parts[1], caseRef, subject: params.get("subject") || ""};
    }
    if (parts.length === 2) return {view: "subject", task: parts[1], caseRef};
  }
  return null;
}

export function isHandle(subject) {
  return typeof subject === "string" && HANDLE_RE.test(subject);
}

/** Put the route in the address bar: a new history entry (Back returns to the one before), or, with
    `replace`, the current entry rewritten (a correction that Back should skip). */
export function go(route, {replace = false} = {}) {
  const hash = format(route);
  const target = hash || window.location.pathname + window.location.search;
  if (hash ? window.location.hash === hash : !window.location.hash) return;
  if (replace) window.history.replaceState(null, "", target);
  else window.history.pushState(null, "", target);
}
