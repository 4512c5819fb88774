// Channels of one tenant: the list with health, disable / enable, rotate the secret, and a creation
// form built from each type's config spec (channels.listChannelTypes), secrets shown once.
import { asTenant, describe, field, formatTime, guarded, h, render, showError, tenantPicker } from "./console.js";

// In ChannelType's order (proto/converger/v1/channels.proto): the SDK exports no enums, so the
// type's number is its index in TYPE_NAMES, and the option values are the API's type names.
const TYPE_TITLES = {
  echo: "Echo (answers each message)",
  websocket: "WebSocket (clients read the stream)",
  webhook: "Webhook",
  whatsapp_meta: "WhatsApp through Meta",
  whatsapp_infobip: "WhatsApp through Infobip",
  telegram: "Telegram",
  instagram: "Instagram",
  messenger: "Messenger",
};
const TYPE_NAMES = ["", ...Object.keys(TYPE_TITLES)];
const ACTIVE = 1;
const INACTIVE = 2;
const HEALTH = ["Unknown (delivery did not answer)", "Healthy", "Degraded: recent tries failed", "Down: circuit open"];
// What the server accepts (services/conversations/channel-config.ts); empty sends none, i.e. POST.
const METHODS = ["POST", "PUT", "PATCH"];
const WORDS = { url: "URL", id: "ID", api: "API" };
const HEAD = ["Name and ID", "Type", "Status", "Health", "Created", "Actions"];

const notice = h("div", { "aria-live": "polite" });
const heading = h("h2", {}, "Channels");
const list = h("div", { class: "table-wrap" });
const creation = h("div");
let tenant;

const fieldLabel = (name) =>
  name
    .split("_")
    .map((word, i) => WORDS[word] ?? (i === 0 ? word[0].toUpperCase() + word.slice(1) : word))
    .join(" ");

function shownOnce(title, secret) {
  notice.replaceChildren(
    h(
      "div",
      { class: "notice", role: "status" },
      h("strong", {}, title),
      h("span", {}, "Channel secret (shown once, copy it now): "),
      h("code", { "data-secret": "channel-secret" }, secret),
    ),
  );
}

/** One config control per spec field; `read()` turns it back into the config value (undefined: unset). */
function configControl(spec) {
  const path = `config.${spec.name}`;
  const common = { name: spec.name, "data-field": path, required: spec.required, autocomplete: "off" };
  let control;
  let hint = "";
  let read = () => control.value.trim() || undefined;
  if (spec.kind === "headers") {
    control = h("textarea", { ...common, rows: 3, placeholder: "X-Token: abc" });
    hint = "One header per line, as Name: value.";
    read = () => parseHeaders(control.value);
  } else if (spec.kind === "method") {
    control = h(
      "select",
      common,
      h("option", { value: "" }, "POST (default)"),
      METHODS.map((m) => h("option", {}, m)),
    );
  } else if (spec.kind === "rate") {
    control = h("input", { ...common, type: "number", min: "1", max: "10000", step: "1" });
    hint = "Tries per second at most; empty for no pacing.";
    read = () => (control.value === "" ? undefined : Number(control.value));
  } else {
    const type = spec.secret ? "password" : spec.kind === "url" ? "url" : "text";
    control = h("input", { ...common, type, maxLength: 2048 });
    if (spec.secret) hint = "Secret: write-only, never shown again.";
  }
  const wrapper = field(`${fieldLabel(spec.name)}${spec.required ? " (required)" : ""}`, control);
  if (hint) wrapper.insertBefore(h("span", { class: "hint" }, hint), control.nextSibling);
  return { name: spec.name, element: wrapper, read };
}

