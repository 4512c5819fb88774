// The audit log: what operators did (and failed sign-ins), newest first, paged.
import { formatTime, guarded, h, operator, render } from "./console.js";

const onlyOperator = h("input", { type: "checkbox", checked: true, id: "only-operator" });
const table = h("div", { class: "table-wrap" });
const more = h("button", { hidden: true }, "Older entries");
let cursor = "";

function rows(events) {
  return events.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, formatTime(e.at)),
      h(
        "td",
        {},
        e.kind === "operator_action"
          ? `operator${e.sessionId ? ` (session ${e.sessionId.slice(0, 8)})` : " (admin token)"}`
          : `failed sign-in: ${e.kind}`,
      ),
      h("td", { class: "mono" }, e.action),
      h("td", { class: "mono" }, e.target || "—"),
      h("td", { class: "mono" }, e.tenantId || "—"),
      h("td", { class: "mono" }, e.sourceIp || "—"),
      h("td", {}, e.outcome || "—"),
    ),
  );
}

async function load(reset) {
  await guarded(table, async () => {
    if (reset) cursor = "";
    const res = await operator.auth.listAuditEvents({ operatorActionsOnly: onlyOperator.checked, limit: 50, cursor });
    cursor = res.nextCursor;
    more.hidden = !cursor;
    let body = table.querySelector("tbody");
    if (reset || !body) {
      body = h("tbody");
      table.replaceChildren(
        h(
          "table",
          {},
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["When", "Who", "What", "On", "Tenant", "From", "Outcome"].map((c) => h("th", { scope: "col" }, c)),
            ),
          ),
          body,
        ),
      );
    }
    body.append(...rows(res.events));
  });
}

onlyOperator.addEventListener("change", () => load(true));
more.addEventListener("click", () => load(false));
render(
  h("p", { class: "toolbar" }, onlyOperator, h("label", { for: "only-operator" }, "Operator actions only")),
  table,
  more,
);
await load(true);
