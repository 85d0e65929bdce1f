/**
 * The status page's script (served as `GET /status.js`), a browser program: type-checked against the DOM and the
 * server's own response types by `npm run typecheck` (this folder's tsconfig.json), bundled by esbuild into
 * `script.generated.ts` (`npm run docs`, which scripts/status-page.ts serves; `npm run docs:check` and
 * test/server/status-script.test.ts fail when it is stale), so the installed package serves it without a build step or dev dependencies. Data reaches the page through textContent
 * only.
 */
import { promptCacheText } from "../../cache/prompt-figures.js";
import type { CacheStats, LoadedModelInfo, PromptCacheStats, WarmupProgress } from "../../cache/types.js";
import { formatBytes } from "../../units.js";
import type { PublicEvent } from "../events.js";
import type { FleetStats, FleetView } from "../ports.js";

/** What `/health` answers, as far as the page reads it. */
interface Health {
  warmup: string;
  warmup_progress: (WarmupProgress & { total: number }) | null;
}

/** The facts of a cache event the page reads (see `publicEvent`). */
interface PageEvent extends PublicEvent {
  name?: string;
  reason?: string;
  ms?: number | null;
  progress?: number;
  ok?: boolean;
  bytes?: number;
  error?: string;
}

interface PageSave {
  at: string | null;
  ok: boolean | null;
  bytes: number | null;
  ms: number | null;
  error: string | null;
}

class Unauthorized extends Error {}

const KEY = "inferno.apiKey";
const state = {
  hits: 0,
  misses: 0,
  coalesced: 0,
  evictions: {} as Record<string, number>,
  memoryLimit: 0,
  loads: [] as Array<{ name: string; ms: number }>,
  lastSave: null as PageSave | null,
  prompt: null as PromptCacheStats | null,
  models: [] as LoadedModelInfo[],
  warming: false,
  lastId: null as string | null,
  /** Whether this node is in a fleet (its statistics carry a `fleet` member). */
  inFleet: false,
};

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function text<T extends Node>(node: T, value: string): T {
  node.textContent = value;
  return node;
}

function el(tag: string, value?: unknown): HTMLElement {
  return text(document.createElement(tag), value === undefined ? "" : String(value));
}

function headers(): Record<string, string> {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: headers() });
  if (response.status === 401) throw new Unauthorized("unauthorized");
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

function askKey(message: string): void {
  text($("connection"), message);
  $("key-form").hidden = false;
  $("key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $<HTMLInputElement>("key").value);
  $("key-form").hidden = true;
  start();
});

function percentOfLimit(bytes: number): number {
  return (100 * bytes) / state.memoryLimit;
}

function renderCounts(): void {
  const total = state.hits + state.misses;
  text(
    $("hit-rate"),
    total ? `${((100 * state.hits) / total).toFixed(1)}% (${state.hits} hits of ${total})` : "no requests yet",
  );
  text($("requests"), `${state.hits} hits, ${state.misses} misses, ${state.coalesced} joined a load in flight`);
  const parts = Object.keys(state.evictions)
    .filter((reason) => (state.evictions[reason] ?? 0) > 0)
    .map((reason) => `${reason}: ${state.evictions[reason]}`);
  text($("evictions"), parts.length ? parts.join(", ") : "none");
  const save = state.lastSave;
  text(
    $("last-save"),
    !save || !save.at
      ? "not saved yet"
      : save.at + (save.ok ? ` — ok, ${save.bytes} bytes in ${save.ms} ms` : ` — failed: ${save.error}`),
  );
  text($("prompt-cache"), state.prompt ? promptCacheText(state.prompt) : "–");
  const used = state.models.reduce((sum, m) => sum + m.memory_bytes, 0);
  text(
    $("memory"),
    formatBytes(used) +
      (state.memoryLimit ? ` of ${formatBytes(state.memoryLimit)} (max_memory_mb)` : " (no memory limit)"),
  );
}

function renderLoads(): void {
  const chart = $("load-chart");
  const list = $("load-list");
  chart.replaceChildren();
  list.replaceChildren();
  const recent = state.loads.slice(-20);
  const max = recent.reduce((m, load) => Math.max(m, load.ms), 1);
  for (const load of recent) {
    const bar = document.createElement("span");
    bar.style.height = `${Math.max(2, (100 * load.ms) / max)}%`;
    bar.title = `${load.name}: ${load.ms} ms`;
    chart.appendChild(bar);
  }
  for (const load of recent.slice(-5).reverse()) list.appendChild(el("li", `${load.name}: ${Math.round(load.ms)} ms`));
  chart.setAttribute(
    "aria-label",
    recent.length ? `Load times of the last ${recent.length} loads, longest ${Math.round(max)} ms` : "No loads yet",
  );
}

function until(m: LoadedModelInfo): string {
  if (m.state !== "ready") return m.state;
  if (m.leases > 0) return "in use";
  if (!m.expires_at) return "never";
  return `in ${Math.max(0, Math.round((Date.parse(m.expires_at) - Date.now()) / 1000))} s`;
}

