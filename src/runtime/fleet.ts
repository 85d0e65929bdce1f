/**
 * This node's membership in a fleet, composed from the cache: the member (src/fleet/member.ts) heartbeats a record
 * built from the cache's statistics, the cache's events publish this node's copies (a load starts → a loading copy,
 * claimed unless a request's claim made it already; loaded → ready; failed → the failure counts fleet-wide; unloaded →
 * released), and `route` tells the server where a request for a model is served (the server's `FleetPort`).
 */
import type { ModelCache } from "../cache/model-cache.js";
import type { RestoreResult, SaveResult, StateDelta, StateStore } from "../cache/persistence/types.js";
import { FleetModelAway, FleetUnavailable, messageOf, ModelNotFound } from "../errors/index.js";
import {
  FleetEngine,
  FleetLeader,
  FleetMember,
  type NodeFacts,
  nodeRecordOf,
  RequestRate,
  type FleetSettings,
  type ServedModel,
} from "../fleet/index.js";
import { LATEST_TAG, type ModelManager } from "../models/manager.js";
import { NameIndex } from "../models/name-index.js";
import type { FleetReadiness, FleetView } from "../server/ports.js";
import { type DrainResult, drainModels } from "./fleet-drain.js";
import { fleetView, usageByName } from "./fleet-view.js";
import { NodeWarmup } from "./fleet-warmup.js";
import { FleetCopies } from "./fleet-copies.js";
import type { InfernoLogger } from "./logger.js";
import type { FleetModel, FleetPort, FleetRoute, FleetStats } from "./types.js";

/** A request is forwarded at most this many times: a request that arrives with this many hops is served here. */
export const MAX_FLEET_HOPS = 2;

/**
 * The node's state store in a fleet: every save goes to the node's own state file, as on a single node, and then to
 * the fleet's merged statistics once the node has joined (`member`). Saves before joining are in the file, which the
 * member contributes whole to a Redis dataset it has not contributed to yet, so nothing is lost or counted twice.
 */
export class FleetStateStore implements StateStore {
  member: FleetMember | null = null;
  readonly path: string;

  constructor(readonly file: StateStore) {
    this.path = file.path;
  }

  load(): Promise<RestoreResult> {
    return this.file.load();
  }

  async save(delta: StateDelta): Promise<SaveResult> {
    const saved = await this.file.save(delta);
    await this.member?.saveUsage(delta);
    return saved;
  }

  probe(): Promise<Error | null> {
    return this.file.probe?.() ?? Promise.resolve(null);
  }
}

export interface FleetNodeOptions {
  settings: FleetSettings;
  cache: ModelCache;
  models: ModelManager;
  logger: InfernoLogger;
  version: string;
  /** The cache's store when it persists: its saves then also go to the fleet's statistics. */
  store?: FleetStateStore | null;
  /** The fleet warm-up plans the models used this recently (ms; `cache.restore_window_hours`); 0 = no limit. */
  restoreWindowMs: number;
  /** `cache.usage_half_life_hours`: how the fleet's usage decays when the warm-up ranks it. */
  halfLifeHours: number;
}

/** Cache events wait this long on the node before they go to the fleet's event stream in one pipeline (ms). */
const EVENTS_FLUSH_MS = 250;
/** At most this many events wait on the node (a Redis outage drops the oldest). */
const EVENTS_BUFFER = 1000;
/** How long after a live node last served a model of other nodes a request for it is answered 503, not 404. */
const AWAY_MS = 60_000;
/** More distinct names than this resolved to other nodes' models, and they are resolved afresh. */
const FLEET_NAMES_KEPT = 1000;

