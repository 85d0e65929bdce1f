/**
 * Synthetic request traces for the eviction benchmark, seeded so every run replays the same requests.
 *
 * Models: 0.5–8 GiB (log-uniform), a cold load of `COLD_MS_PER_GIB` per GiB (load cost ∝ size, as a read of the file
 * dominates it) and a warm reload 3x faster when the file is still in the page cache. Requests arrive as a Poisson
 * process (mean `meanGapS`); which model a request wants is drawn from a Zipf distribution over a popularity order
 * unrelated to size.
 */
import type { RatePhase, SimModel, SimRequest, SimSettings, Trace } from "../src/cache/sim/types.js";
import { seededRandom } from "../src/models/gguf-writer.js";
import { GIB } from "../src/units.js";

const HOUR_MS = 3600_000;
/** Cold load time per GiB of model (about what an NVMe read plus llama.cpp's set-up take). */
export const COLD_MS_PER_GIB = 1000;
/** A page-cache-warm reload is this many times faster. */
export const WARM_SPEED_UP = 3;
const START = Date.UTC(2026, 0, 5);

/** The machine the traces run on: 16 GiB for models, at most 6 resident, files stay cached 10 min after an unload. */
export const SETTINGS: Omit<SimSettings, "usageHalfLifeHours"> = {
  maxModels: 6,
  maxMemoryBytes: 16 * GIB,
  warmWindowMs: 10 * 60_000,
};

export interface NamedTrace extends Trace {
  name: string;
  /** A stationary Zipf trace: the default policy's target against the known-rate reference applies. */
  zipf: boolean;
  /**
   * Popularity that changes (a shift, a daily cycle, scans, a recorded server's sessions): the default's target is the
   * lowest load time of every rule.
   */
  shifting?: boolean;
  /** Limits it was recorded under, replacing `SETTINGS`'s. */
  settings?: Omit<SimSettings, "usageHalfLifeHours">;
  /** The rates its generator drew from, phase by phase (synthetic Zipf traces without scans): the known-rate reference. */
  phases?: RatePhase[];
}

export function makeModels(count: number, rand: () => number): SimModel[] {
  return Array.from({ length: count }, (_, i) => {
    const gib = 0.5 * 16 ** rand();
    const loadMs = Math.round(gib * COLD_MS_PER_GIB);
    return {
      key: `m${String(i).padStart(2, "0")}.gguf`,
      memoryBytes: Math.round(gib * GIB),
      loadMs,
      warmLoadMs: Math.round(loadMs / WARM_SPEED_UP),
    };
  });
}