/** A table row headed by `heading` (a row header), with `data-<key>` set, then one text cell per value. */
function tableRow(key: "model" | "node", id: string, heading: string, cells: unknown[] = []): HTMLTableRowElement {
  const row = document.createElement("tr");
  row.dataset[key] = id;
  const name = el("th", heading) as HTMLTableCellElement;
  name.scope = "row";
  row.appendChild(name);
  for (const value of cells) row.appendChild(el("td", value));
  return row;
}

function renderModels(): void {
  const body = $("models");
  body.replaceChildren();
  for (const m of state.models) {
    const row = tableRow("model", m.name, m.name, [m.state, m.leases]);
    const memory = document.createElement("td");
    if (state.memoryLimit) {
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.style.width = `${Math.min(100, percentOfLimit(m.memory_bytes))}%`;
      bar.appendChild(fill);
      memory.appendChild(bar);
      memory.appendChild(document.createTextNode(" "));
    }
    const share = state.memoryLimit ? ` (${percentOfLimit(m.memory_bytes).toFixed(1)}% of the limit)` : "";
    memory.appendChild(document.createTextNode(formatBytes(m.memory_bytes) + share));
    row.appendChild(memory);
    const expiry = el("td", until(m));
    expiry.className = "until";
    row.appendChild(expiry);
    row.appendChild(el("td", m.pinned ? "pinned" : "no"));
    body.appendChild(row);
  }
  $("no-models").hidden = state.models.length > 0;
  renderCounts();
}

/** A node's health as the fleet sees it: its lease, its draining flag, its loads in flight. */
function health(n: FleetView["nodes"][number]): string {
  if (!n.alive) return "lost (no heartbeat)";
  return n.loading > 0 ? `alive, ${n.loading} loading` : "alive";
}

function renderFleet(view: FleetView): void {
  $("fleet").hidden = false;
  const alive = view.nodes.filter((n) => n.alive).length;
  const leader = view.leader.node ? `leader ${view.leader.node} (epoch ${view.leader.epoch})` : "no leader";
  const plan = view.plan ? `; warm-up plan: ${view.plan.settled} of ${view.plan.total} settled` : "";
  text(
    $("fleet-summary"),
    `Fleet ${view.fleet} on ${view.redis}: ${alive} of ${view.nodes.length} node(s) alive, ${leader}${plan}. This is ${view.node}.`,
  );
  const nodes = $("fleet-nodes");
  nodes.replaceChildren();
  for (const n of view.nodes) {
    const capacity = n.memory_capacity_bytes ? ` of ${formatBytes(n.memory_capacity_bytes)}` : "";
    nodes.appendChild(
      tableRow("node", n.id, n.id === view.node ? `${n.id} (this node)` : n.id, [
        health(n),
        formatBytes(n.memory_used_bytes) + capacity,
        `${n.models_loaded} of ${n.model_capacity} slots`,
        n.rpm,
        n.draining ? "draining" : "no",
      ]),
    );
  }
  const models = $("fleet-models");
  models.replaceChildren();
  for (const m of view.models) {
    const copies = m.copies.length ? m.copies.map((c) => `${c.node} (${c.state})`).join(", ") : "none";
    models.appendChild(tableRow("model", m.name, m.name, [copies, m.requests]));
  }
}

let fleetTimer: ReturnType<typeof setTimeout> | null = null;
/** `GET /v1/fleet` again (at most one read in flight; a burst of events makes one). */
function rereadFleet(): void {
  if (!state.inFleet || fleetTimer) return;
  fleetTimer = setTimeout(() => {
    getJson<FleetView>("/v1/fleet").then(
      (view) => {
        fleetTimer = null;
        renderFleet(view);
      },
      (error: Error) => {
        fleetTimer = null;
        text($("fleet-summary"), `The fleet cannot be read now (${error.message}); this node serves on.`);
      },
    );
  }, 100);
}
setInterval(rereadFleet, 2000);

setInterval(() => {
  const rows = $("models").querySelectorAll("tr");
  state.models.forEach((m, i) => {
    const cell = rows[i]?.querySelector(".until");
    if (cell) text(cell, until(m));
  });
}, 1000);

let refreshTimer: ReturnType<typeof setTimeout> | null = null;
function refreshModels(): void {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    getJson<{ data: LoadedModelInfo[] }>("/v1/cache/models").then(
      (r) => {
        state.models = r.data;
        renderModels();
      },
      () => {},
    );
  }, 100);
}

function renderWarmup(health: Health): void {
  state.warming = health.warmup === "running";
  const p = health.warmup_progress;
  const progress = p ? `: ${p.settled} of ${p.total} planned models done (${p.plan.join(", ")})` : "…";
  text($("warmup"), state.warming ? `Warming up after start${progress}` : "");
}