export class FleetNode implements FleetPort {
  readonly secret: string;
  private served: Record<string, ServedModel> = {};
  /** Peers a forward failed on before its first byte, with their lease then: skipped until it changes (`skipping`). */
  private readonly unreachablePeers = new Map<string, number>();
  /**
   * Names requested here that only other nodes' files answer to: the fleet's name of each (`fleetNamed`), and when a
   * live node last served it (Redis time).
   */
  private readonly fleetNames = new Map<string, { name: string; seen: number }>();
  /** Requests this node's cache took (hits, misses, joins of a load in flight): the published `rpm`. */
  private readonly rate = new RequestRate();
  private readonly stopLoading = new Map<string, () => void>();
  private readonly offs: Array<() => void> = [];
  private readonly deciding = new Map<string, Promise<FleetRoute>>();
  private draining = false;
  private readonly warmup: NodeWarmup;
  private events: Array<Record<string, unknown>> = [];
  private eventsTimer: NodeJS.Timeout | null = null;
  /** The copies rule's part on this node: traffic, spare copies, copies added here, `min_copies`. */
  private copies: FleetCopies | null = null;

  private constructor(
    private readonly options: FleetNodeOptions,
    readonly member: FleetMember,
    private readonly startedAt: number,
  ) {
    this.secret = options.settings.secret;
    const { settings, logger } = options;
    const log = {
      info: (message: string) => logger.info({ node: settings.nodeId }, message),
      warn: (message: string) => logger.warn({ node: settings.nodeId }, message),
    };
    // The share back plans and claims no more copies than a model's rule allows (configured under its fleet name).
    const maxCopies = (model: string) => settings.copies(model).maxCopies;
    this.warmup = new NodeWarmup({
      member,
      leader: new FleetLeader({
        engine: member.engine,
        leaseMs: settings.nodeTimeoutMs,
        settleMs: 2 * settings.heartbeatMs,
        restoreWindowMs: options.restoreWindowMs,
        halfLifeHours: options.halfLifeHours,
        maxCopies,
        log,
      }),
      load: (name) => options.cache.load(name),
      startedAt,
      intervalMs: settings.heartbeatMs,
      // Long enough for a leader to take the lease, see the nodes settle and plan.
      waitMs: 2 * settings.nodeTimeoutMs + 4 * settings.heartbeatMs,
      maxCopies,
      log,
    });
  }

  get nodeId(): string {
    return this.member.nodeId;
  }

  /** Joins the fleet (never throws for a Redis outage: the node then starts degraded and keeps trying). */
  static async join(options: FleetNodeOptions): Promise<FleetNode> {
    const { settings, logger } = options;
    const engine = new FleetEngine({
      redisUrl: settings.redisUrl,
      name: settings.name,
      nodeId: settings.nodeId,
      reconnectMaxMs: Math.min(1000, settings.heartbeatMs / 2),
    });
    let node: FleetNode | null = null;
    const served = await servedModels(options.models);
    const startedAt = Date.now();
    const member = await FleetMember.start({
      engine,
      heartbeatMs: settings.heartbeatMs,
      nodeTimeoutMs: settings.nodeTimeoutMs,
      record: () =>
        node?.record() ?? nodeRecordOf(options.cache.stats(), { ...nodeFacts(options, served), started_at: startedAt }),
      ...(options.store ? { localUsage: async () => (await options.store!.file.load()).state } : {}),
      log: {
        warn: (message) => logger.warn({ redis: settings.redactedUrl }, message),
        info: (message) => logger.info({ redis: settings.redactedUrl }, message),
      },
    });
    if (options.store) options.store.member = member;
    node = new FleetNode(options, member, startedAt);
    node.served = served;
    node.copies = new FleetCopies(
      settings,
      member,
      options.cache,
      (message) => logger.warn({}, message),
      (name) => node!.canonicalName(name),
    );
    node.offs.push(node.copies.start());
    node.follow();
    node.warmup.start();
    logger.info(
      { node: settings.nodeId, redis: settings.redactedUrl, fleet: settings.name, status: member.status },
      `fleet ${settings.name}: node ${settings.nodeId} (${settings.advertiseUrl}) ${member.status === "joined" ? "joined" : "starts degraded: Redis is unreachable"}`,
    );
    return node;
  }

  status(): "ok" | "degraded" {
    return this.member.status === "joined" ? "ok" : "degraded";
  }

