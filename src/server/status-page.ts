/**
 * `GET /`: the status page — plain HTML and one small script (`GET /status.js`), no build step, no framework, nothing
 * fetched from elsewhere. It takes one snapshot (`/v1/cache/stats`, `/v1/cache/models`, `/health`) and then follows
 * `/v1/cache/events`: counts, evictions, load times, the last save and the feed come from the events; the loaded-model
 * table is re-read from `/v1/cache/models` (the resident models only) when an event changes a model. With `api_key` the
 * page asks for the key once and keeps it in sessionStorage; the event stream is read with fetch (not EventSource,
 * which cannot send headers), so the key never goes in a URL. Model names are written with textContent only.
 * `HEAD /` stays Ollama's (see ollama.ts): the page is the GET.
 */
import { Hono } from "hono";
import type { AppDeps, AppEnv } from "./context.js";

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Inferno status</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1rem auto; max-width: 70rem; padding: 0 1rem; color: #111; background: #fff; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.5rem; }
  table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ccc; }
  .bar { display: inline-block; width: 8rem; height: .8rem; border: 1px solid #333; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #555; }
  .chart { display: flex; align-items: flex-end; gap: 2px; height: 5rem; border-bottom: 1px solid #333; }
  .chart > span { background: #555; width: .8rem; }
  #feed { max-height: 20rem; overflow: auto; font-family: ui-monospace, monospace; font-size: 13px; padding-left: 1.5rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; } dt { font-weight: 600; }
  :focus { outline: 3px solid #0645ad; outline-offset: 2px; }
  @media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } th, td { border-color: #444; } .bar { border-color: #ccc; } .bar > span, .chart > span { background: #bbb; } }
</style>
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
</dl>
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

/** The page's one script (plain browser JavaScript; data only ever reaches the page through textContent). */
const SCRIPT = `"use strict";
(function () {
  var KEY = "inferno.apiKey";
  var state = { hits: 0, misses: 0, coalesced: 0, evictions: {}, memoryLimit: 0, loads: [], lastSave: null, models: [], warming: false, lastId: null };
  var $ = function (id) { return document.getElementById(id); };
  function text(el, value) { el.textContent = value; return el; }
  function el(tag, value) { return text(document.createElement(tag), value === undefined ? "" : String(value)); }
  function headers() {
    var key = sessionStorage.getItem(KEY);
    return key ? { Authorization: "Bearer " + key } : {};
  }
  function mib(bytes) { return (bytes / 1048576).toFixed(1) + " MiB"; }
  function getJson(path) {
    return fetch(path, { headers: headers() }).then(function (r) {
      if (r.status === 401) { var e = new Error("unauthorized"); e.unauthorized = true; throw e; }
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      return r.json();
    });
  }
  function askKey(message) {
    text($("connection"), message);
    $("key-form").hidden = false;
    $("key").focus();
  }
  $("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value);
    $("key-form").hidden = true;
    start();
  });

  function renderCounts() {
    var total = state.hits + state.misses;
    text($("hit-rate"), total ? (100 * state.hits / total).toFixed(1) + "% (" + state.hits + " hits of " + total + ")" : "no requests yet");
    text($("requests"), state.hits + " hits, " + state.misses + " misses, " + state.coalesced + " joined a load in flight");
    var parts = Object.keys(state.evictions).filter(function (r) { return state.evictions[r] > 0; }).map(function (r) { return r + ": " + state.evictions[r]; });
    text($("evictions"), parts.length ? parts.join(", ") : "none");
    var s = state.lastSave;
    text($("last-save"), !s || !s.at ? "not saved yet" : s.at + (s.ok ? " — ok, " + s.bytes + " bytes in " + s.ms + " ms" : " — failed: " + s.error));
    var used = state.models.reduce(function (sum, m) { return sum + m.memory_bytes; }, 0);
    text($("memory"), mib(used) + (state.memoryLimit ? " of " + mib(state.memoryLimit) + " (max_memory_mb)" : " (no memory limit)"));
  }
  function renderLoads() {
    var chart = $("load-chart"), list = $("load-list");
    chart.replaceChildren(); list.replaceChildren();
    var recent = state.loads.slice(-20);
    var max = recent.reduce(function (m, l) { return Math.max(m, l.ms); }, 1);
    recent.forEach(function (l) {
      var bar = document.createElement("span");
      bar.style.height = Math.max(2, 100 * l.ms / max) + "%";
      bar.title = l.name + ": " + l.ms + " ms";
      chart.appendChild(bar);
    });
    recent.slice(-5).reverse().forEach(function (l) { list.appendChild(el("li", l.name + ": " + Math.round(l.ms) + " ms")); });
    chart.setAttribute("aria-label", recent.length ? "Load times of the last " + recent.length + " loads, longest " + Math.round(max) + " ms" : "No loads yet");
  }
  function until(m) {
    if (m.state !== "ready") return m.state;
    if (m.leases > 0) return "in use";
    if (!m.expires_at) return "never";
    var s = Math.max(0, Math.round((Date.parse(m.expires_at) - Date.now()) / 1000));
    return "in " + s + " s";
  }
  function renderModels() {
    var body = $("models");
    body.replaceChildren();
    state.models.forEach(function (m) {
      var tr = document.createElement("tr");
      tr.dataset.model = m.name;
      var name = el("th", m.name); name.scope = "row"; tr.appendChild(name);
      tr.appendChild(el("td", m.state));
      tr.appendChild(el("td", m.leases));
      var mem = document.createElement("td");
      if (state.memoryLimit) {
        var bar = document.createElement("span"); bar.className = "bar"; bar.setAttribute("aria-hidden", "true");
        var fill = document.createElement("span"); fill.style.width = Math.min(100, 100 * m.memory_bytes / state.memoryLimit) + "%";
        bar.appendChild(fill); mem.appendChild(bar); mem.appendChild(document.createTextNode(" "));
      }
      mem.appendChild(document.createTextNode(mib(m.memory_bytes) + (state.memoryLimit ? " (" + (100 * m.memory_bytes / state.memoryLimit).toFixed(1) + "% of the limit)" : "")));
      tr.appendChild(mem);
      var u = el("td", until(m)); u.className = "until"; tr.appendChild(u);
      tr.appendChild(el("td", m.pinned ? "pinned" : "no"));
      body.appendChild(tr);
    });
    $("no-models").hidden = state.models.length > 0;
    renderCounts();
  }
  setInterval(function () {
    var rows = $("models").querySelectorAll("tr");
    state.models.forEach(function (m, i) { if (rows[i]) text(rows[i].querySelector(".until"), until(m)); });
  }, 1000);

  var refreshTimer = null;
  function refreshModels() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      getJson("/v1/cache/models").then(function (r) { state.models = r.data; renderModels(); }, function () {});
    }, 100);
  }
  function renderWarmup(health) {
    state.warming = health.warmup === "running";
    var p = health.warmup_progress;
    text($("warmup"), state.warming ? "Warming up after start" + (p ? ": " + p.settled + " of " + p.total + " planned models done (" + p.plan.join(", ") + ")" : "…") : "");
  }
  function feed(ev) {
    var line = ev.time.slice(11, 19) + " " + ev.type + (ev.name ? " " + ev.name : "") + (ev.reason ? " (" + ev.reason + ")" : "") + (ev.ms !== undefined && ev.ms !== null ? " " + Math.round(ev.ms) + " ms" : "");
    var list = $("feed");
    list.insertBefore(el("li", line), list.firstChild);
    while (list.children.length > 200) list.removeChild(list.lastChild);
  }
  function onEvent(ev) {
    if (ev.type === "loading" && ev.progress > 0 && ev.progress < 1) { refreshModels(); return; }
    feed(ev);
    switch (ev.type) {
      case "hit": state.hits++; break;
      case "miss": state.misses++; break;
      case "coalesced": state.coalesced++; break;
      case "loaded": state.loads.push({ name: ev.name, ms: ev.ms }); renderLoads(); break;
      case "evicted": case "crashed": state.evictions[ev.reason] = (state.evictions[ev.reason] || 0) + 1; break;
      case "saved": state.lastSave = { at: ev.time, ok: ev.ok, bytes: ev.bytes, ms: ev.ms, error: ev.error }; break;
      case "warmup": getJson("/health").then(renderWarmup, function () {}); break;
    }
    if (ev.name) refreshModels();
    if (state.warming && ev.type === "loaded") getJson("/health").then(renderWarmup, function () {});
    renderCounts();
  }
  function follow() {
    var h = headers();
    h.Accept = "text/event-stream";
    if (state.lastId) h["Last-Event-ID"] = state.lastId;
    fetch("/v1/cache/events", { headers: h }).then(function (r) {
      if (r.status === 401) { askKey("The API key was refused: enter it again."); return; }
      if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
      text($("connection"), "Live: following the cache's events.");
      var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error("the stream ended");
          buffer += decoder.decode(chunk.value, { stream: true });
          var end;
          while ((end = buffer.indexOf("\\n\\n")) >= 0) {
            var frame = buffer.slice(0, end); buffer = buffer.slice(end + 2);
            var data = [];
            frame.split("\\n").forEach(function (line) {
              if (line.indexOf("id:") === 0) state.lastId = line.slice(3).trim();
              else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
            });
            if (data.length) onEvent(JSON.parse(data.join("\\n")));
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      text($("connection"), "Disconnected (" + e.message + "); reconnecting…");
      setTimeout(follow, 2000);
    });
  }
  function start() {
    text($("connection"), "Connecting…");
    Promise.all([getJson("/v1/cache/stats"), getJson("/v1/cache/models"), getJson("/health")]).then(function (r) {
      var stats = r[0];
      state.hits = stats.hits; state.misses = stats.misses; state.coalesced = stats.coalesced || 0;
      state.evictions = stats.evictions; state.memoryLimit = stats.memory_limit_bytes;
      var s = stats.last_save;
      state.lastSave = s.at ? { at: s.at, ok: s.ok, bytes: s.bytes, ms: s.duration_ms, error: s.error } : null;
      state.models = r[1].data;
      state.models.forEach(function (m) { if (m.load_ms !== null) state.loads.push({ name: m.name, ms: m.load_ms }); });
      renderWarmup(r[2]); renderModels(); renderLoads();
      follow();
    }, function (e) {
      if (e.unauthorized) askKey(sessionStorage.getItem(KEY) ? "The API key was refused: enter it again." : "This server needs its API key.");
      else { text($("connection"), "Cannot read the server's state (" + e.message + "); retrying…"); setTimeout(start, 2000); }
    });
  }
  start();
})();
`;

export function statusPageRoutes(_deps: AppDeps): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/", (c) => c.html(PAGE, 200, { "Cache-Control": "no-cache" }));
  routes.get("/status.js", (c) =>
    c.body(SCRIPT, 200, { "Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache" }),
  );
  return routes;
}
