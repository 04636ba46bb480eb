// The provider page (제공기관 현황) of the signed-in agreement admin's own agency: which organisations, roles and
// tasks read which of its fields and how often (from the audit trail, aggregated: no subject, case or value),
// its sharing agreements and those ending within 30 days, and reads under no agreement (none while agreements
// are enforced: the page says so). CSV export. From GET /admin/provider (admin_http.py, provider.py).

import {$, fill, h, saveFile} from "./dom.js";
import {pick, t} from "./i18n.js";
import {adminGet, showProblem} from "./admin-common.js";
import {announce, clearStatus} from "./ui.js";

let page = null;  // the last answer

export function resetProvider() {
  page = null;
}

function get(params) {
  return adminGet("/admin/provider", params);
}

function days() {
  const v = $("#provider-days").value;
  return v ? {days: v} : {};
}

export async function loadProvider() {
  page = await get(days());
  return page;
}

export function renderProviderPage() {
  const box = $("#provider-body");
  if (!page) {
    fill(box, h("p", {class: "empty"}, t("admin.loading")));
    return;
  }
  $("#provider-agency").textContent = t("provider.agency", {agency: pick(page.agencyName, page.agencyNameEn),
                                                             id: page.agency});
  fill(box,
    h("section", {class: "admin-block", "aria-labelledby": "provider-expiring-title"},
      h("h2", {id: "provider-expiring-title", tabindex: "-1"}, t("provider.expiring", {n: page.expiringDays})),
      page.expiring.length
        ? h("ul", {class: "plain-list", id: "provider-expiring"}, page.expiring.map((a) =>
            h("li", {"data-agreement": a.id, class: "note"},
              h("strong", {}, pick(a.title, a.titleEn)), " ", h("code", {class: "admin-id"}, a.id), " — ",
              t("provider.endsOn", {day: a.validUntil}), ` (${t("provider.daysLeft", {n: a.daysLeft})})`)))
        : h("p", {class: "empty", id: "provider-expiring"}, t("provider.noneExpiring", {n: page.expiringDays}))),
    h("section", {class: "admin-block", "aria-labelledby": "provider-uncovered-title"},
      h("h2", {id: "provider-uncovered-title", tabindex: "-1"}, t("provider.uncovered")),
      page.uncovered.length
        ? h("ul", {class: "plain-list", id: "provider-uncovered"}, page.uncovered.map((u) =>
            h("li", {}, `${u.organisation} · ${u.task} · ${u.field} (${u.reads})`)))
        : h("p", {id: "provider-uncovered"}, page.enforced ? t("provider.noneUncovered") : t("provider.notEnforced"))),
    h("section", {class: "admin-block", "aria-labelledby": "provider-usage-title"},
      h("h2", {id: "provider-usage-title", tabindex: "-1"}, t("provider.usage")),
      h("p", {class: "count", id: "provider-usage-count"}, t("provider.usageCount", {n: page.usage.length})),
      page.usage.length ? h("div", {class: "table-scroll", tabindex: "0", role: "region",
                                    "aria-labelledby": "provider-usage-count"},
        h("table", {class: "data-table", id: "provider-usage"},
          h("caption", {class: "visually-hidden"}, t("provider.usage")),
          h("thead", {}, h("tr", {}, ["organisation", "role", "task", "field", "reads", "days"].map((k) =>
            h("th", {scope: "col"}, t(`provider.col.${k}`))))),
          h("tbody", {}, page.usage.map((u) => h("tr", {"data-task": u.task, "data-field": u.field},
            h("td", {}, u.organisation), h("td", {}, u.role), h("td", {}, u.task),
            h("th", {scope: "row"}, `${pick(u.label, u.labelEn)} (${u.field})`),
            h("td", {class: "num", "data-reads": String(u.reads)}, String(u.reads)),
            h("td", {}, u.firstDay === u.lastDay ? u.firstDay : `${u.firstDay} – ${u.lastDay}`))))))
        : h("p", {class: "empty"}, t("provider.noUsage"))),
    h("section", {class: "admin-block", "aria-labelledby": "provider-agreements-title"},
      h("h2", {id: "provider-agreements-title", tabindex: "-1"}, t("provider.agreements")),
      h("ul", {class: "plain-list", id: "provider-agreements"}, page.agreements.map((a) =>
        h("li", {"data-agreement": a.id},
          h("strong", {}, pick(a.title, a.titleEn)), " ", h("code", {class: "admin-id"}, a.id), " — ",
          t("provider.agreementLine", {signer: a.signer, tasks: a.tasks.join(", "), from: a.validFrom,
                                       until: a.validUntil}), `, ${t("provider.fieldCount", {n: a.fields.length})}`,
          a.inForce ? null : [" ", h("span", {class: "denied-tag"}, t("provider.notInForce"))])))));
}

async function download() {
  try {
    const blob = await get({...days(), format: "csv"});
    saveFile(blob, `provider-${page?.agency || "agency"}.csv`);
  } catch (err) {
    showProblem(err);
  }
}

export function bindProviderPage() {
  $("#provider-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    announce(t("admin.loading"));
    try {
      await loadProvider();
      clearStatus();
      renderProviderPage();
      announce(t("provider.usageCount", {n: page.usage.length}));
    } catch (err) {
      showProblem(err);
    }
  });
  $("#provider-csv").addEventListener("click", download);
}
