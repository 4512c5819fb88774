// Live feed (seed 002): one tenant's event feed, read and written as that tenant would, through the
// same /v1/events RPCs and /ws?tenant= stream as an integrator, so the isolation it shows is the product's.
import {
  asTenant,
  describe,
  field,
  formatTime,
  guarded,
  h,
  render,
  showError,
  streamUrl,
  tenantPicker,
} from "./console.js";

const MAX_MESSAGE = 500;
const NEW_FOR_MS = 10_000;
// Enough to watch a burst; older events stay readable through GET /v1/events.
const KEEP_SHOWN = 200;
const STATES = { connecting: "Connecting…", open: "Connected", reconnecting: "Reconnecting…", closed: "Closed" };

const status = h("strong", { class: "status", role: "status" }, "Not connected");
const streamProblem = h("p", { class: "error", role: "alert", hidden: true });
const feed = h("ol", { class: "feed", "aria-label": "Events, newest first" });
const feedState = h("div", { "aria-live": "polite" });
const message = h("input", { name: "message", autocomplete: "off", size: 40, "data-field": "message" });
const postButton = h("button", { type: "submit", disabled: true }, "Post event");
const formError = h("p", { class: "error form-error", role: "alert", hidden: true });
const postForm = h("form", { class: "inline", onsubmit: post }, field("Message", message), postButton, formError);

/** The feed of one tenant: its client, its stream, the events shown (by id). Replaced on each tenant change. */
let current;

const timestampMs = (ts) => (ts ? Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6) : 0);

function eventItem(event, fresh) {
  const at = timestampMs(event.timestamp);
  const item = h(
    "li",
    { class: fresh ? "new" : undefined, "data-at": String(at) },
    h("time", { dateTime: new Date(at).toISOString() }, formatTime(event.timestamp)),
    " — ",
    h("span", {}, event.message),
  );
  // The mark is the words " (new)" (console.css), so it reads without colour too.
  if (fresh) setTimeout(() => item.classList.remove("new"), NEW_FOR_MS);
  return item;
}

/** Puts an event in its place (newest first) unless it is shown already; live and listed copies meet here. */
function show(session, event, fresh) {
  if (session !== current || session.shown.has(event.id)) return;
  const item = eventItem(event, fresh);
  session.shown.set(event.id, item);
  const at = timestampMs(event.timestamp);
  const older = [...feed.children].find((li) => Number(li.dataset.at) < at);
  feed.insertBefore(item, older ?? null);
  while (feed.children.length > KEEP_SHOWN) feed.lastElementChild.remove();
  feedState.replaceChildren();
}

/** The events stored so far; run on every (re)connect too, since the tenant feed has no replay of what was missed. */
async function loadRecent(session) {
  await guarded(feedState, async () => {
    const { events } = await session.cv.events.listEvents({ limit: 50 });
    if (session !== current) return;
    // After the first load, anything not shown yet arrived while the stream was away: it is new to the reader.
    const fresh = session.loaded;
    session.loaded = true;
    for (const event of [...events].reverse()) show(session, event, fresh);
    if (feed.children.length === 0) feedState.replaceChildren(h("p", { class: "muted" }, "No event yet."));
  });
}

function follow(tenantId) {
  current?.stream.close();
  feed.replaceChildren();
  feedState.replaceChildren();
  streamProblem.hidden = true;
  clearErrors();
  postButton.disabled = !tenantId;
  if (!tenantId) {
    current = undefined;
    status.textContent = "Not connected";
    feedState.replaceChildren(h("p", {}, "No tenant yet: create one on the Tenants page."));
    return;
  }
  const cv = asTenant(tenantId);
  const session = { tenantId, cv, shown: new Map(), loaded: false };
  session.stream = cv.stream({ tenantId, url: streamUrl() });
  current = session;
  status.textContent = STATES[session.stream.state] ?? session.stream.state;
  session.stream.on("state", (state) => {
    if (session !== current) return;
    status.textContent = STATES[state] ?? state;
    if (state === "open") {
      streamProblem.hidden = true;
      void loadRecent(session);
    }
  });
  session.stream.on("event", (event) => show(session, event, true));
  session.stream.on("error", (error) => {
    if (session !== current) return;
    streamProblem.textContent = `The stream reported: ${describe(error)}`;
    streamProblem.hidden = false;
  });
}

function checkMessage(text) {
  const length = [...text].length;
  if (length >= 1 && length <= MAX_MESSAGE) return undefined;
  return `Message must be 1–${MAX_MESSAGE} characters (it has ${length}).`;
}

function clearErrors() {
  for (const hint of postForm.querySelectorAll(".field-error, .form-error")) hint.hidden = true;
}

async function post(event) {
  event.preventDefault();
  const session = current;
  if (!session) return;
  const invalid = checkMessage(message.value);
  if (invalid) {
    showError(postForm, new Error(`message: ${invalid}`));
    message.focus();
    return;
  }
  clearErrors();
  postButton.disabled = true;
  try {
    await session.cv.events.createEvent({ tenantId: session.tenantId, message: message.value });
    message.value = "";
  } catch (error) {
    showError(postForm, error);
    // A refusal that names no field (an inactive tenant, a rate limit) still says the event was not stored.
    if (!formError.hidden) formError.textContent = `Not posted: ${formError.textContent}`;
  } finally {
    postButton.disabled = false;
    message.focus();
  }
}

const problem = h("div");
const picker = await guarded(problem, () => tenantPicker(follow));
render(
  problem,
  h(
    "div",
    { class: "toolbar" },
    picker ? picker.element : "",
    // A div (no margin), so the toolbar's bottom alignment puts the status level with the select.
    h("div", {}, h("span", {}, "Stream: "), status),
  ),
  streamProblem,
  postForm,
  h("h2", {}, "Events"),
  h(
    "p",
    { class: "muted" },
    `Newest first. Events that arrived in the last ${NEW_FOR_MS / 1000} seconds read “(new)”.`,
  ),
  feedState,
  feed,
);
addEventListener("pagehide", () => current?.stream.close());
// A page restored from the back-forward cache had its stream closed on the way out.
addEventListener("pageshow", (event) => event.persisted && picker && follow(picker.select.value));
