/**
 * This node's membership in a fleet, composed from the cache: the member (src/fleet/member.ts) heartbeats a record
 * built from the cache's statistics, the cache's events publish this node's copies (a load starts → a loading copy,
 * claimed unless a request's claim made it already; loaded → ready; failed → the failure counts fleet-wide; unloaded →
 * released), and `route` tells the server where a request for a model is served (the server's `FleetPort`).
 */
import type { ModelCache } from "../cache/model-cache.js";
import type { RestoreResult, SaveResult, StateDelta, StateStore } from "../cache/persistence/types.js";
import { messageOf } from "../errors/index.js";
import { FleetEngine, FleetMember, nodeRecordOf, type FleetSettings, type ServedModel } from "../fleet/index.js";
import type { ModelManager } from "../models/manager.js";
import { FleetCopies } from "./fleet-copies.js";
import type { InfernoLogger } from "./logger.js";
import type { FleetPort, FleetRoute } from "./types.js";

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
  /** Load slots the node publishes. */
  loadSlots: number;
  /** The cache's store when it persists: its saves then also go to the fleet's statistics. */
  store?: FleetStateStore | null;
}

export class FleetNode implements FleetPort {
  readonly secret: string;
  private served: Record<string, ServedModel> = {};
  private loading = 0;
  private readonly startedAt = Date.now();
  private readonly stopLoading = new Map<string, () => void>();
  private readonly offs: Array<() => void> = [];
  private readonly deciding = new Map<string, Promise<FleetRoute>>();
  private draining = false;
  /** The copies rule's part on this node: traffic, spare copies, copies added here, `min_copies`. */
  private copies: FleetCopies | null = null;

  private constructor(
    private readonly options: FleetNodeOptions,
    readonly member: FleetMember,
  ) {
    this.secret = options.settings.secret;
  }