function parseHeaders(text) {
  const headers = {};
  for (const [i, line] of text.split("\n").entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) throw new Error(`config.headers: line ${i + 1} is not Name: value`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return Object.keys(headers).length ? headers : undefined;
}

// showError finds fields by a plain path; a header's own path ("config.headers.X-Token") goes to its textarea.
const forField = (error) => {
  const message = describe(error);
  const header = /^config\.headers\.[^:]+: /.exec(message);
  return header ? new Error(`config.headers: ${message}`) : error;
};

function createForm(client, specs) {
  const name = h("input", { name: "name", required: true, maxLength: 200, autocomplete: "off", "data-field": "name" });
  const type = h(
    "select",
    { name: "type", "data-field": "type" },
    specs.map((s) => h("option", { value: TYPE_NAMES[s.type] }, TYPE_TITLES[TYPE_NAMES[s.type]] ?? TYPE_NAMES[s.type])),
  );
  const settings = h("fieldset", { class: "config" });
  let controls = [];
  const showSettings = () => {
    const spec = specs.find((s) => TYPE_NAMES[s.type] === type.value);
    controls = (spec?.fields ?? []).map(configControl);
    const parts = [
      h("legend", {}, `Settings of the ${type.value} type`),
      controls.length === 0 && h("p", { class: "muted" }, "This type takes no settings."),
      spec?.servedByStream && h("p", { class: "muted" }, "Nothing is sent out: clients read the stream."),
      ...controls.map((c) => c.element),
    ];
    settings.replaceChildren(...parts.filter(Boolean));
  };
  type.addEventListener("change", showSettings);
  showSettings();
  const form = h(
    "form",
    {
      // The server checks every field and names the bad one, so its message shows next to that field.
      noValidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        for (const hint of form.querySelectorAll(".field-error, .form-error")) hint.hidden = true;
        try {
          const config = {};
          for (const c of controls) {
            const value = c.read();
            if (value !== undefined) config[c.name] = value;
          }
          const created = await client.channels.createChannel({
            name: name.value,
            type: TYPE_NAMES.indexOf(type.value),
            config,
          });
          shownOnce(`Channel “${created.name}” (${TYPE_NAMES[created.type]}) created.`, created.secret);
          name.value = "";
          showSettings();
          await refresh(client);
        } catch (e) {
          showError(form, forField(e));
        }
      },
    },
    h("div", { class: "toolbar" }, field("Name", name), field("Type", type)),
    settings,
    h("p", { class: "error form-error", role: "alert", hidden: true }),
    h("p", { class: "toolbar" }, h("button", { type: "submit" }, "Create channel")),
  );
  return form;
}

function row(client, channel) {
  const active = channel.status === ACTIVE;
  const act = (work) => () =>
    guarded(notice, async () => {
      await work();
      await refresh(client);
    });
  const rotate = async () => {
    if (!confirm(`Rotate the secret of “${channel.name}”? The old secret stops working at once.`)) return;
    await guarded(notice, async () => {
      const rotated = await client.channels.rotateChannelSecret({ id: channel.id });
      shownOnce(`New secret for “${rotated.name}”.`, rotated.secret);
    });
  };
  return h(
    "tr",
    { "data-channel": channel.id },
    h("td", {}, h("span", {}, channel.name), h("br"), h("span", { class: "mono muted" }, channel.id)),
    h("td", {}, TYPE_NAMES[channel.type] ?? "unknown"),
    h("td", { class: "status" }, active ? "Active" : "Disabled"),
    h("td", {}, HEALTH[channel.health] ?? HEALTH[0]),
    h("td", {}, formatTime(channel.createdAt)),
    h(
      "td",
      {},
      h(
        "span",
        { class: "toolbar" },
        h(
          "button",
          { onclick: act(() => client.channels.updateChannel({ id: channel.id, status: active ? INACTIVE : ACTIVE })) },
          active ? "Disable" : "Enable",
        ),
        h("button", { onclick: rotate }, "Rotate secret"),
        h("a", { href: `/admin/conversations?tenant=${channel.tenantId}` }, "Conversations"),
      ),
    ),
  );
}

async function allChannels(client) {
  const channels = [];
  let cursor = "";
  for (let page = 0; page < 100; page++) {
    const res = await client.channels.listChannels({ limit: 100, cursor });
    channels.push(...res.channels);
    cursor = res.nextCursor;
    if (!cursor) break;
  }
  return channels;
}

async function refresh(client) {
  await guarded(list, async () => {
    const channels = await allChannels(client);
    if (client !== tenant) return;
    const headRow = HEAD.map((c) => h("th", { scope: "col" }, c));
    const caption = `${channels.length} channel${channels.length === 1 ? "" : "s"}, newest first`;
    const table = h("table", {}, h("caption", { class: "muted" }, caption), h("thead", {}, h("tr", {}, headRow)));
    table.append(h("tbody", {}, ...channels.map((c) => row(client, c))));
    list.replaceChildren(channels.length === 0 ? h("p", {}, "No channel yet: create the first one above.") : table);
  });
}

async function showTenant(tenantId, tenants) {
  const name = tenants.find((t) => t.id === tenantId)?.name;
  heading.textContent = name ? `Channels of ${name}` : "Channels";
  notice.replaceChildren();
  if (!tenantId) {
    tenant = undefined;
    creation.replaceChildren();
    list.replaceChildren(
      h("p", {}, "No tenant yet: create one on the ", h("a", { href: "/admin/tenants" }, "Tenants"), " page."),
    );
    return;
  }
  const client = asTenant(tenantId);
  tenant = client;
  creation.replaceChildren(h("p", {}, "Loading the channel types…"));
  list.replaceChildren(h("p", {}, "Loading…"));
  await guarded(creation, async () => {
    const { types } = await client.channels.listChannelTypes({});
    if (client === tenant) creation.replaceChildren(createForm(client, types));
  });
  await refresh(client);
}

const app = render(h("p", {}, "Loading the tenants…"));
await guarded(app, async () => {
  const picker = await tenantPicker(showTenant);
  render(picker.element, h("h2", {}, "New channel"), creation, notice, heading, list);
});