  private record() {
    void servedModels(this.options.models).then(
      (served) => (this.served = served),
      () => {},
    );
    return nodeRecordOf(this.options.cache.stats(), {
      ...nodeFacts(this.options, this.served),
      started_at: this.startedAt,
      rpm: this.rate.perMinute(Date.now()),
      draining: this.draining,
      ...(this.copies
        ? {
            traffic: this.copies.traffic(),
            spare_copies: this.copies.spareCount(),
            evictable: this.copies.ladder(),
            warm: this.copies.warm(),
            usage: this.copies.usage(),
            load_rate: this.copies.loadRate(),
          }
        : {}),
    });
  }

  /** Publishes this node's copies from the cache's events. */
  private follow(): void {
    const { cache, logger } = this.options;
    const warn = (error: unknown) => logger.warn({}, `fleet: ${messageOf(error)}`);
    const counted = () => this.rate.count(Date.now());
    this.offs.push(
      cache.on("hit", counted),
      cache.on("miss", counted),
      cache.on("coalesced", counted),
      cache.on("loading", ({ name, progress }) => {
        if (progress !== 0 || this.stopLoading.has(name)) return;
        this.stopLoading.set(name, () => {});
        void this.ownLoading(name).catch(warn);
      }),
      cache.on("load", ({ name }) => {
        this.loadSettled(name);
        // The record changed (a model more, less free memory): published now rather than at the next heartbeat, so
        // the other nodes' placement does not work from a record one heartbeat old while loads come fast.
        void this.member.beat();
        const copy = this.member.ownCopy(name);
        if (copy) void this.member.promote(name, copy.token).catch(warn);
      }),
      cache.on("load_failed", ({ name, error }) => {
        this.loadSettled(name);
        const copy = this.member.ownCopy(name);
        if (copy) void this.member.failed(name, copy.token, messageOf(error)).catch(warn);
      }),
      cache.on("evict", ({ name }) => {
        void this.member.beat();
        const copy = this.member.ownCopy(name);
        if (copy) void this.member.release(name, copy.token).catch(warn);
      }),
    );
  }

  /** A load started here: its loading copy (a request's claim made it, or it is claimed now) is kept alive. */
  private async ownLoading(name: string): Promise<void> {
    if (!this.member.ownCopy(name)) await this.member.claim(name);
    // Another node holds it (a warm-up or an explicit load here, a holder that could not be reached): a second copy.
    const copy = this.member.ownCopy(name) ?? (await this.member.hold(name));
    if (!this.stopLoading.has(name)) {
      // The load ended while the copy was being claimed (a tiny model): settle the copy as the load did.
      const ready = this.options.cache.loadedModels().some((m) => m.name === name && m.state === "ready");
      await (ready ? this.member.promote(name, copy.token) : this.member.release(name, copy.token));
      return;
    }
    this.stopLoading.set(name, this.member.keepLoading(name, copy.token));
  }

  private loadSettled(name: string): void {
    const stop = this.stopLoading.get(name);
    if (!stop) return;
    stop();
    this.stopLoading.delete(name);
  }

  /**
   * Whether this node holds `name` now (ready or loading). A claim whose request never started a load (it was refused
   * after routing, e.g. a 400) is dropped once its lease would have run out.
   */
  private holds(name: string): boolean {
    if (this.options.cache.loadedModels().some((m) => m.name === name)) return true;
    const own = this.member.ownCopy(name);
    if (!own) return false;
    const stale =
      own.state === "loading" &&
      !this.stopLoading.has(name) &&
      own.since + this.member.engine.loadLeaseMs < this.member.mirror.redisNow();
    if (!stale) return true;
    void this.member.release(name, own.token).catch(() => {});
    return false;
  }

  async route(requested: string, hops: number, failed: ReadonlySet<string> = new Set()): Promise<FleetRoute> {
    const joined = this.member.status === "joined";
    const route = await (joined ? this.routeJoined(requested, hops, failed) : this.routeAlone(requested, hops, failed));
    if (route.kind === "forward" || failed.size === 0) return route;
    // Its holder failed this request before any byte and no other node can load it: as for a holder that left.
    const away = this.served[await this.canonicalName(requested)] === undefined ? this.away(requested) : null;
    if (away) throw away;
    return route;
  }