function rereadWarmup(): void {
  getJson<Health>("/health").then(renderWarmup, () => {});
}

function feed(event: PageEvent): void {
  const line =
    `${event.time.slice(11, 19)} ${event.type}` +
    (event.name ? ` ${event.name}` : "") +
    (event.reason ? ` (${event.reason})` : "") +
    (event.ms !== undefined && event.ms !== null ? ` ${Math.round(event.ms)} ms` : "");
  const list = $("feed");
  list.insertBefore(el("li", line), list.firstChild);
  while (list.children.length > 200) list.lastChild?.remove();
}

function onEvent(event: PageEvent): void {
  // A load's start is the feed's line (its end is `loaded`); the progress between, 1 included, only moves the table.
  if (event.type === "loading" && event.progress !== undefined && event.progress > 0) {
    refreshModels();
    return;
  }
  feed(event);
  switch (event.type) {
    case "hit":
      state.hits++;
      break;
    case "miss":
      state.misses++;
      break;
    case "coalesced":
      state.coalesced++;
      break;
    case "loaded":
      state.loads.push({ name: event.name ?? "", ms: event.ms ?? 0 });
      renderLoads();
      break;
    case "evicted":
    case "crashed": {
      const reason = event.reason ?? "";
      state.evictions[reason] = (state.evictions[reason] ?? 0) + 1;
      break;
    }
    case "saved":
      state.lastSave = {
        at: event.time,
        ok: event.ok ?? null,
        bytes: event.bytes ?? null,
        ms: event.ms ?? null,
        error: event.error ?? null,
      };
      break;
    case "warmup":
      rereadWarmup();
      break;
    case "prefix_saved":
    case "prefix_restored":
    case "prefix_evicted":
    case "prefix_quarantined":
      rereadPromptCache();
      break;
  }
  if (event.name) {
    refreshModels();
    rereadFleet();
  }
  if (state.warming && event.type === "loaded") rereadWarmup();
  renderCounts();
}

/**
 * The prompt cache's figures, read again from the statistics: its per-generation counts come with no event, so they
 * are re-read every few seconds and after each saved-prefix event.
 */
function rereadPromptCache(): void {
  getJson<CacheStats>("/v1/cache/stats").then(
    (stats) => {
      state.prompt = stats.prompt_cache ?? null;
      renderCounts();
    },
    () => {},
  );
}
setInterval(rereadPromptCache, 5000);

/** Reads server-sent events from `body`, handing each `data:` payload to `onEvent` and remembering its id. */
async function pump(body: ReadableStream<Uint8Array>): Promise<never> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) throw new Error("the stream ended");
    buffer += decoder.decode(chunk.value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data: string[] = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("id:")) state.lastId = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(JSON.parse(data.join("\n")) as PageEvent);
    }
  }
}

async function follow(): Promise<void> {
  const h = headers();
  h.Accept = "text/event-stream";
  if (state.lastId) h["Last-Event-ID"] = state.lastId;
  try {
    const response = await fetch("/v1/cache/events", { headers: h });
    if (response.status === 401) {
      askKey("The API key was refused: enter it again.");
      return;
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    text($("connection"), "Live: following the cache's events.");
    await pump(response.body);
  } catch (error) {
    text($("connection"), `Disconnected (${(error as Error).message}); reconnecting…`);
    setTimeout(() => void follow(), 2000);
  }
}

function start(): void {
  if (document.body.dataset.apiKey === "required" && !sessionStorage.getItem(KEY)) {
    askKey("This server needs its API key.");
    return;
  }
  text($("connection"), "Connecting…");
  Promise.all([
    getJson<CacheStats & { fleet?: FleetStats }>("/v1/cache/stats"),
    getJson<{ data: LoadedModelInfo[] }>("/v1/cache/models"),
    getJson<Health>("/health"),
  ]).then(
    ([stats, models, health]) => {
      state.hits = stats.hits;
      state.misses = stats.misses;
      state.coalesced = stats.coalesced || 0;
      state.evictions = stats.evictions;
      state.memoryLimit = stats.memory_limit_bytes;
      const s = stats.last_save;
      state.lastSave = s.at ? { at: s.at, ok: s.ok, bytes: s.bytes, ms: s.duration_ms, error: s.error } : null;
      state.prompt = stats.prompt_cache ?? null;
      state.models = models.data;
      state.inFleet = stats.fleet !== undefined;
      rereadFleet();
      for (const m of state.models) if (m.load_ms !== null) state.loads.push({ name: m.name, ms: m.load_ms });
      renderWarmup(health);
      renderModels();
      renderLoads();
      void follow();
    },
    (error: Error) => {
      if (error instanceof Unauthorized) {
        askKey(
          sessionStorage.getItem(KEY) ? "The API key was refused: enter it again." : "This server needs its API key.",
        );
      } else {
        text($("connection"), `Cannot read the server's state (${error.message}); retrying…`);
        setTimeout(start, 2000);
      }
    },
  );
}

start();
