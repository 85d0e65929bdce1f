/**
 * The cache simulator's fleet mode: a trace replayed through N nodes on a virtual clock, with the fleet's real rules —
 * placement (placement.ts), routing over copies and the copies rule (copies.ts), and each node's eviction policy
 * (cache/policy) with spare copies first — and the Redis operations the fleet would send counted as it goes. Requests
 * reach the nodes round-robin (as behind nginx); a node without the model forwards to a copy or places a load.
 *
 * Idealised where a replay must be: every node's mirror is exact (in the fleet it lags the feed by a round trip), a
 * request occupies its copy for `serviceMs` (the queue routing reads) and loads are over at once for the requests
 * behind them, as in the single-node simulator (src/cache/sim/simulate.ts). Pure: no I/O, no clock.
 */
import { countLoad, countRequest, evictionCandidate, isWarm, newUsage, type SimUsage } from "../cache/sim/simulate.js";
import {
  phaseAt,
  type RatePhase,
  type SimModel,
  type SimResult,
  type SimSettings,
  type Trace,
} from "../cache/sim/types.js";
import {
  asSpareCopy,
  chooseVictims,
  type EvictionCandidate,
  type EvictionPolicy,
  fleetLoadTimes,
  nextInflation,
} from "../cache/policy/eviction.js";
import {
  addCopy,
  copiesFacts,
  type CopiesOverride,
  copiesRule,
  type CopyView,
  countUse,
  eligibleNodes,
  isExtraCopy,
  type ModelUse,
  pickCopy,
  ratePerMinute,
  wantedCopies,
} from "./copies.js";
import { type PlacementCandidate, placeModel } from "./placement.js";
import { countAsRate, countOfRate, decayedValue, fleetFrequency } from "../cache/policy/frequency.js";
import { evictionLadder, fleetLoadRate, fleetWarmSaving, LoadRates } from "./record.js";

export interface FleetSimSettings {
  nodes: number;
  /** Each node's cache limits (the same on every node). */
  node: SimSettings;
  policy: EvictionPolicy;
  /** `fleet.scale_up_rpm`. */
  scaleUpRpm: number;
  /** `[cache.models."NAME"]` copies settings, by model key. */
  rules?: Readonly<Record<string, CopiesOverride>>;
  /** How long a request keeps its copy busy (ms): the queue routing over copies reads. */
  serviceMs: number;
  /** `fleet.heartbeat_seconds` in ms. */
  heartbeatMs: number;
  /** `cache.persist_interval_seconds` in ms: a node with new usage merges a delta this often. */
  saveIntervalMs: number;
  /** A loading copy's lease (ms); the loader renews it every third of it. */
  loadLeaseMs: number;
  /** How long a node's feed read blocks when nothing comes (ms). */
  feedBlockMs: number;
  /**
   * A reference run, not a fleet: every node weighs a model by its true rate in the phase in force (shared over its
   * copies) instead of the usage the nodes counted — how much better rate estimates could gain the fleet.
   */
  knownRates?: readonly RatePhase[];
}

/** Redis operations of a replay: every script, feed read and usage merge the nodes would send. */
export interface RedisLoad {
  operations: number;
  byKind: Record<RedisOperation, number>;
  /** Operations per second over the whole trace, and over its busiest minute. */
  perSecond: number;
  peakPerSecond: number;
}

export type RedisOperation = "heartbeat" | "prune" | "claim" | "renew" | "promote" | "release" | "usage" | "feed_read";

export interface FleetSimResult extends SimResult {
  /** Requests served by a node other than the one that received them. */
  forwards: number;
  /** Loads that added a copy beside an existing one (the copies rule). */
  copiesAdded: number;
  /** Evictions of a spare copy. */
  spareEvictions: number;
  redis: RedisLoad;
}

