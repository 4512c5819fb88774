// Deliveries: what needs action first, the counts (live), then one tenant's deliveries with filters kept in the URL.
import {
  asTenant,
  Code,
  ConnectError,
  describe,
  formatTime,
  guarded,
  h,
  operator,
  render,
  tenantPicker,
} from "./console.js";
import { deliveryList } from "./delivery-list.js";

const n = (value) => Number(value ?? 0).toLocaleString();
const present = (...nodes) => nodes.filter(Boolean);
const tenantNames = new Map();
const nameOf = (tenantId) => tenantNames.get(tenantId) ?? tenantId;

const liveState = h("p", { class: "status", role: "status" }, "Connecting…");
const attention = h("section", { "aria-labelledby": "attention-h" });
const counts = h("section", { "aria-labelledby": "counts-h" });
const pipeline = h("section", { "aria-labelledby": "pipeline-h" });
const listArea = h("section", { "aria-labelledby": "list-h" });

function tile(label, value, note) {
  return h(
    "div",
    {},
    h("strong", { "data-count": label }, n(value)),
    label,
    note ? h("span", { class: "muted" }, ` ${note}`) : null,
  );
}

function table(headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headers.map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}

function showStats(stats) {
  const a = stats.attention ?? {};
  attention.replaceChildren(
    ...present(
      h("h2", { id: "attention-h" }, "Needs action"),
      h(
        "div",
        { class: "counts" },
        tile("failed", a.failed, "(dead letters of delivery: retry them)"),
        tile("overdue", a.overdue, "(due over a minute ago)"),
        tile("blocked lines", a.blockedLineCount),
        tile("open circuits", a.openCircuits?.length ?? 0),
        tile("processing dead letters", a.deadLetters),
      ),
      a.blockedLines?.length
        ? h(
            "div",
            {},
            h("h3", {}, "Lines blocked behind a failing head"),
            table(
              ["Tenant", "Channel", "Conversation", "Head tries", "Last error", "Next try", "Waiting"],
              a.blockedLines.map((line) =>
                h(
                  "tr",
                  {},
                  h("td", {}, nameOf(line.tenantId)),
                  h("td", { class: "mono" }, line.channelId),
                  h("td", { class: "mono" }, line.conversationId),
                  h("td", { class: "num" }, String(line.attempts)),
                  h("td", {}, line.lastError ?? "—"),
                  h("td", {}, formatTime(line.nextAttemptAt)),
                  h("td", {}, `${n(line.waiting)} waiting behind this`),
                ),
              ),
            ),
          )
        : null,
      a.openCircuits?.length
        ? h(
            "div",
            {},
            h("h3", {}, "Open circuits (no try is made until they close)"),
            table(
              ["Tenant", "Channel", "Failures in a row", "Open until", "State"],
              a.openCircuits.map((c) =>
                h(
                  "tr",
                  {},
                  h("td", {}, nameOf(c.tenantId)),
                  h("td", { class: "mono" }, c.channelId),
                  h("td", { class: "num" }, String(c.consecutiveFailures)),
                  h("td", {}, formatTime(c.openedUntil)),
                  h("td", {}, c.halfOpen ? "half-open (probing)" : "open"),
                ),
              ),
            ),
          )
        : null,
    ),
  );
  const t = stats.total ?? {};
  counts.replaceChildren(
    h("h2", { id: "counts-h" }, "Counts"),
    h("div", { class: "counts" }, tile("pending", t.pending), tile("delivered", t.delivered), tile("failed", t.failed)),
    h("h3", {}, "Per tenant"),
    table(
      ["Tenant", "Pending", "Delivered", "Failed"],
      (stats.tenants ?? []).map((row) =>
        h(
          "tr",
          { "data-tenant": row.tenantId },
          h("td", {}, h("a", { href: `?tenant=${row.tenantId}` }, nameOf(row.tenantId))),
          h("td", { class: "num" }, n(row.counts?.pending)),
          h("td", { class: "num" }, n(row.counts?.delivered)),
          h("td", { class: "num" }, n(row.counts?.failed)),
        ),
      ),
    ),
    h("h3", {}, "Per channel"),
    table(
      ["Tenant", "Channel", "Pending", "Delivered", "Failed"],
      (stats.channels ?? []).map((row) =>
        h(
          "tr",
          {},
          h("td", {}, nameOf(row.tenantId)),
          h("td", { class: "mono" }, row.channelId),
          h("td", { class: "num" }, n(row.counts?.pending)),
          h("td", { class: "num" }, n(row.counts?.delivered)),
          h("td", { class: "num" }, n(row.counts?.failed)),
        ),
      ),
    ),
  );
}

