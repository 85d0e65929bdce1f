/**
 * The fleet at scale, in simulation (`npm run bench -- --only fleet-sim`; `--only fleet` selects it with the
 * real-process fleet section). 64 nodes × 6 slots (16 GiB each) and 2,000 models replay Zipf, shifting and daily
 * traces through the fleet's real rules (src/fleet/sim.ts: placement, routing over copies, the copies rule, each node's
 * eviction policy with spare copies first). Each trace's total load time is compared with:
 *
 * - the same 64 nodes on their own behind round-robin (request i to node i mod 64, each node the single-node simulator
 *   under the same policy): what three `inferno serve` behind nginx do today;
 * - an offline bound: the LP lower bound (FOO, src/cache/sim/optimum.ts) of ONE cache with the fleet's pooled limits
 *   (384 models, 1 TiB). Any fleet schedule is a schedule of that pooled cache (the union of the nodes' models fits
 *   its limits) that loads at least as much, so no fleet, online or offline, loads less. Models vary in size (0.5–8
 *   GiB) under two limits, so the LP is a relaxation, not the optimum: a real offline schedule of the pooled cache
 *   (bench/eviction-offline.ts, Belady-style rules that know the future) brackets the optimum from above.
 *
 * Beside them, what no online rule of our family beats on these traces: the known-rate reference, the pooled cache
 * under `reload-cost` told each model's true rate (the rates the generator draws from, switched at each phase of the
 * shifting and daily traces), reported as its own row against the bound, with no target; its note gives the fleet
 * told the same rates (`knownRates`).
 *
 * And the Redis operations per second the fleet would send (heartbeats, prunes, claims, renewals, promotions,
 * releases, usage merges, feed reads) against what one Redis does on this machine: `redis-benchmark` (Debian's
 * redis-tools) running the fleet's own claim script against a `redis-server` the bench starts; skipped with the reason
 * when either binary is absent. Simulated time: the load-time figures do not depend on the machine.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { optimumOrBound } from "../src/cache/sim/optimum.js";
import { offlineSchedule } from "./eviction-offline.js";
import { simulate } from "../src/cache/sim/simulate.js";
import type { SimSettings, Trace } from "../src/cache/sim/types.js";
import { cacheSchema } from "../src/config/schema.js";
import { DEFAULT_SCALE_UP_RPM } from "../src/fleet/copies.js";
import { CLAIM } from "../src/fleet/scripts.js";
import { type FleetSimResult, type FleetSimSettings, simulateFleet } from "../src/fleet/sim.js";
import { highsSolver } from "../src/runtime/lp-solver.js";
import { dailyTrace, type NamedTrace, SETTINGS, shiftTrace, zipfTrace } from "./eviction-traces.js";
import { type Figure, figure } from "./report.js";

export const TARGETS = { vsIndependent: 0.5, vsBound: 1.3 } as const;
const NODES = 64;
const MODELS = 2000;

export interface FleetSimTraceFigures {
  trace: string;
  requests: number;
  hours: number;
  fleet: Pick<
    FleetSimResult,
    "loads" | "loadMsTotal" | "hits" | "forwards" | "copiesAdded" | "spareEvictions" | "evictions"
  >;
  independent: { loads: number; loadMsTotal: number };
  boundMsTotal: number;
  /** One cache with the pooled limits under the same policy, online: how far the bound is from any online rule. */
  pooledMsTotal: number;
  /** Phases of true rates the trace has (1: stationary). */
  phases: number;
  /** That cache told each model's true rate, phase by phase: the known-rate reference. */
  knownRateMsTotal: number;
  /** The fleet told the same rates (each node weighs a model by its true rate over its copies). */
  fleetKnownRateMsTotal: number;
  /** The pooled cache's best offline schedule (an upper bound on its optimum) and the rule that made it. */
  offline: { msTotal: number; rule: string };
  solveMs: number;
  vsIndependent: number;
  vsBound: number;
  redis: FleetSimResult["redis"];
}

export interface FleetSimReport {
  nodes: number;
  models: number;
  settings: Omit<FleetSimSettings, "rules">;
  bound: string;
  targets: typeof TARGETS;
  traces: FleetSimTraceFigures[];
  /** One Redis on this machine running the claim script (`redis-benchmark`), or why it was not measured. */
  redisCapacity: { opsPerSecond: number; how: string } | { skipped: string };
}

function traces(requests: number): NamedTrace[] {
  const shape = { models: MODELS, requests, zipf: 0.9 };
  return [
    zipfTrace("zipf 0.9", { ...shape, seed: 41, meanGapS: 1 }),
    shiftTrace("popularity shift x3, zipf 0.9", { ...shape, seed: 42, meanGapS: 1, shifts: 3 }),
    // Four seconds on average: working hours at 2 s, the rest of the day at 8 s, so the trace spans days.
    dailyTrace("daily cycle, zipf 0.9", { ...shape, seed: 43, meanGapS: 4 }),
  ];
}