  private async routeJoined(requested: string, hops: number, failed: ReadonlySet<string>): Promise<FleetRoute> {
    const exclude = this.skipping(failed);
    const name = await this.canonicalName(requested);
    const self = this.member.nodeId;
    const canForward = hops < MAX_FLEET_HOPS;
    const holders = this.member.holders(name).filter((h) => !exclude.has(h.node));
    if (this.holds(name)) {
      if (!holders.some((h) => h.node === self)) return { kind: "local" };
      // Spread over the copies by queue: another copy with a shorter queue takes it (a forward is served there).
      const target = hops === 0 && canForward ? this.copies?.pick(name, holders) : undefined;
      const url = target && target.node !== self ? this.urlOf(target.node) : null;
      return target && url ? { kind: "forward", node: target.node, url } : { kind: "local" };
    }
    const others = holders.filter((h) => h.node !== self);
    if (hops === 0)
      this.copies?.consider(name, others, this.served[name] ? { size: this.served[name].size } : undefined);
    // One copy elsewhere is where it goes (no queues to weigh).
    const elsewhere = others.length > 1 ? (this.copies?.pick(name, others) ?? others[0]) : others[0];
    // A forwarded request asks Redis (the claim) rather than the mirror, which may not show yet that the sender let
    // its claim go here: the mirror could send it straight back.
    if (elsewhere && hops === 0) {
      const url = this.urlOf(elsewhere.node);
      if (url) return { kind: "forward", node: elsewhere.node, url };
    }
    // One decision per model at a time on this node: a request arriving while one is made takes its answer (one claim
    // per burst; the answer names the node that loads, so a forwarded request that takes it ends there).
    let deciding = this.deciding.get(name);
    if (!deciding) {
      deciding = this.decide(name, hops, exclude).finally(() => this.deciding.delete(name));
      this.deciding.set(name, deciding);
    }
    const route = await deciding;
    return route.kind === "forward" && (!canForward || exclude.has(route.node)) ? { kind: "local" } : route;
  }

  /**
   * Redis away (or not reached yet): a model with a file here is served here, as on a single node. One only other nodes
   * have goes, once, to the node the mirror last showed holding it ready, else to one whose file it is: peers usually
   * outlive a Redis outage, and with different model folders this node alone would answer 404. A peer that cannot be
   * reached is skipped; with none left the request is answered here.
   */
  private async routeAlone(requested: string, hops: number, failed: ReadonlySet<string>): Promise<FleetRoute> {
    if (hops > 0 || this.member.status === "closed") return { kind: "local" };
    const name = await this.canonicalName(requested);
    if (this.served[name] !== undefined) return { kind: "local" };
    const { mirror } = this.member;
    const peers = mirror
      .knownNodes()
      .filter((n) => n.id !== this.nodeId && !failed.has(n.id) && !this.unreachablePeers.has(n.id) && n.record);
    const holding = peers.find((n) => mirror.copiesOn(n.id).some((c) => c.model === name && c.copy.state === "ready"));
    const target = holding ?? peers.find((n) => n.record?.serves[name] !== undefined);
    return target?.record ? { kind: "forward", node: target.id, url: target.record.url } : { kind: "local" };
  }

  /**
   * A miss: placement, then the claim (the cross-node single flight) for the placed node, in one script, so that any
   * claim's answer names the node that loads. (A claim this node made for itself and gave to the placed node afterwards
   * left a moment when another node's claim found this node as the loader: that node forwarded here, and, joining this
   * node's decision or at the hop bound, the request loaded here as well as on the placed node.)
   */
  private async decide(name: string, hops: number, exclude: ReadonlySet<string>): Promise<FleetRoute> {
    const self = this.member.nodeId;
    const canForward = hops < MAX_FLEET_HOPS;
    const placed = this.placeLoad(name, hops, exclude);
    const claim = await this.member.claim(name, 1, placed?.node ?? self);
    if (claim.kind === "local") return { kind: "local" };
    if (claim.kind === "held") {
      if (!canForward || claim.holders.some((h) => h.node === self)) return { kind: "local" };
      // Every holder failed this request before its first byte (killed, hung: their leases still run): a load where
      // placement puts it among the others, which may not be here (this node may not have the file).
      const holder = claim.holders.find((h) => h.node !== self && !exclude.has(h.node)) ?? placed;
      const url = holder && holder.node !== self ? this.urlOf(holder.node) : null;
      return url && holder ? { kind: "forward", node: holder.node, url } : { kind: "local" };
    }
    if (claim.node === self) {
      // No node can load it (no file, too large): the claim goes, and the request is answered here (a 404 for a model
      // no node has, as on a single node).
      if (placed === null) await this.member.release(name, claim.copy.token);
      return { kind: "local" };
    }
    // The placed node holds the claim; it adopts it when its load starts. (Gone meanwhile: its lease lapses.)
    const url = this.urlOf(claim.node);
    return url ? { kind: "forward", node: claim.node, url } : { kind: "local" };
  }

