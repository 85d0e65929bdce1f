/**
 * A node's part in the fleet's copies rule (src/fleet/copies.ts), composed from its cache and its mirror: it counts the
 * requests this node serves per model (published in its record as `traffic`, what other nodes' rules and routing read),
 * tells which of its copies are spare (its cache evicts those first; its record says how many, for placement), adds a
 * copy here when the rule wants one more and placement picks this node (at a request, and at each heartbeat for the
 * models requested anywhere and those with `min_copies`).
 *
 * No Redis call on a request's path: the rule reads the mirror; only an added copy's claim goes to Redis, off the
 * request's path (the request is forwarded to a copy meanwhile).
 */
import type { ModelCache } from "../cache/model-cache.js";
import { asSpareCopy, type EvictionCandidate, fleetLoadTimes } from "../cache/policy/eviction.js";
import { fleetFrequency } from "../cache/policy/frequency.js";
import { setLongTimeout, type LongTimer } from "../cache/clock.js";
import { messageOf } from "../errors/index.js";
import {
  addCopy,
  copiesFacts,
  type CopyView,
  countUse,
  isExtraCopy,
  type ModelUse,
  pickCopy,
  ratePerMinute,
  type UseStreak,
  wantedCopies,
} from "../fleet/copies.js";
import {
  busyLadder,
  fleetLoadRate,
  LoadRates,
  publishedUsage,
  type LoadRate,
  type LoadTier,
  type FleetMember,
  type FleetSettings,
  type Holder,
  type ModelTraffic,
} from "../fleet/index.js";

/** A model unloaded this recently likely still has its file in the page cache (the eviction bench's warm window). */
const WARM_WINDOW_MS = 10 * 60_000;
/**
 * How long the rule's answer at a request is kept while the mirror does not change: its time windows are minutes
 * (a use within a minute, a streak of 7), so a second changes nothing it reads.
 */
const AT_REQUEST_KEPT_MS = 1000;
/**
 * How soon a node first checks whether a busy model its last ladder left out is idle (`republishWhenIdle`), and the
 * longest wait between two checks (doubling from the first): a short request is caught within milliseconds, a long
 * generation costs a few checks a second.
 */
const LEFT_OUT_CHECK_MS = { first: 5, most: 250 };

export class FleetCopies {
  private readonly served = new Map<string, ModelUse>();
  /** Model → when this node unloaded it (for `warm`). */
  private readonly unloaded = new Map<string, number>();
  /** Models a copy is being added for here (one decision at a time per model). */
  private readonly adding = new Set<string>();
  /** This node's recent loads (its record's `load_rate`). */
  private readonly loadRates = new LoadRates();
  /** The rule's last answer at a request, per model, and what it was worked out from (`wantedAtRequest`). */
  private readonly atRequest = new Map<string, { version: number; at: number; copies: number; wanted: number }>();
  /** Models this node has loaded (a later load is a reload). */
  private readonly loadedBefore = new Set<string>();
  private timer: LongTimer | null = null;
  private closed = false;
  /** Busy models the last ladder left out ahead of an idle one (`busyLadder`), and the check for their end. */
  private leftOut: readonly string[] = [];
  private leftOutTimer: LongTimer | null = null;
  /** When the record was last published again for them: at most once a heartbeat. */
  private republishedAt = 0;

  constructor(
    private readonly settings: FleetSettings,
    private readonly member: FleetMember,
    private readonly cache: ModelCache,
    private readonly warn: (message: string) => void,
    /** The fleet's name for a configured model name (its canonical name here). */
    private readonly canonical: (name: string) => Promise<string>,
  ) {}

  /** Starts following the cache, and checking the copies every heartbeat. */
  start(): () => void {
    const count = ({ name }: { name: string }) => this.count(name);
    const offs = [
      this.cache.on("hit", count),
      this.cache.on("miss", count),
      this.cache.on("coalesced", count),
      this.cache.on("evict", ({ name }) => this.unloaded.set(name, Date.now())),
      this.cache.on("load", ({ name, durationMs, memoryBytes }) =>
        this.loadRates.add(durationMs, memoryBytes, this.tierOf(name, Date.now() - durationMs)),
      ),
    ];
    this.cache.setFleet({
      isSpare: (name) => this.isSpare(name),
      loadRate: () => this.fleetLoadRate(),
      usageElsewhere: (name) => this.usageElsewhere(name),
    });
    const tick = (): void => {
      if (this.closed) return;
      this.timer = setLongTimeout(() => {
        void this.keepCopies()
          .catch((error: unknown) => this.warn(`fleet: keeping the copies rule failed: ${messageOf(error)}`))
          .finally(tick);
      }, this.settings.heartbeatMs);
      this.timer.unref();
    };
    tick();
    return () => {
      this.closed = true;
      this.timer?.clear();
      this.leftOutTimer?.clear();
      this.cache.setFleet(null);
      for (const off of offs) off();
    };
  }

