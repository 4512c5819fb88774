// Tenants: create (the API key is shown once), list, enable / disable, rotate the key, per-tenant rate limit.
import { describe, field, formatTime, guarded, h, operator, render } from "./console.js";

const ACTIVE = 1;
const INACTIVE = 2;
const notice = h("div", { "aria-live": "polite" });
const list = h("div", { class: "table-wrap" });

function shownOnce(title, secretLabel, secret) {
  notice.replaceChildren(
    h(
      "div",
      { class: "notice", role: "status" },
      h("strong", {}, title),
      h("span", {}, `${secretLabel} (shown once, copy it now): `),
      h("code", { "data-secret": "api-key" }, secret),
    ),
  );
}

function createForm() {
  const name = h("input", { name: "name", required: true, maxLength: 200, autocomplete: "off", "data-field": "name" });
  const error = h("p", { class: "error form-error", role: "alert", hidden: true });
  const form = h(
    "form",
    {
      class: "inline",
      onsubmit: async (event) => {
        event.preventDefault();
        error.hidden = true;
        try {
          const created = await operator.tenants.createTenant({ name: name.value });
          shownOnce(`Tenant “${created.name}” created.`, "API key", created.apiKey);
          form.reset();
          await refresh();
        } catch (e) {
          error.textContent = describe(e);
          error.hidden = false;
        }
      },
    },
    field("Name", name),
    h("button", { type: "submit" }, "Create tenant"),
    error,
  );
  return form;
}

function row(tenant) {
  const active = tenant.status === ACTIVE;
  const limit = h("input", {
    type: "number",
    min: "0",
    max: "100000000",
    value: String(tenant.rateLimitPerMinute),
    "aria-label": `Rate limit per minute for ${tenant.name}`,
    size: 8,
  });
  const act = (work) => async () => {
    await guarded(notice, async () => {
      await work();
      await refresh();
    });
  };
  return h(
    "tr",
    { "data-tenant": tenant.id },
    h("td", {}, tenant.name),
    h("td", { class: "mono" }, tenant.id),
    h("td", { class: "status" }, active ? "Active" : "Disabled"),
    h("td", {}, formatTime(tenant.createdAt)),
    h(
      "td",
      {},
      h(
        "span",
        { class: "toolbar" },
        limit,
        h(
          "button",
          {
            onclick: act(() =>
              operator.tenants.updateTenant({ id: tenant.id, rateLimitPerMinute: Number(limit.value) || 0 }),
            ),
          },
          "Save limit",
        ),
        h("span", { class: "muted" }, tenant.rateLimitPerMinute ? "" : "(default)"),
      ),
    ),
    h(
      "td",
      {},
      h(
        "span",
        { class: "toolbar" },
        h(
          "button",
          {
            onclick: act(() => operator.tenants.updateTenant({ id: tenant.id, status: active ? INACTIVE : ACTIVE })),
          },
          active ? "Disable" : "Enable",
        ),
        h(
          "button",
          {
            onclick: async () => {
              if (!confirm(`Rotate the API key of “${tenant.name}”? The old key stops working at once.`)) return;
              await guarded(notice, async () => {
                const rotated = await operator.tenants.rotateTenantKey({ id: tenant.id });
                shownOnce(`New API key for “${rotated.name}”.`, "API key", rotated.apiKey);
              });
            },
          },
          "Rotate key",
        ),
        h("a", { href: `/admin/channels?tenant=${tenant.id}` }, "Channels"),
        h("a", { href: `/admin/conversations?tenant=${tenant.id}` }, "Conversations"),
      ),
    ),
  );
}

async function refresh() {
  await guarded(list, async () => {
    const { tenants } = await operator.tenants.listTenants({ limit: 100 });
    list.replaceChildren(
      tenants.length === 0
        ? h("p", {}, "No tenant yet: create the first one above.")
        : h(
            "table",
            {},
            h(
              "caption",
              { class: "muted" },
              `${tenants.length} tenant${tenants.length === 1 ? "" : "s"}, newest first`,
            ),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Name", "ID", "Status", "Created", "Rate limit / min", "Actions"].map((c) =>
                  h("th", { scope: "col" }, c),
                ),
              ),
            ),
            h("tbody", {}, tenants.map(row)),
          ),
    );
  });
}

render(h("h2", {}, "New tenant"), createForm(), notice, h("h2", {}, "All tenants"), list);
await refresh();
