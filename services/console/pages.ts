/** The console's pages: each is a shell the browser fills with its module under /admin/assets/. */
export const PAGES = [
  { path: "/admin/tenants", title: "Tenants", script: "tenants.js" },
  { path: "/admin/channels", title: "Channels", script: "channels.js" },
  { path: "/admin/conversations", title: "Conversations", script: "conversations.js" },
  { path: "/admin/deliveries", title: "Deliveries", script: "deliveries.js" },
  { path: "/admin/live", title: "Live feed", script: "live.js" },
  { path: "/admin/audit", title: "Audit log", script: "audit.js" },
] as const;

export type Page = (typeof PAGES)[number];

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

function document(title: string, head: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Converger console</title>
<link rel="stylesheet" href="/admin/assets/console.css">
<link rel="icon" href="data:,">
${head}
</head>
<body>
${body}
</body>
</html>
`;
}

/** The sign-in form (design.md §10: a password field "Admin token", a "Sign in" button); works without script. */
export function signInPage(error?: string): string {
  const alert = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : "";
  return document(
    "Sign in",
    "",
    `<main class="sign-in">
<h1>Converger console</h1>
<form method="post" action="/admin/sign-in">
<input type="text" name="username" value="operator" autocomplete="username" hidden>
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required maxlength="200" autofocus>
${alert}
<button type="submit">Sign in</button>
</form>
<p class="hint">The token is ADMIN_TOKEN, printed once by <code>npm start</code> when it generated one.</p>
</main>`,
  );
}

/** A signed-in page: navigation, sign-out, and the page's module, which reads the stream URL from its meta tag. */
export function appPage(page: Page, streamUrl: string): string {
  const links = PAGES.map(
    (p) => `<a href="${p.path}"${p.path === page.path ? ' aria-current="page"' : ""}>${escapeHtml(p.title)}</a>`,
  ).join("\n");
  return document(
    page.title,
    `<meta name="converger-stream-url" content="${escapeHtml(streamUrl)}">
<script type="module" src="/admin/assets/${page.script}"></script>`,
    `<header>
<a class="brand" href="/admin/tenants">Converger</a>
<nav aria-label="Console">
${links}
</nav>
<form method="post" action="/admin/sign-out"><button type="submit">Sign out</button></form>
</header>
<main>
<h1>${escapeHtml(page.title)}</h1>
<div id="app" aria-live="polite"><p>Loading…</p></div>
</main>`,
  );
}