  private count(name: string, now = Date.now()): void {
    let served = this.served.get(name);
    if (!served) this.served.set(name, (served = { recent: [], streak: null }));
    countUse(served, now);
  }

  private rpm(name: string, now: number): number {
    const served = this.served.get(name);
    if (!served) return 0;
    return ratePerMinute(served.recent, now);
  }

  /** The traffic of the models this node holds, for its record. */
  traffic(now = Date.now()): Record<string, ModelTraffic> {
    const out: Record<string, ModelTraffic> = {};
    for (const model of this.cache.loadedModels()) {
      if (model.state !== "unloading") out[model.name] = this.ownTraffic(model.name, now, model.leases);
    }
    return out;
  }

  /** This node's traffic of `name` from its own counts (no cache call: eviction asks while it chooses). */
  private ownTraffic(name: string, now: number, queue: number): ModelTraffic {
    const served = this.served.get(name);
    return { rpm: this.rpm(name, now), queue, since: served?.streak?.since ?? now, last: served?.streak?.last ?? 0 };
  }

  /** Which page-cache tier a load of `name` that began `at` found (`LoadTier`); marks `name` loaded here. */
  private tierOf(name: string, at: number): LoadTier {
    const unloaded = this.unloaded.get(name);
    if (unloaded !== undefined && at - unloaded <= WARM_WINDOW_MS) return "warm";
    if (this.loadedBefore.has(name)) return "cold";
    this.loadedBefore.add(name);
    return "first";
  }

  /** The models whose files are likely still in this node's page cache, for its record. */
  warm(now = Date.now()): string[] {
    const loaded = new Set(this.cache.loadedModels().map((m) => m.name));
    for (const [name, at] of this.unloaded) if (now - at > WARM_WINDOW_MS) this.unloaded.delete(name);
    return [...this.unloaded.keys()].filter((name) => !loaded.has(name));
  }

  /**
   * This node's idle models in the order its policy evicts them (spare copies first, at no loss), for its record:
   * placement reads what making room here would cost. Loss: requests per hour (decayed, the fleet's: `fleetFrequency`)
   * × load time (`fleetLoadTimes`), as its eviction weighs them. A busy model it leaves out ahead of an idle one has
   * the record published again once it is idle (`republishWhenIdle`).
   */
  ladder(): Array<{ bytes: number; loss: number }> {
    const stats = this.cache.stats();
    const ready = this.cache.loadedModels().filter((m) => m.state === "ready" && !m.pinned);
    const names = new Set(ready.map((m) => m.name));
    const busy = new Set(ready.filter((m) => m.leases > 0).map((m) => m.name));
    const candidates = stats.models
      .filter((m) => names.has(m.name))
      .map((m) => {
        const candidate: EvictionCandidate = {
          key: m.name,
          lastUsedAt: m.last_used === null ? null : Date.parse(m.last_used),
          memoryBytes: m.memory_bytes,
          loadMs: m.avg_load_ms,
          loads: m.loads,
          frequency: this.fleetFrequency(m.name, m.frequency_per_hour),
          inflation: 0,
        };
        return this.isSpare(m.name) ? asSpareCopy(candidate) : candidate;
      });
    const limits = { maxModels: stats.max_cached_models, maxMemoryBytes: stats.memory_limit_bytes };
    const weighed = fleetLoadTimes(candidates, this.fleetLoadRate());
    const { ladder, leftOut } = busyLadder(weighed, this.settings.evictionPolicy, limits, busy);
    this.republishWhenIdle(leftOut);
    return ladder;
  }

