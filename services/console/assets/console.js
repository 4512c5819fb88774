// Shared by every console page: the SDK clients, a little DOM help, the tenant picker.
import { Code, ConnectError, Converger } from "/sdk/converger.js";

export { Code, ConnectError };

/** The operator: the browser sends the session cookie by itself. */
export const operator = new Converger({ baseUrl: location.origin, session: true });

/** The operator acting as one tenant, through short-lived tokens it mints (each one audited). */
export function asTenant(tenantId) {
  return new Converger({
    baseUrl: location.origin,
    getToken: async () => (await operator.auth.createTenantAccessToken({ tenantId })).accessToken,
  });
}

/** The edge as this deployment's clients reach it (the page's meta tag, set by the server). */
export function streamUrl() {
  return document.querySelector('meta[name="converger-stream-url"]')?.content ?? undefined;
}

/** h("button", { onclick }, "Retry"): an element with properties (on… are listeners) and children. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && key !== "list" && key !== "form") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) if (child !== undefined && child !== null && child !== false) el.append(child);
  return el;
}

/** A labelled field: the label names the control, so tests and screen readers find it by its label. */
export function field(label, control, error) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  const hint = h("span", { class: "field-error", role: "alert", id: `${id}-error`, hidden: !error }, error ?? "");
  control.setAttribute("aria-describedby", hint.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint);
}

/** Shows an error message next to the field it names ("config.url: must be …"), or at the form's end. */
export function showError(form, error) {
  for (const hint of form.querySelectorAll(".field-error")) {
    hint.hidden = true;
    hint.textContent = "";
  }
  const message = describe(error);
  const named = /^([\w.[\]]+): (.*)$/.exec(message);
  const target = named && form.querySelector(`[data-field="${named[1]}"]`);
  const hint = target ? form.querySelector(`#${target.id}-error`) : form.querySelector(".form-error");
  if (hint) {
    hint.textContent = target ? named[2] : message;
    hint.hidden = false;
  }
}

export function describe(error) {
  return error instanceof ConnectError ? error.rawMessage : String(error?.message ?? error);
}

export const formatTime = (ts) => (ts ? new Date(Number(ts.seconds) * 1000).toLocaleString() : "—");

/** The tenants, for pickers (every page of them). */
export async function allTenants() {
  const tenants = [];
  let cursor = "";
  for (let page = 0; page < 100; page++) {
    const res = await operator.tenants.listTenants({ limit: 100, cursor });
    tenants.push(...res.tenants);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return tenants;
}

/**
 * A "Tenant" select kept in the URL (?tenant=), so a view can be linked and
 * survives a reload. Calls `onChange(tenantId)` now and on each change.
 */
export async function tenantPicker(onChange, { allowAll = false } = {}) {
  const tenants = await allTenants();
  const params = new URLSearchParams(location.search);
  const select = h(
    "select",
    { name: "tenant" },
    allowAll ? h("option", { value: "" }, "All tenants") : null,
    tenants.map((t) => h("option", { value: t.id }, t.name)),
  );
  const wanted = params.get("tenant");
  if (wanted && tenants.some((t) => t.id === wanted)) select.value = wanted;
  select.addEventListener("change", () => {
    const next = new URLSearchParams(location.search);
    if (select.value) next.set("tenant", select.value);
    else next.delete("tenant");
    history.replaceState(null, "", `?${next}`);
    onChange(select.value, tenants);
  });
  queueMicrotask(() => onChange(select.value, tenants));
  return { element: field("Tenant", select), tenants, select };
}

/** Replaces the page's content. */
export function render(...children) {
  const app = document.getElementById("app");
  app.replaceChildren(...children);
  return app;
}

/** Runs `work` and shows a failure in `where` instead of an unhandled rejection. */
export async function guarded(where, work) {
  try {
    return await work();
  } catch (error) {
    where.replaceChildren(h("p", { class: "error", role: "alert" }, describe(error)));
    return undefined;
  }
}
