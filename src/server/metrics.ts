/**
 * `GET /metrics` in Prometheus text format. Cache counters follow the cache's events for the life of this process (a
 * Prometheus counter restarts with the process; `/v1/cache/stats` holds the persisted totals); gauges read the cache's
 * statistics when scraped; request counts and latency are recorded per route by the app.
 */
import { performance } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { EVICTION_REASONS, type PromptCacheStats } from "../cache/types.js";
import type { CacheService } from "./ports.js";

/** Load durations span tiny test models (milliseconds) to large GGUF files (minutes). */
const LOAD_SECONDS_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** How long a model stayed resident before it left: from seconds (churn) to days (pinned models at shutdown). */
const EVICTION_AGE_SECONDS_BUCKETS = [1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600];
const REQUEST_SECONDS_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface ServerMetrics {
  readonly registry: Registry;
  /** Records one finished HTTP request. `route` is the matched route pattern, never the raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  /** Counts a generation cut short because its client disconnected (or shutdown ran out of patience). */
  generationAborted(): void;
  /** Stops listening to the cache. */
  close(): void;
}

/** The admission queue's counts, read when scraped. */
export interface QueueCounts {
  readonly runningCount: number;
  readonly waitingCount: number;
}

export function createMetrics(cache: CacheService, queue: QueueCounts): ServerMetrics {
  const registry = new Registry();
  const registers = [registry];
  /** A counter without labels. */
  const counter = (name: string, help: string) => new Counter({ name, help, registers });

  const hits = counter("inferno_cache_hits_total", "Model requests served by a loaded model.");
  const misses = counter("inferno_cache_misses_total", "Model requests that needed a load.");
  const coalesced = counter(
    "inferno_cache_coalesced_total",
    "Model requests that joined a load already in flight (neither hits nor misses).",
  );
  const unknown = counter(
    "inferno_cache_unknown_model_requests_total",
    "Model requests naming no model (not counted as misses).",
  );
  const loads = counter("inferno_cache_loads_total", "Models loaded.");
  const loadFailures = counter("inferno_cache_load_failures_total", "Model loads that failed.");
  const evictions = new Counter({
    name: "inferno_cache_evictions_total",
    help: "Models unloaded, by reason.",
    labelNames: ["reason"] as const,
    registers,
  });
  for (const reason of EVICTION_REASONS) evictions.inc({ reason }, 0);
  const loadSeconds = new Histogram({
    name: "inferno_cache_load_duration_seconds",
    help: "Time to load a model.",
    buckets: LOAD_SECONDS_BUCKETS,
    registers,
  });

  const evictionAge = new Histogram({
    name: "inferno_cache_eviction_age_seconds",
    help: "How long a model had been resident when it was evicted (its age at eviction), by reason.",
    labelNames: ["reason"] as const,
    buckets: EVICTION_AGE_SECONDS_BUCKETS,
    registers,
  });
  const missDelay = new Histogram({
    name: "inferno_cache_miss_delay_seconds",
    help: "Delay a cache miss cost: from the request that missed to its model being loaded.",
    buckets: LOAD_SECONDS_BUCKETS,
    registers,
  });
  /** When each model's first pending miss happened (monotonic ms), until its load ends. */
  const missedAt = new Map<string, number>();

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge("inferno_cache_memory_bytes", "Memory held by loaded models.", () => cache.summary().memory_bytes);
  gauge(
    "inferno_cache_memory_limit_bytes",
    "The cache's memory budget (0 = unlimited).",
    () => cache.summary().memory_limit_bytes,
  );
  gauge("inferno_cache_models_loaded", "Models currently loaded.", () => cache.summary().models_loaded);
  gauge("inferno_cache_max_cached_models", "Most models resident at once.", () => cache.summary().max_cached_models);
  // The prompt cache's counts live in the cache (also in /v1/cache/stats): read when scraped, as counters.
  const promptCounter = (name: string, help: string, read: (counts: PromptCacheStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(cache.summary().prompt_cache));
      },
    });
  promptCounter(
    "inferno_prompt_cache_hits_total",
    "Generations whose prompt began with a prefix a sequence had evaluated (the prompt cache).",
    (p) => p.hits,
  );
  promptCounter(
    "inferno_prompt_cache_tokens_saved_total",
    "Prompt tokens reused from the prompt cache instead of evaluated.",
    (p) => p.cached_tokens,
  );
  promptCounter("inferno_prompt_tokens_evaluated_total", "Prompt tokens evaluated.", (p) => p.evaluated_tokens);
  new Counter({
    name: "inferno_prompt_cache_prefixes_total",
    help: "Evaluated prefixes the prompt store saved (on unload), restored (on load), evicted (budget) or quarantined.",
    labelNames: ["action"] as const,
    registers,
    collect() {
      this.reset();
      const p = cache.summary().prompt_cache;
      this.inc({ action: "saved" }, p.prefixes_saved);
      this.inc({ action: "restored" }, p.prefixes_restored);
      this.inc({ action: "evicted" }, p.prefixes_evicted);
      this.inc({ action: "quarantined" }, p.prefixes_quarantined);
    },
  });
  gauge(
    "inferno_prompt_cache_disk_bytes",
    "Bytes of saved prompt prefixes on disk (cache.prompt_cache_mb bounds them), as the store last reported.",
    () => cache.summary().prompt_cache.disk_bytes,
  );
  gauge("inferno_requests_running", "Model requests holding a queue slot.", () => queue.runningCount);
  gauge(
    "inferno_requests_waiting",
    "Model requests waiting for a slot (bounded by server.max_queue).",
    () => queue.waitingCount,
  );

  const requests = new Counter({
    name: "inferno_http_requests_total",
    help: "HTTP requests, by method, route and status.",
    labelNames: ["method", "route", "status"] as const,
    registers,
  });
  const requestSeconds = new Histogram({
    name: "inferno_http_request_duration_seconds",
    help: "HTTP request latency (to the end of the response body for streams), by method and route.",
    labelNames: ["method", "route"] as const,
    buckets: REQUEST_SECONDS_BUCKETS,
    registers,
  });

  const aborted = counter(
    "inferno_generations_aborted_total",
    "Generations aborted because the client disconnected or the server shut down.",
  );

  const unsubscribe = [
    cache.on("hit", () => hits.inc()),
    cache.on("miss", ({ key }) => {
      misses.inc();
      if (key !== null && !missedAt.has(key)) missedAt.set(key, performance.now());
    }),
    cache.on("coalesced", () => coalesced.inc()),
    cache.on("unknown_model", () => unknown.inc()),
    cache.on("load", ({ key, durationMs }) => {
      loads.inc();
      loadSeconds.observe(durationMs / 1000);
      const at = missedAt.get(key);
      if (at !== undefined) {
        missedAt.delete(key);
        missDelay.observe((performance.now() - at) / 1000);
      }
    }),
    cache.on("load_failed", ({ key }) => {
      loadFailures.inc();
      missedAt.delete(key);
    }),
    cache.on("evict", ({ reason, residentSeconds }) => {
      evictions.inc({ reason });
      evictionAge.observe({ reason }, residentSeconds);
    }),
  ];

  /** Each (method, route, status)'s own counter and histogram, found once: labelling per request hashes the labels. */
  const perRequestKind = new Map<string, { count: { inc(): void }; latency: { observe(seconds: number): void } }>();
  return {
    registry,
    observeRequest(method, route, status, seconds) {
      const kind = `${method} ${route} ${status}`;
      let series = perRequestKind.get(kind);
      if (series === undefined) {
        series = {
          count: requests.labels({ method, route, status: String(status) }),
          latency: requestSeconds.labels({ method, route }),
        };
        perRequestKind.set(kind, series);
      }
      series.count.inc();
      series.latency.observe(seconds);
    },
    generationAborted() {
      aborted.inc();
    },
    close() {
      for (const off of unsubscribe) off();
    },
  };
}
