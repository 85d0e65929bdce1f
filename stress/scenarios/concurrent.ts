/**
 * A burst of concurrent requests over five tiny llama models on a real server (loopback, llama.cpp in process) that may
 * keep two resident under a memory cap fitting about two and a half of them (as reserved while loading). Requests pick models by a Zipf-like
 * popularity, all sent at once.
 *
 * Holds when: every answer is a 200 or a deliberate refusal (503 queue full / cache busy, 507 too large for the cap);
 * no model is ever loading twice at once; a trace sampled on every cache event and every few milliseconds never shows
 * more memory than the cap or more than two models; no lease is left once every answer is in; and the cache's
 * hits + misses + coalesced equal the requests admitted past the queue.
 */
import { join } from "node:path";
import type { LoadedModelInfo } from "../../src/cache/types.js";
import { type Scenario, seededRandom, Tally, withTempDir } from "../../testkit/scenario.js";
import { completion, withStressServer } from "../server.js";
import { MIB } from "../../src/units.js";

export interface ConcurrentParams {
  requests: number;
  /** `server.max_queue`: requests beyond the running ones and this many waiting get 503 at once. */
  maxQueue: number;
  /** Trace sampling period (ms), besides a sample on every cache event. */
  sampleMs: number;
}

const MODELS = ["m0.gguf", "m1.gguf", "m2.gguf", "m3.gguf", "m4.gguf"];
const RESIDENT = 2;
/** Error codes that are deliberate refusals under load (the 503s and the 507 of the memory cap). */
const DELIBERATE = new Set(["queue_full", "cache_busy", "model_too_large"]);

/**
 * What one tiny model counts for against the cap, measured on a throwaway server: the estimate reserved while it loads
 * and the memory measured once loaded (bytes).
 */
async function modelMemory(root: string): Promise<{ estimate: number; measured: number }> {
  const options = { root, models: [MODELS[0] as string], settings: { "cache.persist_cache": false } };
  return withStressServer(options, async (probe) => {
    let estimate = 0;
    const off = probe.runtime.cache.on("loading", (e) => (estimate = Math.max(estimate, e.estimateBytes)));
    await probe.post("/v1/completions", completion(MODELS[0] as string));
    off();
    const [loaded] = (await probe.getJson<{ data: LoadedModelInfo[] }>("/v1/cache/models")).data;
    return { estimate, measured: loaded?.memory_bytes ?? 0 };
  });
}

export async function concurrent(p: ConcurrentParams): Promise<ReturnType<Tally["result"]>> {
  const tally = new Tally();
  await withTempDir("concurrent", async (root) => {
    const { estimate, measured } = await modelMemory(join(root, "probe"));
    // Two and a half models as the cache counts them while loading (the estimate is the larger): two loads fit at once.
    const capMb = Math.max(1, Math.ceil((2.5 * Math.max(estimate, measured)) / MIB));
    tally.set("model_memory_mib", `${(estimate / MIB).toFixed(2)} estimated, ${(measured / MIB).toFixed(2)} measured`);
    tally.set("memory_cap_mib", capMb);
    const options = {
      root,
      models: MODELS,
      settings: { "cache.max_cached_models": RESIDENT, "cache.max_memory_mb": capMb, "server.max_queue": p.maxQueue },
    };
    await withStressServer(options, async (s) => {
      const cache = s.runtime.cache;
      const capBytes = cache.summary().memory_limit_bytes;
      let samples = 0;
      let peakBytes = 0;
      let peakModels = 0;
      const sample = () => {
        const summary = cache.summary();
        samples++;
        peakBytes = Math.max(peakBytes, summary.memory_bytes);
        peakModels = Math.max(peakModels, summary.models_loaded);
      };
      const loading = new Set<string>();
      let doubleLoads = 0;
      let loadsStarted = 0;
      const unsubscribe = cache.onAny((event) => {
        if (event.type === "loading" && event.progress === 0) {
          loadsStarted++;
          if (loading.has(event.key)) doubleLoads++;
          loading.add(event.key);
        }
        if (event.type === "load" || event.type === "load_failed" || event.type === "evict") loading.delete(event.key);
        sample();
      });
      const timer = setInterval(sample, p.sampleMs);
      const before = cache.summary();

      const random = seededRandom(1000);
      // Zipf-like popularity: model k is chosen with weight 1/(k+1).
      const weights = MODELS.map((_, k) => 1 / (k + 1));
      const total = weights.reduce((a, b) => a + b, 0);
      const pick = () => {
        let r = random() * total;
        for (let k = 0; k < MODELS.length; k++) if ((r -= weights[k] as number) <= 0) return MODELS[k] as string;
        return MODELS[MODELS.length - 1] as string;
      };
      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: p.requests }, () => s.post("/v1/completions", completion(pick()))),
      );
      const seconds = (performance.now() - started) / 1000;
      clearInterval(timer);
      unsubscribe();

      const byStatus: Record<string, number> = {};
      let queueRefused = 0;
      for (const { status, body } of answers) {
        const code = (body as { error?: { code?: string } }).error?.code;
        const label = status === 200 ? "200" : `${status} ${code ?? "?"}`;
        byStatus[label] = (byStatus[label] ?? 0) + 1;
        if (code === "queue_full") queueRefused++;
        tally.check(
          status === 200 || (code !== undefined && DELIBERATE.has(code)),
          () => `an answer ${status} ${JSON.stringify(body).slice(0, 300)}`,
        );
      }
      tally.set("requests", p.requests);
      for (const [label, count] of Object.entries(byStatus).sort())
        tally.set(`answers_${label.replace(" ", "_")}`, count);
      tally.set("seconds", Number(seconds.toFixed(1)));
      tally.set("loads", loadsStarted);
      tally.set("double_loads", doubleLoads);
      tally.check(doubleLoads === 0, () => `${doubleLoads} loads of a model already loading`);
      tally.set("trace_samples", samples);
      tally.set("peak_memory_mib", Number((peakBytes / MIB).toFixed(2)));
      tally.set("peak_models_resident", peakModels);
      tally.check(peakBytes <= capBytes, () => `memory reached ${peakBytes} bytes, over the cap of ${capBytes}`);
      tally.check(peakModels <= RESIDENT, () => `${peakModels} models resident, over ${RESIDENT}`);
      const leases = cache.loadedModels().reduce((n, m) => n + m.leases, 0);
      tally.set("leases_left", leases);
      tally.check(leases === 0, () => `${leases} leases still held after every answer`);
      const after = cache.summary();
      const counted = after.hits - before.hits + (after.misses - before.misses) + (after.coalesced - before.coalesced);
      const admitted = p.requests - queueRefused;
      tally.set(
        "hits_misses_coalesced",
        `${after.hits - before.hits} + ${after.misses - before.misses} + ${after.coalesced - before.coalesced} = ${counted}`,
      );
      tally.set("admitted_requests", admitted);
      tally.check(
        counted === admitted,
        () => `hits + misses + coalesced = ${counted}, but ${admitted} requests reached the cache`,
      );
    });
  });
  return tally.result();
}

export const concurrentScenario: Scenario<ConcurrentParams> = {
  name: "concurrent",
  title:
    "1,000 concurrent requests over 5 models, 2 resident, a memory cap: only deliberate 503/507s, 0 double loads, cap kept, leases released",
  full: { requests: 1000, maxQueue: 300, sampleMs: 5 },
  bounded: { requests: 60, maxQueue: 25, sampleMs: 5 },
  run: concurrent,
};
