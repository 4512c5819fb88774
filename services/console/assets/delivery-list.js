// One tenant's deliveries: status and channel filters (kept in the URL), Retry, bulk retry with its count first,
// and each delivery's attempt timeline.
import { formatTime, guarded, h } from "./console.js";

const STATUS = { 1: "pending", 2: "delivered", 3: "failed" };
const STATUS_VALUE = { pending: 1, delivered: 2, failed: 3 };
const KIND = { 1: "try", 2: "provider status", 3: "retry requested" };
const OUTCOME = { 1: "delivered", 2: "will retry", 3: "failed" };

function param(name) {
  return new URLSearchParams(location.search).get(name) ?? "";
}

function setParam(name, value) {
  const next = new URLSearchParams(location.search);
  if (value) next.set(name, value);
  else next.delete(name);
  history.replaceState(null, "", `?${next}`);
}

function timeline(attempts) {
  if (attempts.length === 0) return h("p", {}, "No try recorded yet.");
  return h(
    "ol",
    { class: "timeline" },
    attempts.map((a) =>
      h(
        "li",
        {},
        `${formatTime(a.startedAt)} — ${KIND[a.kind] ?? "entry"}`,
        a.attempt ? ` #${a.attempt}` : "",
        a.outcome ? `: ${OUTCOME[a.outcome]}` : "",
        a.httpStatus ? ` (HTTP ${a.httpStatus})` : "",
        a.providerStatus ? ` (provider: ${a.providerStatus})` : "",
        a.durationMs ? `, ${a.durationMs} ms` : "",
        a.error ? h("div", { class: "error" }, a.error) : null,
      ),
    ),
  );
}

export function deliveryList(cv) {
  const status = h(
    "select",
    { id: "status-filter" },
    h("option", { value: "" }, "Any status"),
    Object.keys(STATUS_VALUE).map((s) => h("option", { value: s }, s)),
  );
  status.value = param("status");
  const channel = h("select", { id: "channel-filter" }, h("option", { value: "" }, "Any channel"));
  const message = h("div", { role: "status", "aria-live": "polite" });
  const rows = h("tbody");
  const channelNames = new Map();

  const filter = () => ({
    ...(status.value ? { status: STATUS_VALUE[status.value] } : {}),
    ...(channel.value ? { channelId: channel.value } : {}),
  });

  async function load() {
    await guarded(message, async () => {
      const { deliveries } = await cv.delivery.listDeliveries({ ...filter(), limit: 50 });
      rows.replaceChildren(
        ...(deliveries.length
          ? deliveries.flatMap(row)
          : [h("tr", {}, h("td", { colSpan: 7 }, "No delivery matches these filters."))]),
      );
    });
  }

  function row(d) {
    const details = h("tr", { hidden: true }, h("td", { colSpan: 7 }));
    const retry = h(
      "button",
      {
        onclick: () =>
          guarded(message, async () => {
            await cv.delivery.retryDelivery({ id: d.id });
            message.replaceChildren(h("p", {}, `Delivery ${d.id.slice(0, 8)} is scheduled for another try now.`));
            await load();
          }),
      },
      "Retry",
    );
    const attempts = h(
      "button",
      {
        "aria-expanded": "false",
        onclick: async () => {
          const open = details.hidden;
          details.hidden = !open;
          attempts.setAttribute("aria-expanded", String(open));
          if (open) {
            const cell = details.firstChild;
            await guarded(cell, async () =>
              cell.replaceChildren(timeline((await cv.delivery.listDeliveryAttempts({ deliveryId: d.id })).attempts)),
            );
          }
        },
      },
      "Attempts",
    );
    const line = h(
      "tr",
      { "data-delivery": d.id },
      h("td", { class: "mono" }, d.id.slice(0, 8)),
      h("td", {}, channelNames.get(d.channelId) ?? d.channelId),
      h("td", { class: "status" }, STATUS[d.status] ?? "unknown"),
      h("td", { class: "num" }, String(d.attempts)),
      h("td", {}, d.lastError ?? "—"),
      h("td", {}, d.status === 1 ? formatTime(d.nextAttemptAt) : formatTime(d.deliveredAt ?? d.updatedAt)),
      h("td", {}, h("span", { class: "toolbar" }, d.status === 2 ? null : retry, attempts)),
    );
    return [line, details];
  }

  const bulk = h("div", { class: "toolbar" });
  function bulkStart() {
    bulk.replaceChildren(
      h(
        "button",
        {
          onclick: () =>
            guarded(message, async () => {
              const wanted = status.value === "pending" ? 1 : 3;
              const { count, hasMore } = await cv.delivery.retryDeliveries({
                ...filter(),
                status: wanted,
                dryRun: true,
              });
              if (count === 0)
                return bulk.replaceChildren(h("span", {}, "Nothing to retry with these filters. "), again());
              bulk.replaceChildren(
                h(
                  "span",
                  { role: "status" },
                  `This will retry ${count}${hasMore ? "+" : ""} ${STATUS[wanted]} deliveries.`,
                ),
                h(
                  "button",
                  {
                    onclick: () =>
                      guarded(message, async () => {
                        const done = await cv.delivery.retryDeliveries({ ...filter(), status: wanted });
                        bulk.replaceChildren(
                          h("span", { role: "status" }, `${done.count} deliveries scheduled for another try.`),
                          again(),
                        );
                        await load();
                      }),
                  },
                  `Retry ${count} deliveries`,
                ),
                h("button", { onclick: bulkStart }, "Cancel"),
              );
            }),
        },
        "Retry all matching…",
      ),
    );
  }
  const again = () => h("button", { onclick: bulkStart }, "Start over");
  bulkStart();

  for (const [control, name] of [
    [status, "status"],
    [channel, "channel"],
  ]) {
    control.addEventListener("change", () => {
      setParam(name, control.value);
      bulkStart();
      void load();
    });
  }

  void guarded(message, async () => {
    const { channels } = await cv.channels.listChannels({ limit: 100 });
    for (const c of channels) {
      channelNames.set(c.id, c.name);
      channel.append(h("option", { value: c.id }, c.name));
    }
    channel.value = param("channel");
    await load();
  });

  return h(
    "div",
    {},
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "field" }, h("label", { for: "status-filter" }, "Status"), status),
      h("div", { class: "field" }, h("label", { for: "channel-filter" }, "Channel"), channel),
      h("button", { onclick: load }, "Refresh"),
    ),
    bulk,
    message,
    h(
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
            ["Delivery", "Channel", "Status", "Tries", "Last error", "When", "Actions"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        rows,
      ),
    ),
  );
}