  /** Joins the fleet (never throws for a Redis outage: the node then starts degraded and keeps trying). */
  static async join(options: FleetNodeOptions): Promise<FleetNode> {
    const { settings, logger } = options;
    const engine = new FleetEngine({ redisUrl: settings.redisUrl, name: settings.name, nodeId: settings.nodeId });
    let node: FleetNode | null = null;
    const served = await servedModels(options.models);
    const member = await FleetMember.start({
      engine,
      heartbeatMs: settings.heartbeatMs,
      nodeTimeoutMs: settings.nodeTimeoutMs,
      record: () => node?.record() ?? nodeRecordOf(options.cache.stats(), node0Facts(options, served)),
      ...(options.store ? { localUsage: async () => (await options.store!.file.load()).state } : {}),
      log: {
        warn: (message) => logger.warn({ redis: settings.redactedUrl }, message),
        info: (message) => logger.info({ redis: settings.redactedUrl }, message),
      },
    });
    if (options.store) options.store.member = member;
    node = new FleetNode(options, member);
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
      ...node0Facts(this.options, this.served),
      started_at: this.startedAt,
      loading: this.loading,
      draining: this.draining,
      ...(this.copies
        ? {
            traffic: this.copies.traffic(),
            spare_copies: this.copies.spareCount(),
            evictable: this.copies.ladder(),
            warm: this.copies.warm(),
          }
        : {}),
    });
  }

  /** Publishes this node's copies from the cache's events. */
  private follow(): void {
    const { cache, logger } = this.options;
    const warn = (error: unknown) => logger.warn({}, `fleet: ${messageOf(error)}`);
    this.offs.push(
      cache.on("loading", ({ name, progress }) => {
        if (progress !== 0 || this.stopLoading.has(name)) return;
        this.loading++;
        this.stopLoading.set(name, () => {});
        void this.ownLoading(name).catch(warn);
      }),
      cache.on("load", ({ name }) => {
        this.loadSettled(name);
        const copy = this.member.ownCopy(name);
        if (copy) void this.member.promote(name, copy.token).catch(warn);
      }),
      cache.on("load_failed", ({ name, error }) => {
        this.loadSettled(name);
        const copy = this.member.ownCopy(name);
        if (copy) void this.member.failed(name, copy.token, messageOf(error)).catch(warn);
      }),
      cache.on("evict", ({ name }) => {
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
    this.loading = Math.max(0, this.loading - 1);
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

  async route(requested: string, hops: number, exclude: ReadonlySet<string> = new Set()): Promise<FleetRoute> {
    if (this.member.status !== "joined") return { kind: "local" };
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
    const elsewhere = this.copies?.pick(name, others) ?? others[0];
    if (elsewhere && canForward) {
      const url = this.urlOf(elsewhere.node);
      if (url) return { kind: "forward", node: elsewhere.node, url };
    }
    // One decision per model at a time on this node: a request arriving while one is made takes its answer (a claim
    // this node holds while it places the model elsewhere is not a load here).
    let deciding = this.deciding.get(name);
    if (!deciding) {
      deciding = this.decide(name, hops, exclude).finally(() => this.deciding.delete(name));
      this.deciding.set(name, deciding);
    }
    const route = await deciding;
    return route.kind === "forward" && (!canForward || exclude.has(route.node)) ? { kind: "local" } : route;
  }

  /** A miss: the claim (cross-node single flight), then placement. */
  private async decide(name: string, hops: number, exclude: ReadonlySet<string>): Promise<FleetRoute> {
    const self = this.member.nodeId;
    const canForward = hops < MAX_FLEET_HOPS;
    const claim = await this.member.claim(name);
    if (claim.kind === "local") return { kind: "local" };
    if (claim.kind === "held") {
      const holder = claim.holders.find((h) => h.node !== self && !exclude.has(h.node));
      if (!holder || !canForward || claim.holders.some((h) => h.node === self)) return { kind: "local" };
      const url = this.urlOf(holder.node);
      return url ? { kind: "forward", node: holder.node, url } : { kind: "local" };
    }
    // Claimed: this node holds the fleet's one loading copy. A forwarded request loads where it arrived (the node that
    // placed it here decided; placing it again could send it back, as each node prefers itself among near-equals);
    // a client's loads here unless placement picks another node.
    if (hops > 0) return { kind: "local" };
    const file = this.served[name];
    const placed = this.member.place(name, file ? { size: file.size } : undefined, exclude);
    if (placed.node === self) return { kind: "local" };
    const url = placed.node !== null ? this.urlOf(placed.node) : null;
    // No node can load it (no file, too large) or the placed one cannot be dialed: the claim goes, and the request
    // is answered here (a 404 for a model no node has, as on a single node).
    await this.member.release(name, claim.copy.token);
    if (placed.node === null || url === null) return { kind: "local" };
    return { kind: "forward", node: placed.node as string, url };
  }

  private urlOf(node: string): string | null {
    return this.member.mirror.node(node)?.record?.url ?? null;
  }

  /** The name the fleet knows `requested` by here (the model's display name); as given when no file here has it. */
  private async canonicalName(requested: string): Promise<string> {
    try {
      return (await this.options.models.resolve(requested)).name;
    } catch {
      return requested;
    }
  }

  /** Leaves the fleet (its copies go at once, so peers stop routing here). Idempotent. */
  async close(): Promise<void> {
    this.draining = true;
    for (const off of this.offs.splice(0)) off();
    for (const stop of this.stopLoading.values()) stop();
    this.stopLoading.clear();
    await this.member.close({ leave: true });
  }
}

function node0Facts(options: FleetNodeOptions, served: Record<string, ServedModel>) {
  return {
    url: options.settings.advertiseUrl,
    version: options.version,
    started_at: Date.now(),
    loading: 0,
    load_slots: options.loadSlots,
    rpm: 0,
    draining: false,
    serves: served,
  };
}

/** The models this node can load, by display name: their file size (the memory estimate is the size until loaded). */
async function servedModels(models: ModelManager): Promise<Record<string, ServedModel>> {
  const served: Record<string, ServedModel> = {};
  for (const model of await models.list()) {
    served[model.name] = { size: model.fingerprint.size, bytes: model.fingerprint.size };
  }
  return served;
}