/** The 64 nodes on their own: request i goes to node i mod 64, each node a single cache. */
function independent(trace: Trace, node: SimSettings, policy: FleetSimSettings["policy"]) {
  let loads = 0;
  let loadMsTotal = 0;
  for (let n = 0; n < NODES; n++) {
    const requests = trace.requests.filter((_, i) => i % NODES === n);
    const r = simulate({ models: trace.models, requests }, node, policy);
    loads += r.loads;
    loadMsTotal += r.loadMsTotal;
  }
  return { loads, loadMsTotal };
}

export async function fleetSimBench(options: { quick: boolean }): Promise<FleetSimReport> {
  const defaults = cacheSchema.parse({});
  const node: SimSettings = { ...SETTINGS, usageHalfLifeHours: defaults.usage_half_life_hours };
  const settings: FleetSimSettings = {
    nodes: NODES,
    node,
    policy: defaults.eviction_policy,
    scaleUpRpm: DEFAULT_SCALE_UP_RPM,
    serviceMs: 2000,
    heartbeatMs: 5000,
    saveIntervalMs: defaults.persist_interval_seconds * 1000,
    loadLeaseMs: 30_000,
    feedBlockMs: 1000,
  };
  const pooled: SimSettings = {
    ...node,
    maxModels: node.maxModels * NODES,
    maxMemoryBytes: node.maxMemoryBytes * NODES,
  };
  const solver = await highsSolver();
  const figures: FleetSimTraceFigures[] = [];
  for (const trace of traces(options.quick ? 6000 : 10_000)) {
    const fleet = simulateFleet(trace, settings);
    const alone = independent(trace, node, settings.policy);
    const started = performance.now();
    const bound = optimumOrBound(trace, pooled, solver);
    const solveMs = performance.now() - started;
    const first = trace.requests[0]?.at ?? 0;
    figures.push({
      trace: trace.name,
      requests: trace.requests.length,
      hours: ((trace.requests.at(-1)?.at ?? first) - first) / 3600_000,
      fleet: {
        loads: fleet.loads,
        loadMsTotal: fleet.loadMsTotal,
        hits: fleet.hits,
        forwards: fleet.forwards,
        copiesAdded: fleet.copiesAdded,
        spareEvictions: fleet.spareEvictions,
        evictions: fleet.evictions,
      },
      independent: alone,
      boundMsTotal: bound.loadMsTotal,
      pooledMsTotal: simulate(trace, pooled, settings.policy).loadMsTotal,
      phases: trace.phases?.length ?? 0,
      knownRateMsTotal: simulate(trace, pooled, "reload-cost", { knownFrequency: trace.phases ?? [] }).loadMsTotal,
      fleetKnownRateMsTotal: simulateFleet(trace, { ...settings, knownRates: trace.phases ?? [] }).loadMsTotal,
      offline: (({ loadMsTotal, rule }) => ({ msTotal: loadMsTotal, rule }))(offlineSchedule(trace, pooled)),
      solveMs,
      vsIndependent: fleet.loadMsTotal / alone.loadMsTotal,
      vsBound: fleet.loadMsTotal / bound.loadMsTotal,
      redis: fleet.redis,
    });
  }
  const { rules: _rules, ...shown } = settings;
  return {
    nodes: NODES,
    models: MODELS,
    settings: shown,
    bound: `LP lower bound (FOO) of one cache with the fleet's pooled limits (${pooled.maxModels} models, ${pooled.maxMemoryBytes / 2 ** 30} GiB)`,
    targets: TARGETS,
    traces: figures,
    redisCapacity: await redisCapacity(options.quick),
  };
}

