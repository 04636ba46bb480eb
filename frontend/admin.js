// The admin pages (catalog admins and task configurers): catalog browser, column mapping, task editor and
// change approval. This module is their shell: the navigation (offered only to admin roles; the server
// refuses everyone else anyway), which page shows, and rendering on a language change or a sign-out.

import {$} from "./dom.js";
import {t} from "./i18n.js";
import "./admin-i18n.js";
import {PAGES, admin, adminHooks, isAdmin, loadCatalog, mayOpen, resetAdmin as resetAdminState,
        showProblem} from "./admin-common.js";
import {renderCatalogPage, bindCatalogPage, resetCatalogPage} from "./admin-catalog.js";
import {renderMappingPage, bindMappingPage, openMapping} from "./admin-mapping.js";
import {renderTaskPage, bindTaskPage, refreshTaskList, resetTaskPage} from "./admin-task.js";
import {renderChangesPage, loadChanges, bindChangesPage, resetCompare} from "./admin-changes.js";
import {renderImportPage, bindImportPage, resetImport} from "./admin-import.js";
import {renderReportsPage, bindReportsPage, resetReports} from "./admin-reports.js";
import {renderProviderPage, bindProviderPage, loadProvider, resetProvider} from "./provider.js";
import {announce, clearAlert, show, state} from "./ui.js";

const RENDER = {catalog: renderCatalogPage, mapping: renderMappingPage, task: renderTaskPage, changes: renderChangesPage,
                import: renderImportPage, reports: renderReportsPage, provider: renderProviderPage};

export {isAdmin};

/** The admin page a user lands on: an agreement admin their agency's provider page; others the first page
    their actions open (the catalog for catalog admins and task configurers). */
export const firstAdminPage = () => (mayOpen("provider") ? "provider" : PAGES.find(mayOpen));

function pageOf(view) {
  return typeof view === "string" && view.startsWith("admin-") ? view.slice("admin-".length) : null;
}

/** Open an admin page: `opts.ledger` preselects the mapping page's ledger. */
export async function goAdmin(page, opts = {}) {
  if (!mayOpen(page)) return;
  clearAlert();
  show(`admin-${page}`);
  syncAdmin();
  RENDER[page]();
  $(`#admin-${page}-title`).focus();
  announce(t("admin.loading"));
  try {
    // what other admins changed meanwhile; the import page needs none of it (at 25,000 fields it takes seconds)
    // (the small part of the catalog: fields and tasks are searched and paged on the server)
    if (page !== "import" && page !== "provider") await loadCatalog({force: true});
    if (page === "catalog") resetCatalogPage();  // searched again: other admins may have changed it
    if (page === "task") refreshTaskList();
    if (page === "changes") await loadChanges();
    if (page === "provider") await loadProvider();
    const ledger = page === "mapping" ? opts.ledger || admin.mapping.ledger : null;
    if (ledger) await openMapping(ledger);
  } catch (err) {
    showProblem(err);
    return;
  }
  if (state.view !== `admin-${page}`) return;  // moved on meanwhile
  RENDER[page]();
  announce(t(`admin.${page}.loaded`));
}

export function renderAdmin() {
  syncAdmin();
  const page = pageOf(state.view);
  if (page) RENDER[page]();
}

/** Sign-out: forget the admin pages' data and erase what they showed or what was typed into them. */
export function resetAdmin() {
  resetAdminState();
  resetImport();
  resetReports();
  resetCatalogPage();
  resetTaskPage();
  resetCompare();
  resetProvider();
  for (const sel of ["#admin-ledgers", "#admin-fields", "#admin-field-count", "#admin-columns", "#admin-map-result",
                     "#task-sections", "#task-picker-groups", "#task-picker-count", "#task-preview-box", "#task-result",
                     "#changes-pending", "#changes-history", "#changes-done", "#import-result", "#report-matrix",
                     "#report-other", "#compare-result", "#admin-task-search-count",
                     "#provider-body", "#provider-agency"]) {
    $(sel).replaceChildren();
  }
  for (const sel of ["#admin-field-filter", "#admin-ledger-form", "#admin-map-form", "#admin-task-open",
                     "#admin-task-form", "#admin-import-form", "#admin-matrix-form", "#admin-report-form", "#admin-compare-form",
                     "#provider-form"]) {
    $(sel).reset();
  }
  for (const sel of ["#admin-map-form", "#admin-task-form", "#admin-map-result", "#task-preview-box", "#task-result",
                     "#changes-done"]) {
    $(sel).hidden = true;
  }
  syncAdmin();
}

/**
 * ui.js show() knows the caseworker views only: it hides them and sets body[data-view]. The admin views and
 * their nav follow that attribute here, so every way of changing view (sign out included) hides them.
 */
function syncAdmin() {
  const page = pageOf(state.view);
  const signedIn = Boolean(state.me);
  for (const name of PAGES) {
    const view = $(`#view-admin-${name}`);
    if (view) view.hidden = name !== page;
    const nav = $(`#nav-admin-${name}`);
    nav.hidden = !(signedIn && mayOpen(name));
    if (name === page) nav.setAttribute("aria-current", "page");
    else nav.removeAttribute("aria-current");
  }
}

export function bindAdmin() {
  for (const name of PAGES) $(`#nav-admin-${name}`).addEventListener("click", () => goAdmin(name));
  new MutationObserver(syncAdmin).observe(document.body, {attributes: true, attributeFilter: ["data-view"]});
  adminHooks.go = goAdmin;
  bindCatalogPage();
  bindMappingPage();
  bindTaskPage();
  bindChangesPage();
  bindImportPage();
  bindReportsPage();
  bindProviderPage();
  syncAdmin();
}