  /**
   * Where a load at a miss goes: this node for a forwarded request (the node that sent it here decided; placing it
   * again could send it back, as each node prefers itself among near-equals) unless it is draining, else placement's
   * choice among the nodes that can be dialed; null when no node can load it.
   */
  private placeLoad(name: string, hops: number, exclude: ReadonlySet<string>): { node: string } | null {
    const self = this.member.nodeId;
    if (hops > 0 && !this.draining) return { node: self };
    const file = this.served[name];
    const placed = this.member.place(name, file ? { size: file.size } : undefined, exclude);
    if (placed.node === null) return null;
    // A placed node that cannot be dialed (no record yet): the load stays here.
    return placed.node === self || this.urlOf(placed.node) !== null ? { node: placed.node } : { node: self };
  }

  async stats(): Promise<FleetStats> {
    const summary = this.member.summary();
    const usage = await this.member.loadUsage();
    const hits = usage?.counters.hits ?? 0;
    const misses = usage?.counters.misses ?? 0;
    return {
      status: this.status(),
      node_id: summary.node_id,
      redis: summary.redis,
      pending_deltas: summary.pending_deltas,
      nodes: this.member.mirror.liveNodes().flatMap(({ id, record: r }) =>
        r
          ? [
              {
                id,
                url: r.url,
                models_loaded: r.model_count,
                max_cached_models: r.model_capacity,
                memory_bytes: r.memory_used,
                memory_limit_bytes: r.memory_capacity,
                loading: r.loading,
                load_slots: r.load_slots,
                rpm: r.rpm,
                draining: r.draining,
              },
            ]
          : [],
      ),
      usage: usage && {
        hits,
        misses,
        hit_rate: hits + misses === 0 ? 0 : hits / (hits + misses),
        loads: usage.counters.loads,
        load_failures: usage.counters.load_failures,
        // By name: one model served from different folders has an entry per node's path.
        models: [...usageByName(usage)].map(([name, { requests, hits, misses, loads }]) => ({
          name,
          requests,
          hits,
          misses,
          loads,
        })),
      },
    };
  }