function hasBinary(name: string): boolean {
  const probe = spawnSync(name, ["--version"], { encoding: "utf8" });
  return !probe.error && probe.status === 0;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  await once(server, "close");
  return typeof address === "object" && address ? address.port : 0;
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}: ${out}`))));
  });
}

/**
 * What one Redis does here: `redis-benchmark` sends the fleet's claim script (EVAL, 8 clients) for a model another live
 * node holds, so each call reads the node's lease and the copies hash, as a claim at a miss does. The claim is the
 * heaviest script a request can cause; heartbeats and feed reads are lighter.
 */
async function redisCapacity(quick: boolean): Promise<FleetSimReport["redisCapacity"]> {
  for (const binary of ["redis-server", "redis-benchmark", "redis-cli"]) {
    if (!hasBinary(binary))
      return { skipped: `${binary} is not installed (Debian: apt-get install redis-tools redis-server)` };
  }
  const port = await freePort();
  const server: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  try {
    const cli = (...args: string[]) => run("redis-cli", ["-p", String(port), ...args]);
    for (let i = 0; i < 100; i++) {
      if ((await cli("PING").catch(() => "")).includes("PONG")) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const prefix = "inferno:{bench}:";
    await cli("ZADD", `${prefix}nodes`, "99999999999999", "holder", "99999999999999", "caller");
    await cli(
      "HSET",
      `${prefix}copies:m`,
      "holder",
      JSON.stringify({ state: "ready", since: 1, lease: 0, token: "t" }),
    );
    const requests = quick ? 20_000 : 50_000;
    const out = await run("redis-benchmark", [
      "-p",
      String(port),
      "-c",
      "8",
      "-n",
      String(requests),
      "-q",
      "EVAL",
      CLAIM,
      "1",
      `${prefix}feed`,
      prefix,
      "m",
      "caller",
      "token",
      "30000",
      "900000",
      "3",
    ]);
    const match = /([\d.]+) requests per second/.exec(out);
    if (!match) return { skipped: `redis-benchmark printed no rate: ${out.trim().slice(0, 200)}` };
    return {
      opsPerSecond: Number(match[1]),
      how: `redis-benchmark, ${requests} EVALs of the claim script (a held model), 8 clients, loopback`,
    };
  } finally {
    server.kill("SIGKILL");
    await once(server, "exit").catch(() => {});
  }
}

/** The figures: per trace, the fleet's load time against the independent nodes' and the bound; Redis load. */
export function fleetSimFigures(report: FleetSimReport): Figure[] {
  const figures: Figure[] = [];
  const shape = `${report.nodes} nodes × ${report.settings.node.maxModels} slots, ${report.models} models`;
  for (const t of report.traces) {
    const note = `${shape}, ${t.requests} requests over ${t.hours.toFixed(0)} h; fleet ${t.fleet.loads} loads (${t.fleet.copiesAdded} extra copies), ${(t.fleet.loadMsTotal / 1000).toFixed(0)} s`;
    figures.push(
      figure({
        section: "fleet-sim",
        item: "27.5",
        name: `fleet load time, ${t.trace}`,
        samples: t.vsIndependent,
        unit: "×",
        baseline: `${report.nodes} independent nodes behind round-robin`,
        target: { max: report.targets.vsIndependent },
        note: `${note}; independent ${t.independent.loads} loads, ${(t.independent.loadMsTotal / 1000).toFixed(0)} s`,
      }),
      figure({
        section: "fleet-sim",
        item: "27.5",
        name: `fleet load time, ${t.trace}`,
        samples: t.vsBound,
        unit: "×",
        baseline: "pooled cache's LP bound",
        target: { max: report.targets.vsBound },
        note: `bound ${(t.boundMsTotal / 1000).toFixed(0)} s (solved in ${(t.solveMs / 1000).toFixed(1)} s; the pooled cache's best offline schedule, ${t.offline.rule}: ${(t.offline.msTotal / t.boundMsTotal).toFixed(3)}× it); one pooled cache under the same policy online: ${(t.pooledMsTotal / t.boundMsTotal).toFixed(2)}× the bound`,
      }),
      figure({
        section: "fleet-sim",
        item: "27.5",
        name: `known-rate reference (pooled cache), ${t.trace}`,
        samples: t.knownRateMsTotal / t.boundMsTotal,
        unit: "×",
        baseline: "pooled cache's LP bound",
        target: null,
        note: `reference, not a target: one cache of ${report.nodes * report.settings.node.maxModels} slots under reload-cost told each model's true rate${t.phases > 1 ? ` in each of the trace's ${t.phases} phases` : ""}, ${(t.knownRateMsTotal / 1000).toFixed(0)} s; the fleet is ${(t.fleet.loadMsTotal / t.knownRateMsTotal).toFixed(2)}× it; the fleet told the same rates ${(t.fleetKnownRateMsTotal / t.boundMsTotal).toFixed(2)}× the bound`,
      }),
    );
  }
  const peak = Math.max(...report.traces.map((t) => t.redis.peakPerSecond));
  const mean = Math.max(...report.traces.map((t) => t.redis.perSecond));
  const capacity = report.redisCapacity;
  figures.push(
    figure({
      section: "fleet-sim",
      item: "27.5",
      name: `Redis operations per second, ${report.nodes} nodes (busiest minute)`,
      samples: "opsPerSecond" in capacity ? peak / capacity.opsPerSecond : peak,
      unit: "opsPerSecond" in capacity ? "×" : "ops/s",
      baseline: "opsPerSecond" in capacity ? "one Redis on this machine (claim script)" : null,
      target: null,
      note:
        "opsPerSecond" in capacity
          ? `${peak.toFixed(0)} ops/s at peak, ${mean.toFixed(0)} on average, vs ${capacity.opsPerSecond.toFixed(0)} ops/s (${capacity.how})`
          : `${peak.toFixed(0)} ops/s at peak; capacity not measured: ${capacity.skipped}`,
    }),
  );
  return figures;
}
