// GraphiQL for oneScreen's demo mode, from the package's vendored files (no CDN; no inline script: this file is
// the page's bootstrap). Every request needs a bearer token: this tab's sign-in on the caseworker screen is taken
// if there is one, and the bar above the IDE puts a demo user's token into the headers editor. What GraphiQL keeps
// (tabs, and its history, which holds the headers a query ran with) goes to this tab's sessionStorage, never to
// localStorage: as on the caseworker screen, a token lives at most as long as the tab.
(function () {
  "use strict";

  const TOKEN_KEY = "onescreen.token";  // where the caseworker screen (frontend/api.js) keeps this tab's token
  const QUERY = [
    "# oneScreen's GraphQL API (demo mode, synthetic data).",
    "# The Headers tab below carries the bearer token: pick a demo user in the bar above.",
    "# Run with Ctrl-Enter.",
    "{",
    "  me { user name organisation roles }",
    "  tasks { code name nameEn subjectType }",
    "}",
    "",
  ].join("\n");

  const $ = (id) => document.getElementById(id);
  const root = ReactDOM.createRoot($("graphiql"));
  const fetcher = GraphiQL.createFetcher({url: "/graphql"});
  const plugins = [GraphiQLPluginExplorer.explorerPlugin()];
  let storage;
  try { storage = window.sessionStorage; } catch { storage = undefined; }  // refused: GraphiQL keeps nothing

  function headersFor(token) {
    return token ? JSON.stringify({Authorization: `Bearer ${token}`}, null, 2) : "";
  }

  function render(headers) {
    root.render(React.createElement(GraphiQL, {
      fetcher, plugins, defaultQuery: QUERY, headers, storage,
      isHeadersEditorEnabled: true, shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
    }));
  }

  function say(text) {
    $("os-status").textContent = text;
  }

  async function demoUsers() {
    try {
      const response = await fetch("/demo/users", {credentials: "omit", cache: "no-store"});
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }

  async function useToken(event) {
    event.preventDefault();
    const user = $("os-user").value;
    say(`Signing in as ${user}…`);
    try {
      const response = await fetch("/demo/token", {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({user}),
        credentials: "omit", cache: "no-store",
      });
      const body = await response.json();
      if (!response.ok || !body.token) throw new Error(`HTTP ${response.status}`);
      render(headersFor(body.token));
      say(`The headers carry ${user}'s token.`);
    } catch (err) {
      say(`Could not get a token for ${user} (${err.message}).`);
    }
  }

  async function start() {
    let token = null;
    try { token = sessionStorage.getItem(TOKEN_KEY); } catch { /* storage refused */ }
    render(headersFor(token));
    const users = await demoUsers();
    if (Array.isArray(users) && users.length) {
      const select = $("os-user");
      for (const u of users) {
        const option = document.createElement("option");
        option.value = u.user;
        option.textContent = `${u.user} (${u.name}; ${(u.tasks || []).join(", ") || u.roles.join(", ")})`;
        select.append(option);
      }
      $("os-signin").hidden = false;
      $("os-signin").addEventListener("submit", useToken);
    }
    if (token) say("The headers carry this tab's sign-in.");
  }

  start();
})();