  /**
   * A heartbeat once one of `names` (busy models the ladder just left out ahead of an idle one) is idle or gone, so
   * the fleet does not place loads by a ladder that makes room here look dearer than it is until the next heartbeat:
   * in the bench's Zipf replay the heartbeat after a load found the model serving the request it was loaded for, and
   * for a second the node looked full of models it would not give up. Checked `LEFT_OUT_CHECK_MS` apart until then
   * or the next heartbeat (which builds the ladder anew), at most once a heartbeat.
   */
  private republishWhenIdle(names: readonly string[]): void {
    this.leftOut = names;
    const now = Date.now();
    if (names.length === 0 || this.leftOutTimer !== null || now - this.republishedAt < this.settings.heartbeatMs)
      return;
    const until = now + this.settings.heartbeatMs;
    let wait = LEFT_OUT_CHECK_MS.first;
    const check = (): void => {
      this.leftOutTimer = null;
      if (this.closed || this.leftOut.length === 0) return;
      const resident = new Map(this.cache.loadedModels().map((m) => [m.name, m.leases]));
      if (this.leftOut.some((name) => (resident.get(name) ?? 0) === 0)) {
        this.republishedAt = Date.now();
        void this.member.beat();
      } else if (Date.now() < until) arm();
    };
    const arm = (): void => {
      this.leftOutTimer = setLongTimeout(check, wait);
      this.leftOutTimer.unref();
      wait = Math.min(2 * wait, LEFT_OUT_CHECK_MS.most);
    };
    arm();
  }

  /** This node's usage of the models it used most, for its record. */
  usage(): Record<string, number> {
    return publishedUsage(this.cache.stats().models);
  }

  /**
   * The other live nodes' usage of `name` (uses per hour, from their records: no Redis call) and the copies the fleet
   * holds of it.
   */
  private usageElsewhere(name: string): { perHour: number; copies: number } {
    let perHour = 0;
    for (const node of this.member.mirror.liveNodes()) {
      const usage = node.id === this.member.nodeId ? undefined : node.record?.usage;
      if (usage && Object.hasOwn(usage, name)) perHour += usage[name] ?? 0;
    }
    return { perHour, copies: this.member.holders(name).length };
  }

  /** `name`'s uses per hour as this node weighs it: `fleetFrequency` of its own `perHour` and the fleet's. */
  private fleetFrequency(name: string, perHour: number): number {
    const elsewhere = this.usageElsewhere(name);
    return fleetFrequency(perHour, elsewhere.perHour, elsewhere.copies);
  }

  /** This node's recent loads, for its record. */
  loadRate(): LoadRate | undefined {
    return this.loadRates.published();
  }

  /** The fleet's typical load time per byte, from the live nodes' records and this node's loads (no Redis call). */
  private fleetLoadRate(): number | null {
    const self = this.member.nodeId;
    return fleetLoadRate([
      this.loadRate(),
      ...this.member.mirror
        .liveNodes()
        .filter((n) => n.id !== self)
        .map((n) => n.record?.load_rate),
    ]);
  }

  /** How many of this node's copies are spare now, for its record. */
  spareCount(): number {
    return this.cache.loadedModels().filter((m) => m.state === "ready" && this.isSpare(m.name)).length;
  }

  /** A holder's traffic for `name`: this node's own from its counts (fresher than its record), others' from records. */
  private trafficOf(node: string, name: string, now: number, queue = 0): ModelTraffic | undefined {
    if (node === this.member.nodeId) return this.ownTraffic(name, now, queue);
    const record = this.member.mirror.node(node)?.record;
    return record?.traffic && Object.hasOwn(record.traffic, name) ? record.traffic[name] : undefined;
  }

  /**
   * Requests in flight for `name` on `node` as its record last published them (this node's too: eviction asks the rule
   * while it chooses, so no cache call).
   */
  private publishedQueue(node: string, name: string): number {
    const traffic = this.member.mirror.node(node)?.record?.traffic;
    return traffic && Object.hasOwn(traffic, name) ? (traffic[name]?.queue ?? 0) : 0;
  }

  /** The copies as the rule sees them; `ownQueue`: this node's requests in flight for the model (for routing). */
  private views(name: string, holders: readonly Holder[], now: number, ownQueue = 0): CopyView[] {
    return holders.map((h) => ({
      node: h.node,
      since: h.copy.since,
      queue: this.trafficOf(h.node, name, now, ownQueue)?.queue ?? 0,
    }));
  }

  /** The copies the rule wants of `name` now, from the holders' published traffic and the fleet's room. */
  wanted(name: string, holders: readonly Holder[], now = Date.now(), ruleName = name): number {
    let rpm = 0;
    let streak: UseStreak | null = null;
    for (const h of holders) {
      const t = this.trafficOf(h.node, name, now);
      if (!t) continue;
      rpm += t.rpm;
      if (t.last > 0)
        streak = streak
          ? { since: Math.min(streak.since, t.since), last: Math.max(streak.last, t.last) }
          : { since: t.since, last: t.last };
    }
    const candidates = this.member.candidates(name);
    const copies = holders.map((h) => ({
      node: h.node,
      since: h.copy.since,
      queue: this.publishedQueue(h.node, name),
    }));
    return wantedCopies(copiesFacts({ rpm, streak }, copies, candidates, now), this.settings.copies(ruleName));
  }