/** Outbox backlog and processing dead letters: the pipeline before deliveries exist. */
async function showPipeline() {
  await guarded(pipeline, async () => {
    const [outbox, dead] = await Promise.all([
      operator.conversations.getOutboxStats({}),
      operator.delivery.listProcessingDeadLetters({ limit: 20 }),
    ]);
    pipeline.replaceChildren(
      h("h2", { id: "pipeline-h" }, "Pipeline"),
      h(
        "div",
        { class: "counts" },
        tile("outbox backlog", outbox.backlog),
        h(
          "div",
          {},
          h("strong", {}, outbox.backlog > 0n ? `${Math.round(outbox.oldestAgeSeconds)} s` : "—"),
          "oldest unpublished",
        ),
        h("div", {}, h("strong", {}, "not reported"), "consumer lag"),
      ),
      dead.deadLetters.length
        ? table(
            ["Consumer", "Topic", "Tenant", "Error", "Tries", "When", ""],
            dead.deadLetters.map((d) =>
              h(
                "tr",
                {},
                h("td", {}, d.consumer),
                h("td", {}, d.topic),
                h("td", {}, nameOf(d.tenantId)),
                h("td", {}, d.error),
                h("td", { class: "num" }, String(d.attempts)),
                h("td", {}, formatTime(d.createdAt)),
                h(
                  "td",
                  {},
                  h(
                    "button",
                    {
                      onclick: () =>
                        guarded(pipeline, async () => {
                          await operator.delivery.replayProcessingDeadLetter({ id: d.id });
                          await showPipeline();
                        }),
                    },
                    "Replay",
                  ),
                ),
              ),
            ),
          )
        : h("p", {}, "No processing dead letters."),
    );
  });
}

/** Server push of the statistics, paused while the tab is hidden (nobody looks, nothing is computed). */
function watchStats() {
  let abort;
  const start = async () => {
    abort = new AbortController();
    liveState.textContent = "Live: counts update by themselves.";
    try {
      for await (const stats of operator.delivery.watchDeliveryStats({ stats: {} }, { signal: abort.signal })) {
        showStats(stats);
      }
    } catch (error) {
      if (abort.signal.aborted) return;
      if (error instanceof ConnectError && error.code === Code.Unauthenticated) {
        liveState.replaceChildren("Your session has ended: ", h("a", { href: "/admin/" }, "sign in again"), ".");
        return;
      }
      liveState.textContent = `Live counts stopped: ${describe(error)}. Reconnecting…`;
      setTimeout(() => document.visibilityState === "visible" && start(), 3000);
    }
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      abort?.abort();
      liveState.textContent = "Paused while the tab is hidden.";
    } else void start();
  });
  void start();
}

const picker = await tenantPicker(
  (tenantId, tenants) => {
    for (const t of tenants) tenantNames.set(t.id, t.name);
    if (!tenantId) return listArea.replaceChildren(h("p", {}, "Choose a tenant to see its deliveries."));
    listArea.replaceChildren(
      h("h2", { id: "list-h" }, `Deliveries of ${nameOf(tenantId)}`),
      deliveryList(asTenant(tenantId)),
    );
  },
  { allowAll: true },
);
render(liveState, attention, counts, pipeline, h("h2", {}, "Deliveries"), picker.element, listArea);
watchStats();
await showPipeline();
