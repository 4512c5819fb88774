// Conversations of one tenant, newest activity first (the server's order), and an activity
// inspector paged by watermark that stays live through the tenant's stream while it is open.
import { asTenant, describe, formatTime, guarded, h, render, streamUrl, tenantPicker } from "./console.js";

const PAGE = 10;
const CLOSED = 2;
const ACTIVITY_TYPES = ["unknown", "message", "event", "typing"];
const STREAM_STATES = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Not live: the stream is closed (reload to retry)",
};

const heading = h("h2", {}, "Conversations");
const list = h("div", { class: "table-wrap" });
const more = h("button", { hidden: true }, "More conversations");
const inspector = h("section", { "aria-label": "Activity inspector" });
let client;
let channelNames = new Map();
let cursor = "";
let stream;
let view;
let opening;

const sender = (from) => (!from ? "—" : from.name ? `${from.name} (${from.id})` : from.id);
const tableOf = (head, body) =>
  h(
    "table",
    {},
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        head.map((c) => h("th", { scope: "col" }, c)),
      ),
    ),
    body,
  );

function conversationRow(c) {
  const last = c.lastActivity;
  const open = h(
    "button",
    { onclick: () => inspect(c.id), "aria-label": `Inspect conversation ${c.id}` },
    view?.conversationId === c.id ? "Inspecting" : "Inspect",
  );
  return h(
    "tr",
    { "data-conversation": c.id },
    // The full id is in the inspector's heading: a short one, with the action first, keeps a narrow window usable.
    h("td", { title: c.id }, `${c.id.slice(0, 8)}…`, h("br"), open),
    h("td", {}, channelNames.get(c.channelId) ?? h("span", { class: "mono" }, c.channelId)),
    h("td", {}, c.members.length ? c.members.join(", ") : "—"),
    h("td", { class: "status" }, c.status === CLOSED ? "Closed" : "Active"),
    h("td", { class: "num" }, String(c.lastSeq)),
    h("td", {}, last ? [formatTime(last.createdAt), h("br"), h("span", { class: "muted" }, preview(last))] : "—"),
  );
}

const preview = (a) => `${sender(a.from)}: ${a.text.length > 60 ? `${a.text.slice(0, 60)}…` : a.text || "(no text)"}`;

async function loadConversations(reset) {
  const owner = client;
  if (!owner) return;
  await guarded(list, async () => {
    if (reset) cursor = "";
    const res = await owner.conversations.listConversations({ limit: 50, cursor });
    if (owner !== client) return;
    cursor = res.nextCursor;
    more.hidden = !cursor;
    let body = list.querySelector("tbody");
    if (reset || !body) {
      body = h("tbody");
      const head = ["Conversation", "Channel", "Members", "Status", "Last seq", "Last activity"];
      list.replaceChildren(
        res.conversations.length === 0 ? h("p", {}, "No conversation yet in this tenant.") : tableOf(head, body),
      );
    }
    body.append(...res.conversations.map(conversationRow));
  });
}

function activityRow(a, fresh) {
  return h(
    "tr",
    { "data-seq": String(a.seq) },
    h("td", { class: "num" }, String(a.seq)),
    h("td", {}, ACTIVITY_TYPES[a.type] ?? "unknown"),
    h("td", {}, sender(a.from)),
    h("td", {}, a.text || h("span", { class: "muted" }, "(no text)")),
    h("td", {}, formatTime(a.createdAt), fresh ? " (new)" : ""),
  );
}

/** Shows the activities after `watermark`, at most `limit` of them; the view remembers the window. */
async function showWindow(watermark, limit) {
  const v = view;
  await guarded(v.rows, async () => {
    v.loading = true;
    const res = await client.conversations.listActivities({
      conversationId: v.conversationId,
      watermark: String(watermark),
      limit,
    });
    if (v !== view) return;
    v.from = watermark;
    v.to = res.activities.length ? Number(res.activities.at(-1).seq) : watermark;
    v.head = Math.max(v.head, v.to);
    v.rows.replaceChildren(...res.activities.map((a) => activityRow(a, false)));
  });
  v.loading = false;
  if (v === view) updateControls();
}