interface SimNode {
  id: string;
  resident: Set<string>;
  usedBytes: number;
  inflation: number;
  /** This node's own usage of each model, as its cache keeps it. */
  usage: Map<string, SimUsage>;
  /** Model → end times of the requests it serves (its queue). */
  busy: Map<string, number[]>;
  /** The minute of its last usage change not merged yet (-1: none). */
  dirtySince: number;
  /** Its recent loads (its record's `load_rate`). */
  loadRates: LoadRates;
}

interface FleetModel extends ModelUse {
  model: SimModel;
  /** Node id → since (the copy's claim time). */
  copies: Map<string, number>;
  /** Nodes that could hold it (the same all along: no node drains in a replay). */
  eligible?: number;
}

const MINUTE_MS = 60_000;

/** Replays `trace` through a fleet of `settings.nodes` nodes. Throws when a model fits no node. */
export function simulateFleet(trace: Trace, settings: FleetSimSettings): FleetSimResult {
  const limits = settings.node;
  const nodes: SimNode[] = Array.from({ length: settings.nodes }, (_, i) => ({
    id: `n${i}`,
    resident: new Set(),
    usedBytes: 0,
    inflation: 0,
    usage: new Map(),
    busy: new Map(),
    dirtySince: -1,
    loadRates: new LoadRates(),
  }));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const models = new Map<string, FleetModel>(
    trace.models.map((model) => [model.key, { model, streak: null, recent: [], copies: new Map() }]),
  );
  const result: FleetSimResult = {
    requests: 0,
    hits: 0,
    misses: 0,
    loads: 0,
    warmLoads: 0,
    loadMsTotal: 0,
    evictions: 0,
    forwards: 0,
    copiesAdded: 0,
    spareEvictions: 0,
    redis: { operations: 0, byKind: emptyByKind(), perSecond: 0, peakPerSecond: 0 },
  };
  const start = trace.requests[0]?.at ?? 0;
  const minuteOf = (at: number) => Math.floor((at - start) / MINUTE_MS);
  /** Operations per minute of the trace that depend on requests (the steady ones are added at the end). */
  const perMinute: number[] = [];
  /** Feed entries per minute (each wakes every node's blocking read). */
  const feedPerMinute: number[] = [];
  const count = (kind: RedisOperation, at: number, n = 1) => {
    result.redis.byKind[kind] += n;
    const m = minuteOf(at);
    perMinute[m] = (perMinute[m] ?? 0) + n;
  };
  const feed = (at: number, n = 1) => {
    const m = minuteOf(at);
    feedPerMinute[m] = (feedPerMinute[m] ?? 0) + n;
  };
  const ruleOf = (key: string) => copiesRule(settings.rules?.[key], settings.scaleUpRpm);

  const usageOf = (node: SimNode, key: string): SimUsage => {
    let u = node.usage.get(key);
    if (!u) {
      u = newUsage();
      node.usage.set(key, u);
    }
    return u;
  };

  /** Node `n` as placement sees it for `model`; `full`: with its spare copies and eviction ladder (its record's). */
  const candidateOf = (n: SimNode, model: SimModel, now: number, full: boolean): PlacementCandidate => {
    let lru: number | null = null;
    for (const key of n.resident) {
      const at = n.usage.get(key)?.lastUsedAt ?? null;
      if (at !== null && (lru === null || at < lru)) lru = at;
    }
    const spareKeys = new Set<string>();
    // Published as a live node does: frequencies in uses per hour, so losses are reload time per hour.
    const ladder = full
      ? evictionLadder(
          evictableOn(n, now, spareKeys).map((c) => ({
            ...c,
            frequency: countAsRate(c.frequency, limits.usageHalfLifeHours),
          })),
          settings.policy,
          limits,
        )
      : undefined;
    const warm = isWarm(n.usage.get(model.key)?.unloadedAt ?? null, now, limits.warmWindowMs);
    return {
      id: n.id,
      draining: false,
      memoryCapacity: limits.maxMemoryBytes > 0 ? limits.maxMemoryBytes : Number.MAX_SAFE_INTEGER,
      memoryUsed: n.usedBytes,
      modelCapacity: limits.maxModels,
      modelCount: n.resident.size,
      lruTime: lru,
      serves: { size: model.memoryBytes, bytes: model.memoryBytes },
      spareCopies: spareKeys.size,
      ...(ladder ? { evictable: ladder } : {}),
      ...(warm ? { warm } : {}),
    };
  };
  const candidates = (model: SimModel, now: number): PlacementCandidate[] =>
    nodes.map((n) => candidateOf(n, model, now, true));
  /** The nodes with a free slot: the only ones that can have room (rebuilt after every load or eviction). */
  let slotted: SimNode[] | null = null;
  const withFreeSlot = () => (slotted ??= nodes.filter((n) => n.resident.size < limits.maxModels));
  /**
   * The nodes without a free slot as one candidate with their memory summed, for the fleet's free share in
   * `fleetHasRoom` (it has no slot, so it never counts as room itself).
   */
  const fullNodes = (count: number): PlacementCandidate => {
    const open = new Set(withFreeSlot());
    const used = nodes.reduce((sum, n) => sum + (open.has(n) ? 0 : n.usedBytes), 0);
    return {
      id: "(full nodes)",
      draining: false,
      memoryCapacity: count * limits.maxMemoryBytes,
      memoryUsed: used,
      modelCapacity: count * limits.maxModels,
      modelCount: count * limits.maxModels,
      lruTime: null,
      serves: undefined,
    };
  };

  const rpmOf = (fm: FleetModel, now: number): number => ratePerMinute(fm.recent, now);

  const wantedOf = (fm: FleetModel, now: number): number => {
    fm.eligible ??= eligibleNodes(nodes.map((n) => candidateOf(n, fm.model, now, false)));
    // The fleet's free memory share, and the nodes with a free slot (the only ones that can have room).
    const open = withFreeSlot().map((n) => candidateOf(n, fm.model, now, false));
    const filled = nodes.length - open.length;
    if (filled > 0) open.push(fullNodes(filled));
    const use = { rpm: rpmOf(fm, now), streak: fm.streak };
    return wantedCopies(copiesFacts(use, copyViews(fm, now), open, now, fm.eligible), ruleOf(fm.model.key));
  };

  /** Whether `node`'s copy of `fm` is spare now (copies.ts). */
  const isSpare = (node: SimNode, fm: FleetModel, now: number): boolean =>
    fm.copies.size > 1 && isExtraCopy(copyViews(fm, now), wantedOf(fm, now), node.id);

  const queueOf = (node: SimNode, key: string, now: number): number => {
    const ends = node.busy.get(key);
    if (!ends) return 0;
    const live = ends.filter((end) => end > now);
    node.busy.set(key, live);
    return live.length;
  };

  const copyViews = (fm: FleetModel, now: number): CopyView[] =>
    [...fm.copies].map(([node, since]) => ({
      node,
      since,
      queue: queueOf(byId.get(node) as SimNode, fm.model.key, now),
    }));

  const touch = (node: SimNode, key: string, now: number) => {
    countRequest(usageOf(node, key), now, node.inflation, limits);
    if (node.dirtySince < 0) node.dirtySince = now;
  };

  const serve = (node: SimNode, key: string, now: number) => {
    const ends = node.busy.get(key) ?? [];
    ends.push(now + settings.serviceMs);
    node.busy.set(key, ends);
  };

  /**
   * From every node's recent loads (`load_rate`): the fleet's typical load time per byte (`fleetLoadRate`) and what a
   * warm file saves per byte (`fleetWarmSaving`), worked out once and kept until the next load.
   */
  let loadFigures: { rate: number | null; saving: number | null } | null = null;
  const fleetLoads = (): { rate: number | null; saving: number | null } => {
    if (loadFigures === null) {
      const published = nodes.map((n) => n.loadRates.published());
      loadFigures = { rate: fleetLoadRate(published), saving: fleetWarmSaving(published) };
    }
    return loadFigures;
  };

  const known = settings.knownRates;
  /** A model's true rate at `now` as a decayed count (the unit eviction weighs), shared over its `copies`. */
  const knownFrequency = (phases: readonly RatePhase[], key: string, now: number, copies: number): number =>
    countOfRate(phaseAt(phases, now)?.perHour.get(key) ?? 0, limits.usageHalfLifeHours) / Math.max(1, copies);
  /** The fleet's usage of a model `node` holds, as a fleet node weighs it (`fleetFrequency`). */
  const fleetUsage = (node: SimNode, key: string, fm: FleetModel, now: number): number => {
    const local = decayedValue(usageOf(node, key).frequency, now, limits.usageHalfLifeHours);
    let elsewhere = 0;
    for (const other of nodes) {
      const theirs = other === node ? undefined : other.usage.get(key);
      if (theirs) elsewhere += decayedValue(theirs.frequency, now, limits.usageHalfLifeHours);
    }
    return fleetFrequency(local, elsewhere, fm.copies.size);
  };

  /**
   * `node`'s resident models as its policy sees them: each with the fleet's usage (`fleetFrequency`, the other nodes'
   * as their records show it), spare copies (added to `spares`) through `asSpareCopy`, load times as a fleet node
   * weighs them (`fleetLoadTimes`, against every node's recent loads).
   */
  const evictableOn = (node: SimNode, now: number, spares = new Set<string>()): EvictionCandidate[] =>
    fleetLoadTimes(
      [...node.resident].map((key) => {
        const usage = usageOf(node, key);
        const fm = models.get(key) as FleetModel;
        const frequency = known ? knownFrequency(known, key, now, fm.copies.size) : fleetUsage(node, key, fm, now);
        const candidate = evictionCandidate(fm.model, usage, now, limits, frequency);
        if (!isSpare(node, fm, now)) return candidate;
        spares.add(key);
        return asSpareCopy(candidate);
      }),
      fleetLoads().rate,
    );

  /** Makes room on `node` for `fm` by its policy (spare copies first) and loads it there. */
  const load = (node: SimNode, fm: FleetModel, now: number) => {
    const { model } = fm;
    const shortfall = {
      count: node.resident.size + 1 - limits.maxModels,
      bytes: limits.maxMemoryBytes > 0 ? node.usedBytes + model.memoryBytes - limits.maxMemoryBytes : 0,
    };
    if (shortfall.count > 0 || shortfall.bytes > 0) {
      const spares = new Set<string>();
      const evictable = evictableOn(node, now, spares);
      const { victims, covers } = chooseVictims(evictable, shortfall, settings.policy, limits);
      if (!covers) throw new Error(`${model.key} (${model.memoryBytes} bytes) can never fit a node's limits`);
      for (const victim of victims) {
        const gone = models.get(victim.key) as FleetModel;
        node.resident.delete(victim.key);
        slotted = null;
        node.usedBytes -= gone.model.memoryBytes;
        usageOf(node, victim.key).unloadedAt = now;
        gone.copies.delete(node.id);
        result.evictions++;
        if (spares.has(victim.key)) result.spareEvictions++;
        count("release", now);
        feed(now);
      }
      node.inflation = nextInflation(node.inflation, victims);
    }
    const first = usageOf(node, model.key).loads === 0;
    const { cost, warm } = countLoad(usageOf(node, model.key), model, now, limits);
    node.loadRates.add(cost, model.memoryBytes, warm ? "warm" : first ? "first" : "cold");
    loadFigures = null;
    if (warm) result.warmLoads++;
    node.resident.add(model.key);
    slotted = null;
    node.usedBytes += model.memoryBytes;
    fm.copies.set(node.id, now);
    result.loads++;
    result.loadMsTotal += cost;
    // The claim wrote the loading copy; renewals while it loads; the promotion.
    count("renew", now, Math.floor(cost / (settings.loadLeaseMs / 3)));
    count("promote", now + cost);
    feed(now, 2);
  };

  /** A node merges its usage once per save interval when it changed. */
  const maybeSave = (node: SimNode, now: number) => {
    if (node.dirtySince >= 0 && now - node.dirtySince >= settings.saveIntervalMs) {
      count("usage", now, 2);
      node.dirtySince = -1;
    }
  };

  trace.requests.forEach(({ at: now, key }, i) => {
    const fm = models.get(key);
    if (!fm) throw new Error(`trace request for unknown model ${key}`);
    const entry = nodes[i % nodes.length] as SimNode;
    result.requests++;
    countUse(fm, now);
    const views = copyViews(fm, now);
    const copy = pickCopy(views, entry.id);
    if (copy) {
      result.hits++;
      const holder = byId.get(copy.node) as SimNode;
      if (holder !== entry) result.forwards++;
      touch(holder, key, now);
      serve(holder, key, now);
      maybeSave(holder, now);
      const wanted = wantedOf(fm, now);
      if (addCopy(views.length, 0, wanted)) {
        count("claim", now);
        feed(now);
        const placed = placeModel(candidates(fm.model, now), {
          receivedBy: entry.id,
          exclude: new Set(fm.copies.keys()),
          now,
          warmSavingMsPerByte: fleetLoads().saving,
        });
        if (placed.node !== null) {
          load(byId.get(placed.node) as SimNode, fm, now);
          result.copiesAdded++;
        }
      }
      return;
    }
    result.misses++;
    count("claim", now);
    feed(now);
    const placed = placeModel(candidates(fm.model, now), {
      receivedBy: entry.id,
      now,
      warmSavingMsPerByte: fleetLoads().saving,
    });
    if (placed.node === null) throw new Error(`${key} fits no node (${placed.reason})`);
    const node = byId.get(placed.node) as SimNode;
    if (node !== entry) result.forwards++;
    // The node counts the use before it makes room, as the cache does.
    touch(node, key, now);
    load(node, fm, now);
    serve(node, key, now);
    maybeSave(node, now);
  });
  const end = trace.requests.at(-1)?.at ?? start;
  finishRedis(result, settings, perMinute, feedPerMinute, Math.max(1, minuteOf(end) + 1), nodes);
  return result;
}