  models(): FleetModel[] {
    const models = new Map<string, Omit<FleetModel, "id">>();
    for (const node of this.member.mirror.liveNodes()) {
      for (const [name, served] of Object.entries(node.record?.serves ?? {})) {
        if (models.has(name)) continue;
        const loaded = this.member.holders(name).some((h) => h.copy.state === "ready");
        models.set(name, { name, size_bytes: served.size, loaded });
      }
    }
    // Each by the shortest name that means it in the fleet (`tiny` for `tiny.gguf`), as a node lists its own models.
    const ids = new NameIndex([...models.keys()].map((name) => ({ name, key: name }))).shortestNames();
    return [...models.values()]
      .map((m) => ({ id: ids.get(m.name) ?? m.name, ...m }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * The model of the fleet `requested` names when no file here has it, by the names a node's own files answer to (the
   * file name, its stem, `NAME:latest`), matched against the names the live nodes publish; undefined when none or
   * more than one.
   */
  private fleetNamed(requested: string): string | undefined {
    // While Redis is away, the nodes as the mirror last showed them (their leases run out unrenewed).
    const nodes = this.member.status === "joined" ? this.member.mirror.liveNodes() : this.member.mirror.knownNodes();
    const now = this.member.mirror.redisNow();
    const remembered = this.fleetNames.get(requested);
    if (remembered !== undefined && nodes.some((n) => n.record?.serves[remembered.name] !== undefined)) {
      remembered.seen = now;
      return remembered.name;
    }
    const names = new Set(nodes.flatMap((n) => Object.keys(n.record?.serves ?? {})));
    const index = new NameIndex([...names].map((name) => ({ name, key: name })));
    let hits = index.match(requested);
    if (hits.length === 0 && requested.endsWith(LATEST_TAG)) hits = index.match(requested.slice(0, -LATEST_TAG.length));
    const name = hits.length === 1 ? hits[0]?.name : undefined;
    if (name === undefined) return undefined;
    if (this.fleetNames.size >= FLEET_NAMES_KEPT) this.fleetNames.clear();
    this.fleetNames.set(requested, { name, seen: now });
    return name;
  }

  /**
   * A name a live node served moments ago and none serves now (its only node restarting, or lost until another with
   * the file loads it): a 503 the client retries, not a 404 that says the model does not exist.
   */
  private away(requested: string): FleetModelAway | null {
    const remembered = this.fleetNames.get(requested);
    if (!remembered || this.member.mirror.redisNow() - remembered.seen > AWAY_MS) return null;
    const retryAfter = Math.max(1, Math.ceil(this.options.settings.heartbeatMs / 1000));
    return new FleetModelAway(
      `model "${requested}" is served by no node of the fleet now: the node(s) with its file left moments ago (a restart?); retry in ${retryAfter} s`,
      { details: { model: requested, retry_after_seconds: retryAfter } },
    );
  }

  alive(node: string): boolean {
    // With Redis away no lease is renewed: the mirror's have all run out after a while, and say nothing of the nodes.
    if (this.member.status !== "joined") return true;
    return this.member.mirror.liveNodes().some((n) => n.id === node);
  }

  unreachable(node: string): boolean {
    const first = !this.unreachablePeers.has(node);
    this.unreachablePeers.set(node, this.member.mirror.redisNow());
    return first;
  }

  /**
   * `failed` (the peers this request failed on) and the peers a forward failed on before (`unreachable`) that have not
   * heartbeated since: a killed node's lease runs on for `node_timeout_seconds`, and each request sent there meanwhile
   * would pay a failed connection and a warning. A peer is back once the mirror shows a lease it was granted after the
   * failure (a lease runs `node_timeout_seconds` from its heartbeat), or its record published since; gone, forgotten.
   */
  private skipping(failed: ReadonlySet<string>): ReadonlySet<string> {
    if (this.unreachablePeers.size === 0) return failed;
    const skipped = new Set(failed);
    for (const [node, failedAt] of this.unreachablePeers) {
      const state = this.member.mirror.node(node);
      if (state && state.lease - this.options.settings.nodeTimeoutMs <= failedAt) skipped.add(node);
      else this.unreachablePeers.delete(node);
    }
    return skipped;
  }

  private urlOf(node: string): string | null {
    return this.member.mirror.node(node)?.record?.url ?? null;
  }

  /**
   * The name the fleet knows `requested` by here (the model's display name); as given when no file here has it. A name
   * resolved before is answered without I/O (`lookup`): resolving stats the file, a thread-pool round trip that every
   * request would otherwise pay before it is routed.
   */
  private async canonicalName(requested: string): Promise<string> {
    const known = this.options.models.lookup(requested);
    if (known) return known.name;
    // A name only other nodes' files answer to, met before: no folder check (a miss here rescans the folders).
    const elsewhere = this.fleetNames.has(requested) ? this.fleetNamed(requested) : undefined;
    if (elsewhere !== undefined) return elsewhere;
    try {
      return (await this.options.models.resolve(requested)).name;
    } catch (error) {
      if (!(error instanceof ModelNotFound)) return requested;
      const name = this.fleetNamed(requested);
      if (name !== undefined) return name;
      const away = this.away(requested);
      if (away) throw away;
      return requested;
    }
  }

  /** This node's part of the fleet warm-up: `/ready` answers 503 until it is done. */
  readiness(): FleetReadiness {
    return this.warmup.readiness();
  }

  /** The whole fleet as Redis holds it now (`GET /v1/fleet`); throws `FleetUnavailable` while degraded. */
  async view(): Promise<FleetView> {
    const { engine } = this.member;
    if (this.member.status !== "joined") {
      throw new FleetUnavailable(`the fleet cannot be shown: Redis at ${engine.url} is unreachable`);
    }
    const [snapshot, plan, usage] = await Promise.all([engine.snapshot(), engine.readPlan(), engine.loadUsage()]);
    return fleetView({
      fleet: this.options.settings.name,
      node: this.nodeId,
      status: this.status(),
      redis: engine.url,
      snapshot,
      plan,
      usage,
    });
  }

  /**
   * One of this node's cache events (as `/v1/cache/events` shows it) for the fleet's event stream: buffered, then sent
   * in one pipeline, never waited for. Load progress between start and end is left out (dozens per load), and so are
   * hits: a hit changes nothing in the fleet (the shared statistics count it), and an entry per hit would make every
   * request on a ready model cost Redis work — the fleet's hot path sends Redis nothing.
   */
  publishEvent(event: Record<string, unknown>): void {
    if (event.type === "hit") return;
    if (event.type === "loading" && event.progress !== 0 && event.progress !== 1) return;
    this.events.push(event);
    if (this.events.length > EVENTS_BUFFER) this.events.splice(0, this.events.length - EVENTS_BUFFER);
    this.eventsTimer ??= setTimeout(() => void this.flushEvents(), EVENTS_FLUSH_MS);
  }

  private async flushEvents(): Promise<void> {
    this.eventsTimer = null;
    if (this.member.status !== "joined" || this.events.length === 0) return;
    const batch = this.events.splice(0);
    await this.member.engine.addEvents(batch).catch(() => undefined);
  }

  /**
   * SIGTERM: the node marks itself draining (its record says so at once: placement skips it, `/ready` answers 503),
   * takes no part of a warm-up plan, and its models are loaded elsewhere before it stops serving them (fleet-drain.ts).
   * The server then stops accepting, lets in-flight requests finish, and the node leaves.
   */
  async drain(): Promise<DrainResult> {
    this.draining = true;
    this.warmup.drain();
    await this.warmup.stop();
    // Published before the models move (a beat running now carries the record from before: this one follows it).
    await this.member.beat();
    return drainModels({
      member: this.member,
      models: this.options.cache.loadedModels(),
      served: this.served,
      secret: this.secret,
      now: Date.now(),
      log: {
        info: (message) => this.options.logger.info({}, message),
        warn: (message) => this.options.logger.warn({}, message),
      },
    });
  }

  /** Leaves the fleet (its copies go at once, so peers stop routing here). Idempotent. */
  async close(): Promise<void> {
    this.draining = true;
    await this.warmup.stop();
    if (this.eventsTimer) clearTimeout(this.eventsTimer);
    await this.flushEvents();
    for (const off of this.offs.splice(0)) off();
    for (const stop of this.stopLoading.values()) stop();
    this.stopLoading.clear();
    await this.member.close({ leave: true });
  }
}

/**
 * The record's facts from the cache as it is now. Loads run as requests need them, with no limit of their own, but
 * each takes a model slot: `load_slots` is the slots free for a load without an eviction.
 */
function nodeFacts(options: FleetNodeOptions, served: Record<string, ServedModel>): NodeFacts {
  const resident = options.cache.loadedModels();
  return {
    url: options.settings.advertiseUrl,
    version: options.version,
    started_at: Date.now(),
    loading: resident.filter((m) => m.state === "loading").length,
    load_slots: Math.max(0, options.cache.stats().max_cached_models - resident.length),
    rpm: 0,
    draining: false,
    serves: served,
  };
}

/**
 * The models this node can load, by display name: their file's fingerprint (size, and sha256 when the node computed it)
 * and the memory estimate (the size until loaded).
 */
async function servedModels(models: ModelManager): Promise<Record<string, ServedModel>> {
  const served: Record<string, ServedModel> = {};
  for (const model of await models.list()) {
    const { size, sha256 } = model.fingerprint;
    served[model.name] = { size, bytes: size, ...(sha256 ? { sha256 } : {}) };
  }
  return served;
}
