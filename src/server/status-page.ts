/**
 * `GET /`: the status page — plain HTML and one small script (`GET /status.js`: status-page/script.ts, TypeScript
 * bundled into status-page/script.generated.ts), no framework, nothing fetched from elsewhere. It takes one snapshot
 * (`/v1/cache/stats`, `/v1/cache/models`, `/health`) and then follows `/v1/cache/events`: counts, evictions, load times, the last save and the feed come from the events; the loaded-model
 * table is re-read from `/v1/cache/models` (the resident models only) when an event changes a model. In a fleet
 * (the statistics carry a `fleet` member) the page also shows the nodes and where each model is, from `GET /v1/fleet`,
 * read every two seconds and after each event that changes a model; on a single node that section stays hidden. With `api_key` the
 * page asks for the key once and keeps it in sessionStorage; the event stream is read with fetch (not EventSource,
 * which cannot send headers), so the key never goes in a URL. Model names are written with textContent only.
 * `HEAD /` stays Ollama's (see ollama.ts): the page is the GET.
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./context.js";
import { STATUS_SCRIPT } from "./status-page/script.generated.js";

const STYLE = `
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1rem auto; max-width: 70rem; padding: 0 1rem; color: #111; background: #fff; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; } h3 { font-size: 1rem; }
  table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ccc; }
  .bar { display: inline-block; width: 8rem; height: .8rem; border: 1px solid #333; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #555; }
  .chart { display: flex; align-items: flex-end; gap: 2px; height: 5rem; border-bottom: 1px solid #333; }
  .chart > span { background: #555; width: .8rem; }
  #feed { max-height: 20rem; overflow: auto; font-family: ui-monospace, monospace; font-size: 13px; padding-left: 1.5rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; } dt { font-weight: 600; }
  :focus { outline: 3px solid #0645ad; outline-offset: 2px; }
  @media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } th, td { border-color: #444; } .bar { border-color: #ccc; } .bar > span, .chart > span { background: #bbb; } }
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inferno status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
<h1>Inferno status</h1>
<p id="connection" role="status" aria-live="polite">Connecting…</p>
<form id="key-form" hidden>
  <label for="key">This server needs its API key:</label>
  <input id="key" type="password" autocomplete="off" required>
  <button type="submit">Connect</button>
  <span>(kept in this browser tab's session only)</span>
</form>
<p id="warmup" role="status" aria-live="polite"></p>
<h2>Cache</h2>
<dl>
  <dt>Hit rate</dt><dd id="hit-rate">–</dd>
  <dt>Requests</dt><dd id="requests">–</dd>
  <dt>Memory</dt><dd id="memory">–</dd>
  <dt>Evictions</dt><dd id="evictions">–</dd>
  <dt>Last save</dt><dd id="last-save">–</dd>
  <dt>Prompt cache</dt><dd id="prompt-cache">–</dd>
</dl>
<section id="fleet" hidden>
<h2>Fleet</h2>
<p id="fleet-summary" role="status" aria-live="polite"></p>
<table>
  <thead><tr><th scope="col">Node</th><th scope="col">Health</th><th scope="col">Memory</th><th scope="col">Models</th><th scope="col">Req/min</th><th scope="col">Draining</th></tr></thead>
  <tbody id="fleet-nodes"></tbody>
</table>
<h3>Where each model is</h3>
<table>
  <thead><tr><th scope="col">Model</th><th scope="col">Copies</th><th scope="col">Requests (fleet)</th></tr></thead>
  <tbody id="fleet-models"></tbody>
</table>
</section>
<h2>Loaded models</h2>
<table>
  <thead><tr><th scope="col">Model</th><th scope="col">State</th><th scope="col">Leases</th><th scope="col">Memory</th><th scope="col">Unloads</th><th scope="col">Pinned</th></tr></thead>
  <tbody id="models"></tbody>
</table>
<p id="no-models">No model is loaded.</p>
<h2>Recent load times</h2>
<div id="load-chart" class="chart" role="img" aria-label="No loads yet"></div>
<ol id="load-list"></ol>
<h2>Events</h2>
<ol id="feed" aria-live="off" tabindex="0" aria-label="Live event feed, newest first"></ol>
<script src="/status.js"></script>
</body>
</html>
`;

/**
 * What the page may do, enforced by the browser: its one script and its own routes, its one style block (by hash), no
 * frames around it and no form posting anywhere, so even a model name that got past textContent could load nothing
 * and send nothing elsewhere. The icon is an empty `data:` one, so a browser asks for no `/favicon.ico` (a 404 in the
 * console of every visit).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "connect-src 'self'",
  `style-src 'sha256-${createHash("sha256").update(STYLE).digest("base64")}'`,
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export function statusPageRoutes(deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  // With api_key the page asks for the key before its first read instead of learning it from two 401s (each a
  // console error): the page itself is open, and a 401 tells anyone as much.
  const page =
    deps.runtime.config.server.api_key === "" ? PAGE : PAGE.replace("<body>", '<body data-api-key="required">');
  routes.get("/", (c) =>
    c.html(page, 200, { "Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY }),
  );
  routes.get("/status.js", (c) =>
    c.body(STATUS_SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" }),
  );
  return routes;
}