  /** Whether this node's copy of `name` is spare: the fleet holds more copies than the rule wants, and this is not among the oldest. */
  isSpare(name: string): boolean {
    if (this.member.status !== "joined") return false;
    const holders = this.member.holders(name);
    if (holders.length < 2) return false;
    const now = Date.now();
    return isExtraCopy(this.views(name, holders, now), this.wanted(name, holders, now), this.member.nodeId);
  }

  /**
   * The copy a request for `name` goes to among `holders` (ready ones first), by queue; this node's own copy wins
   * among equals. Undefined when none qualifies.
   */
  pick(name: string, holders: readonly Holder[]): Holder | undefined {
    const ready = holders.filter((h) => h.copy.state === "ready");
    const pool = ready.length > 0 ? ready : holders;
    const ownQueue = this.cache.loadedModels().find((m) => m.name === name)?.leases ?? 0;
    const chosen = pickCopy(this.views(name, pool, Date.now(), ownQueue), this.member.nodeId);
    return pool.find((h) => h.node === chosen?.node);
  }

  /**
   * A request for `name` reached this node, which does not hold it: when the rule wants one more copy and placement
   * (among the nodes without one) picks this node, it claims a copy and loads it in the background.
   */
  consider(name: string, holders: readonly Holder[], file?: { size: number }): void {
    if (this.adding.has(name) || holders.length === 0) return;
    const loading = holders.filter((h) => h.copy.state === "loading").length;
    const wanted = this.wantedAtRequest(name, holders);
    if (!addCopy(holders.length, loading, wanted)) return;
    this.add(name, wanted, holders, file);
  }

  /**
   * `wanted` for a request's `consider`: worked out again only when the mirror changed (every input but this node's
   * clock comes from it: the holders' records, the fleet's room), the holders differ (a failed one left out), or
   * `AT_REQUEST_KEPT_MS` passed. Worked out per request, the rule took about 5 % of a forward's CPU.
   */
  private wantedAtRequest(name: string, holders: readonly Holder[]): number {
    const now = Date.now();
    const version = this.member.mirror.version;
    const kept = this.atRequest.get(name);
    if (kept && kept.version === version && kept.copies === holders.length && now - kept.at < AT_REQUEST_KEPT_MS) {
      return kept.wanted;
    }
    const wanted = this.wanted(name, holders, now);
    this.atRequest.set(name, { version, at: now, copies: holders.length, wanted });
    return wanted;
  }

  private add(name: string, wanted: number, holders: readonly Holder[], file?: { size: number }): void {
    const placed = this.member.place(
      name,
      file,
      holders.map((h) => h.node),
    );
    if (placed.node !== this.member.nodeId || this.member.status !== "joined") return;
    this.adding.add(name);
    void (async () => {
      const claim = await this.member.claim(name, wanted);
      // Degraded meanwhile: no copy to add without the fleet.
      if (claim.kind === "local") await this.member.release(name, claim.copy.token);
      if (claim.kind !== "claimed") return;
      await this.cache.load(name);
    })()
      .catch((error: unknown) => this.warn(`fleet: adding a copy of ${name} failed: ${messageOf(error)}`))
      .finally(() => this.adding.delete(name));
  }

  /**
   * Every heartbeat: each model with a `min_copies` (or pinned) and each model a node serves (its record's traffic)
   * that has fewer live copies than the rule wants, none loading: this node adds one when placement picks it. So a
   * model whose requests all reach its holder directly still gets its copies, and a lost holder is replaced.
   */
  private async keepCopies(): Promise<void> {
    if (this.member.status !== "joined") return;
    // The fleet's name of each model → the name its rule is configured under.
    const names = new Map<string, string>();
    for (const configured of this.settings.kept) names.set(await this.canonical(configured), configured);
    for (const node of this.member.mirror.liveNodes()) {
      for (const [name, t] of Object.entries(node.record?.traffic ?? {})) {
        if (t.rpm > 0 && !names.has(name)) names.set(name, name);
      }
    }
    for (const [name, configured] of names) {
      if (this.adding.has(name) || this.member.ownCopy(name)) continue;
      const holders = this.member.holders(name);
      if (holders.some((h) => h.copy.state === "loading")) continue;
      const wanted = this.wanted(name, holders, Date.now(), configured);
      if (holders.length < wanted) this.add(name, wanted, holders);
    }
  }
}