function updateControls() {
  const { from, to, head } = view;
  view.older.disabled = from <= 0;
  view.newer.disabled = to >= head;
  view.newest.disabled = to >= head;
  view.range.textContent =
    to > from
      ? `Showing seq ${from + 1} to ${to} of ${head}.`
      : head
        ? `Nothing after seq ${from}.`
        : "No activity yet.";
  view.behind.textContent = to < head ? `${head - to} newer not shown: press Newer or Newest.` : "";
}

function onLive(activity) {
  const seq = Number(activity.seq);
  if (seq <= view.head) return;
  const atHead = !view.loading && view.to === view.head;
  view.head = seq;
  if (atHead) {
    view.rows.append(activityRow(activity, true));
    view.to = seq;
  }
  updateControls();
}

async function inspect(conversationId) {
  stream?.close();
  const owner = client;
  opening = conversationId;
  inspector.replaceChildren(h("p", {}, "Loading the conversation…"));
  await guarded(inspector, async () => {
    const conversation = await owner.conversations.getConversation({ id: conversationId });
    // Another tenant or conversation chosen meanwhile: that one owns the inspector now.
    if (owner !== client || opening !== conversationId) return;
    for (const b of list.querySelectorAll("tr[data-conversation] button")) {
      b.textContent = b.closest("tr").dataset.conversation === conversationId ? "Inspecting" : "Inspect";
    }
    const head = Number(conversation.lastSeq);
    const button = (label, onclick) => h("button", { onclick, disabled: true }, label);
    view = {
      conversationId,
      from: head,
      to: head,
      head,
      loading: false,
      rows: h("tbody"),
      range: h("span", { class: "muted" }),
      behind: h("span", { role: "status" }),
      state: h("span", { class: "status" }, STREAM_STATES.connecting),
      problem: h("p", { class: "error", role: "alert", hidden: true }),
      older: button("Older", () =>
        showWindow(Math.max(0, view.from - PAGE), view.from - Math.max(0, view.from - PAGE)),
      ),
      newer: button("Newer", () => showWindow(view.to, PAGE)),
      newest: button("Newest", () => showWindow(Math.max(0, view.head - PAGE), PAGE)),
    };
    inspector.replaceChildren(
      h("h2", {}, "Activities of conversation ", h("span", { class: "mono" }, conversationId)),
      h("p", { role: "status" }, "Stream: ", view.state),
      view.problem,
      h("p", { class: "toolbar" }, view.older, view.newer, view.newest, view.range),
      h("p", {}, view.behind),
      h("div", { class: "table-wrap" }, tableOf(["Seq", "Type", "From", "Text", "Time"], view.rows)),
    );
    stream = owner.stream({ conversationId, watermark: String(head), url: streamUrl() });
    const live = view;
    stream.on("state", (state) => {
      live.state.textContent = STREAM_STATES[state] ?? state;
    });
    stream.on("error", (error) => {
      live.problem.textContent = `Stream: ${error.code}: ${describe(error)}`;
      live.problem.hidden = false;
    });
    stream.on("activity", (activity) => {
      if (live === view && activity.conversationId === conversationId) onLive(activity);
    });
    await showWindow(Math.max(0, head - PAGE), PAGE);
  });
}

async function showTenant(tenantId, tenants) {
  const name = tenants.find((t) => t.id === tenantId)?.name;
  heading.textContent = name ? `Conversations of ${name}, newest activity first` : "Conversations";
  stream?.close();
  view = undefined;
  inspector.replaceChildren();
  if (!tenantId) {
    client = undefined;
    list.replaceChildren(
      h("p", {}, "No tenant yet: create one on the ", h("a", { href: "/admin/tenants" }, "Tenants"), " page."),
    );
    return;
  }
  client = asTenant(tenantId);
  const owner = client;
  list.replaceChildren(h("p", {}, "Loading…"));
  const named = await guarded(list, async () => {
    const { channels } = await owner.channels.listChannels({ limit: 100 });
    channelNames = new Map(channels.map((c) => [c.id, c.name]));
    return true;
  });
  if (named && owner === client) await loadConversations(true);
}

more.addEventListener("click", () => loadConversations(false));
addEventListener("pagehide", () => stream?.close());
const app = render(h("p", {}, "Loading the tenants…"));
await guarded(app, async () => {
  const picker = await tenantPicker(showTenant);
  const reload = h("button", { onclick: () => loadConversations(true) }, "Refresh list");
  render(picker.element, heading, h("p", { class: "toolbar" }, reload), list, more, inspector);
});