export function zipfSampler(n: number, s: number, rand: () => number): () => number {
  const cumulative: number[] = [];
  let total = 0;
  for (let i = 0; i < n; i++) cumulative.push((total += 1 / (i + 1) ** s));
  return () => {
    const x = rand() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((cumulative[mid] as number) < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function shuffled<T>(items: readonly T[], rand: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

function exponential(meanMs: number, rand: () => number): number {
  return Math.max(1, Math.round(-Math.log(1 - rand()) * meanMs));
}

interface Shape {
  seed: number;
  models: number;
  requests: number;
  zipf: number;
  meanGapS?: number;
}

/** What a synthetic trace's steps draw from: its seeded generator, models, popularity orders and mean gap. */
interface TraceFrame {
  rand: () => number;
  models: SimModel[];
  /** Popularity orders, each a shuffle of the models drawn at the start (a step may draw one anew). */
  orders: SimModel[][];
  /** The key at a Zipf(s)-drawn rank of the order `orders[index]`. */
  pick: (index: number) => string;
  meanGapMs: number;
  /** The requests' true rates so far: a new phase whenever the order or the mean gap a request is drawn with changes. */
  phases: Array<RatePhase & { order: SimModel[]; meanMs: number }>;
  /** Each rank's Zipf(s) probability. */
  probabilities: number[];
}

/**
 * The frame every synthetic trace shares: seeded models, `orderCount` popularity orders, a Zipf(s) sampler, and steps
 * from START until `shape.requests` requests are made. `step(frame, i, at, requests)` adds the requests of step `i` at
 * and after time `at` and returns the time of its last one.
 */
function synthetic(
  name: string,
  zipf: boolean,
  shape: Shape,
  orderCount: number,
  step: (frame: TraceFrame, i: number, at: number, requests: SimRequest[]) => number,
): NamedTrace {
  const rand = seededRandom(shape.seed);
  const models = makeModels(shape.models, rand);
  const orders = Array.from({ length: orderCount }, () => shuffled(models, rand));
  const sample = zipfSampler(models.length, shape.zipf, rand);
  const pick = (index: number) => ((orders[index] as SimModel[])[sample()] as SimModel).key;
  const weights = models.map((_, i) => 1 / (i + 1) ** shape.zipf);
  const sum = weights.reduce((a, b) => a + b, 0);
  const frame: TraceFrame = {
    rand,
    models,
    orders,
    pick,
    meanGapMs: (shape.meanGapS ?? 60) * 1000,
    phases: [],
    probabilities: weights.map((w) => w / sum),
  };
  const requests: SimRequest[] = [];
  let at = START;
  for (let i = 0; requests.length < shape.requests; i++) at = step(frame, i, at, requests);
  const phases = frame.phases.map(({ from, perHour }) => ({ from, perHour }));
  return { name, zipf, models, requests, phases };
}

/** Starts a phase at `at` when the request about to be drawn uses another order or mean gap than the last one. */
function notePhase(frame: TraceFrame, at: number, order: SimModel[], meanMs: number): void {
  const last = frame.phases.at(-1);
  if (last && last.order === order && last.meanMs === meanMs) return;
  const perHour = new Map(order.map((m, rank) => [m.key, ((frame.probabilities[rank] as number) * 3600_000) / meanMs]));
  frame.phases.push({ from: at, perHour, order, meanMs });
}

/** One request after an exponential gap of mean `meanMs`, to the Zipf(s)-drawn model of order `index`. */
function nextRequest(frame: TraceFrame, at: number, requests: SimRequest[], index = 0, meanMs = frame.meanGapMs) {
  notePhase(frame, at, frame.orders[index] as SimModel[], meanMs);
  const next = at + exponential(meanMs, frame.rand);
  requests.push({ at: next, key: frame.pick(index) });
  return next;
}

/** Stationary Zipf(s) popularity. */
export function zipfTrace(name: string, shape: Shape): NamedTrace {
  return synthetic(name, true, shape, 1, (frame, _i, at, requests) => nextRequest(frame, at, requests));
}

/** Zipf popularity whose order is drawn anew `shifts` times, evenly spread over the trace. */
export function shiftTrace(name: string, shape: Shape & { shifts: number }): NamedTrace {
  const every = Math.ceil(shape.requests / (shape.shifts + 1));
  return shifting(
    synthetic(name, false, shape, 1, (frame, i, at, requests) => {
      if (i > 0 && i % every === 0) frame.orders[0] = shuffled(frame.models, frame.rand);
      return nextRequest(frame, at, requests);
    }),
  );
}

const shifting = (trace: NamedTrace): NamedTrace => ({ ...trace, shifting: true });

/**
 * A daily cycle: working hours (8–18 h) use one popularity order at 4x the rate, the rest of the day another (batch
 * jobs, other time zones); both Zipf(s) over the same models.
 */
export function dailyTrace(name: string, shape: Shape): NamedTrace {
  return shifting(
    synthetic(name, false, shape, 2, (frame, _i, at, requests) => {
      const hour = (at / HOUR_MS) % 24;
      const working = hour >= 8 && hour < 18;
      return nextRequest(frame, at, requests, working ? 0 : 1, working ? frame.meanGapMs / 2 : frame.meanGapMs * 2);
    }),
  );
}

/** Zipf(s) traffic, and every `scanEvery` requests a job that asks every model once in turn (an evaluation sweep). */
export function scanTrace(name: string, shape: Shape & { scanEvery: number }): NamedTrace {
  // The scans are no Zipf draw: the trace has no rates to know.
  const { phases: _phases, ...trace } = shifting(
    synthetic(name, false, shape, 1, (frame, _i, start, requests) => {
      let at = nextRequest(frame, start, requests);
      if (requests.length % shape.scanEvery === 0) {
        for (const model of shuffled(frame.models, frame.rand)) {
          at += 5000;
          requests.push({ at, key: model.key });
        }
      }
      return at;
    }),
  );
  return trace;
}

/** The synthetic traces of the benchmark; `requests` per trace (the quick run uses fewer). */
export function syntheticTraces(requests: number): NamedTrace[] {
  return [
    zipfTrace("zipf 0.6, 20 models", { seed: 11, models: 20, requests, zipf: 0.6 }),
    zipfTrace("zipf 0.9, 30 models", { seed: 12, models: 30, requests, zipf: 0.9 }),
    zipfTrace("zipf 1.2, 50 models", { seed: 13, models: 50, requests, zipf: 1.2 }),
    shiftTrace("popularity shift x3, zipf 0.9", { seed: 14, models: 30, requests, zipf: 0.9, shifts: 3 }),
    dailyTrace("daily cycle, zipf 0.9", { seed: 15, models: 30, requests, zipf: 0.9 }),
    scanTrace("scan every 500, zipf 0.9", { seed: 16, models: 30, requests, zipf: 0.9, scanEvery: 500 }),
  ];
}