function emptyByKind(): Record<RedisOperation, number> {
  return { heartbeat: 0, prune: 0, claim: 0, renew: 0, promote: 0, release: 0, usage: 0, feed_read: 0 };
}

/**
 * Adds the steady operations — each node's heartbeat and prune every heartbeat, a feed read per node for every feed
 * entry (a heartbeat whose record changed is one) or per block timeout when none come, the usage still unmerged — and
 * the rates.
 */
function finishRedis(
  result: FleetSimResult,
  settings: FleetSimSettings,
  perMinute: number[],
  feedPerMinute: number[],
  minutes: number,
  nodes: readonly SimNode[],
): void {
  const beatsPerMinute = (settings.nodes * MINUTE_MS) / settings.heartbeatMs;
  const idleReadsPerMinute = MINUTE_MS / settings.feedBlockMs;
  let peak = 0;
  for (let m = 0; m < minutes; m++) {
    // A busy minute changes most records (rpm, LRU time): count every heartbeat of such a minute as a feed entry.
    const entries = (feedPerMinute[m] ?? 0) + ((perMinute[m] ?? 0) > 0 ? beatsPerMinute : 0);
    const reads = settings.nodes * Math.max(idleReadsPerMinute, entries);
    const total = (perMinute[m] ?? 0) + 2 * beatsPerMinute + reads;
    result.redis.byKind.heartbeat += beatsPerMinute;
    result.redis.byKind.prune += beatsPerMinute;
    result.redis.byKind.feed_read += reads;
    peak = Math.max(peak, total / 60);
  }
  result.redis.byKind.usage += 2 * nodes.filter((n) => n.dirtySince >= 0).length;
  result.redis.operations = Object.values(result.redis.byKind).reduce((a, b) => a + b, 0);
  result.redis.perSecond = result.redis.operations / (minutes * 60);
  result.redis.peakPerSecond = peak;
}
