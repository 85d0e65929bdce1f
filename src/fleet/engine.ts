/**
 * The fleet engine: one node's handle on the fleet's shared state in Redis. Every change is one atomic Lua script
 * (scripts.ts); this class only sends them and decodes the replies. Every call is bounded in time (`callTimeoutMs`): a
 * Redis that is down fails at once (no offline queue), a hanging one fails after the limit, and either way the caller
 * gets `FleetUnavailable` and goes on as a single node. A script error (a bug, not an outage) is thrown as it is.
 */
import { randomUUID } from "node:crypto";
import { Redis, ReplyError } from "ioredis";
import { FleetUnavailable, messageOf } from "../errors/index.js";
import { withTimeout } from "../cache/clock.js";
import { mergeDelta } from "../cache/persistence/merge.js";
import type { CacheState, StateDelta } from "../cache/persistence/types.js";
import { fleetKeys, type FleetKeys } from "./keys.js";
import { SCRIPTS } from "./scripts.js";
import type { FleetPlan, FleetPlanItemState } from "./warmup.js";
import type { Copy, FeedEvent, FleetSnapshot, Holder, LoadFailure, NodeRecord, RedisMilliseconds } from "./types.js";
import { redactRedisUrl } from "../config/secrets.js";

export interface FleetEngineOptions {
  redisUrl: string;
  /** The fleet's name (the hash tag of every key). */
  name: string;
  nodeId: string;
  /** How long one Redis call may take (ms). Default 500: a request never waits longer on Redis. */
  callTimeoutMs?: number;
  /** A loading copy's lease (ms); its loader renews it while the load makes progress. Default 30 s. */
  loadLeaseMs?: number;
  /** How long a load failure counts (ms). Default 15 min (ModelMesh's). */
  failureWindowMs?: number;
  /** Recent failures fleet-wide after which a model is not loaded again until one expires. Default 3. */
  maxFailures?: number;
  /** Merged delta ids remembered, so a retried delta counts once. Default 10,000. */
  appliedDeltasKept?: number;
  /**
   * The longest wait between two reconnection attempts while Redis is away (ms; they start at 100 and grow). Default
   * 1000; a node passes at most half its heartbeat, so it is back within two heartbeats of Redis returning.
   */
  reconnectMaxMs?: number;
}

export type ClaimResult =
  /**
   * `node` holds a loading copy with `copy.token`: the caller's own (load it, renew the lease, then promote or release)
   * or the placed node's (forward there: it adopts the copy when its load starts).
   */
  | { kind: "claimed"; now: RedisMilliseconds; copy: Copy; node: string }
  /** Live copies exist (ready or loading), the caller's own included: forward to one. */
  | { kind: "held"; now: RedisMilliseconds; holders: Holder[] }
  /** Too many recent failures: `failures` say where and why. */
  | { kind: "refused"; now: RedisMilliseconds; failures: LoadFailure[] }
  /** The caller is not a live node (its lease ran out): heartbeat first. */
  | { kind: "unregistered"; now: RedisMilliseconds };

export interface HeartbeatResult {
  now: RedisMilliseconds;
  lease: RedisMilliseconds;
  /** false: Redis did not know this process (first beat, pruned while away, Redis restarted empty). */
  known: boolean;
  leases: Array<{ id: string; lease: RedisMilliseconds }>;
  /** The Redis dataset's id: it changes when Redis restarted empty. */
  epoch: string;
}

type Reply = string | number | null | Reply[];

/** Who leads the warm-up (`lead`): the caller leads when `node` is its own id. */
export interface Leadership {
  /** The leader's id; "" when none holds the lease. */
  node: string;
  /** Its fencing epoch: a plan written under an older one is refused. */
  epoch: number;
  /** End of its lease (Redis ms). */
  lease: RedisMilliseconds;
  now: RedisMilliseconds;
}

/** The warm-up plan, its progress and the leader, as read at one instant (`readPlan`). */
export interface PlanView {
  plan: FleetPlan | null;
  /** `<model>@<node>` → state. */
  progress: Record<string, FleetPlanItemState>;
  leader: Leadership;
}

/** Cache events kept in the fleet's `events` stream (oldest trimmed first, `XADD MAXLEN ~`). */
export const EVENTS_MAX = 10_000;

/** One entry of the fleet's event stream: its stream id, the node that sent it, and the event as JSON fields. */
export interface FleetEventEntry {
  id: string;
  node: string;
  event: Record<string, unknown>;
}

/** Reply errors that mean "Redis cannot serve now", as opposed to a script bug. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|NOSCRIPT)/;

/** A reply error that is not an outage: a bug in a script or a command, thrown as it is. */
function isScriptError(error: unknown): boolean {
  return error instanceof (ReplyError as new () => Error) && !TRANSIENT_REPLY.test((error as Error).message);
}

function pairs(flat: Reply[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), String(flat[i + 1])]);
  return out;
}

function parseFailure(raw: string, at: string): LoadFailure {
  const failure = JSON.parse(raw) as { node: string; message: string };
  return { node: failure.node, message: failure.message, at: Number(at) };
}

function parseFeedEntry(id: string, fields: string[]): FeedEvent | null {
  const f = new Map(pairs(fields));
  const seq = Number(f.get("seq"));
  const node = f.get("node") ?? "";
  const model = f.get("model") ?? "";
  const value = f.get("value") ?? "";
  switch (f.get("kind")) {
    case "copy":
      return { seq, id, kind: "copy", model, node, copy: value === "" ? null : (JSON.parse(value) as Copy) };
    case "node":
      return { seq, id, kind: "node", node, record: JSON.parse(value) as NodeRecord };
    case "gone":
      return { seq, id, kind: "gone", node };
    case "fail": {
      const failure = JSON.parse(value) as LoadFailure;
      return {
        seq,
        id,
        kind: "fail",
        model,
        node,
        failure: { node: failure.node, message: failure.message, at: failure.at },
      };
    }
    default:
      return null;
  }
}

export class FleetEngine {
  readonly keys: FleetKeys;
  readonly nodeId: string;
  readonly callTimeoutMs: number;
  readonly loadLeaseMs: number;
  readonly failureWindowMs: number;
  readonly maxFailures: number;
  private readonly appliedDeltasKept: number;
  private readonly client: Redis;
  /** A second connection for the feed's blocking reads, so they never queue ahead of a claim. */
  private readonly feedClient: Redis;
  private readonly redactedUrl: string;
  /** The last connection error, for status output (never holds the password: ioredis names host and port only). */
  lastError: string | null = null;
  private closed = false;

  constructor(options: FleetEngineOptions) {
    this.keys = fleetKeys(options.name);
    this.nodeId = options.nodeId;
    this.callTimeoutMs = options.callTimeoutMs ?? 500;
    this.loadLeaseMs = options.loadLeaseMs ?? 30_000;
    this.failureWindowMs = options.failureWindowMs ?? 15 * 60_000;
    this.maxFailures = options.maxFailures ?? 3;
    this.appliedDeltasKept = options.appliedDeltasKept ?? 10_000;
    this.redactedUrl = redactRedisUrl(options.redisUrl);
    const reconnectMaxMs = options.reconnectMaxMs ?? 1000;
    this.client = new Redis(options.redisUrl, {
      lazyConnect: true,
      // Down means fail now, not queue: the node serves alone meanwhile.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // No `commandTimeout`: every call is bounded by `bounded` (withTimeout), which lets a reply that arrived while the
      // event loop was stalled (a busy machine) count, where ioredis's own timer would fire first and degrade the node.
      connectTimeout: Math.max(this.callTimeoutMs, 1000),
      retryStrategy: (attempt) => Math.min(100 * attempt, reconnectMaxMs),
    });
    this.feedClient = this.client.duplicate();
    for (const client of [this.client, this.feedClient]) {
      client.on("error", (error: unknown) => {
        this.lastError = messageOf(error);
      });
      for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: 1, lua });
    }
  }

  /** Whether the command connection is up (it may still hang: calls are bounded anyway). */
  get connected(): boolean {
    return this.client.status === "ready";
  }

  /** Where the engine connects, without the password. */
  get url(): string {
    return this.redactedUrl;
  }

  /** Connects both connections (bounded); throws `FleetUnavailable` when Redis cannot be reached in time. */
  async connect(): Promise<void> {
    const ready = (client: Redis) => (client.status === "ready" ? Promise.resolve() : client.connect());
    await this.bounded("connect", Promise.all([ready(this.client), ready(this.feedClient)]), 2 * this.callTimeoutMs);
  }

  /** A fresh token for a claim. */
  static token(): string {
    return randomUUID();
  }

  private bounded<T>(operation: string, promise: Promise<T>, ms = this.callTimeoutMs): Promise<T> {
    if (this.closed)
      return Promise.reject(new FleetUnavailable("the fleet engine is closed", { details: { operation } }));
    return withTimeout(
      promise,
      ms,
      () =>
        new FleetUnavailable(`Redis at ${this.redactedUrl} did not answer ${operation} within ${ms} ms`, {
          details: { operation, timeout_ms: ms },
        }),
    ).catch((error: unknown) => {
      if (error instanceof FleetUnavailable) throw error;
      if (isScriptError(error)) throw error;
      this.lastError = messageOf(error);
      throw new FleetUnavailable(`Redis at ${this.redactedUrl} failed ${operation}: ${messageOf(error)}`, {
        cause: error,
        details: { operation },
      });
    });
  }

  private run(script: keyof typeof SCRIPTS, ...args: Array<string | number>): Promise<Reply> {
    const command = (this.client as unknown as Record<string, (...a: Array<string | number>) => Promise<Reply>>)[
      script
    ] as (...a: Array<string | number>) => Promise<Reply>;
    return this.bounded(script, command.call(this.client, this.keys.feed, this.keys.prefix, ...args));
  }

  /** Extends this node's lease to Redis now + `leaseMs` and stores its record. */
  async heartbeat(incarnation: string, record: NodeRecord, leaseMs: number): Promise<HeartbeatResult> {
    const reply = (await this.run(
      "fleetHeartbeat",
      this.nodeId,
      incarnation,
      JSON.stringify(record),
      leaseMs,
      randomUUID(),
    )) as [number, number, number, Reply[], string];
    return {
      now: Number(reply[0]),
      lease: Number(reply[1]),
      known: Number(reply[2]) === 1,
      leases: pairs(reply[3]).map(([id, lease]) => ({ id, lease: Number(lease) })),
      epoch: String(reply[4]),
    };
  }

  /** Removes every node past its lease, with its copies. Returns their ids. */
  async prune(): Promise<string[]> {
    return ((await this.run("fleetPrune")) as Reply[]).map(String);
  }

  /**
   * The cross-node single flight: a live holder, or a loading copy with `token` for `loader` (placement's choice; this
   * node when it is not live). `wanted` (the copies rule, copies.ts): with fewer live copies, none loading and none on
   * the loader, the claim adds the loader's copy.
   */
  async claim(model: string, token: string, wanted = 1, loader = this.nodeId): Promise<ClaimResult> {
    const reply = (await this.run(
      "fleetClaim",
      model,
      this.nodeId,
      token,
      this.loadLeaseMs,
      this.failureWindowMs,
      this.maxFailures,
      wanted,
      loader,
    )) as Reply[];
    const kind = String(reply[0]);
    const now = Number(reply[1]);
    const rest = reply.slice(2);
    switch (kind) {
      case "claimed":
        return { kind, now, copy: JSON.parse(String(rest[0])) as Copy, node: String(rest[1]) };
      case "held":
        return { kind, now, holders: pairs(rest).map(([node, copy]) => ({ node, copy: JSON.parse(copy) as Copy })) };
      case "refused":
        return { kind, now, failures: pairs(rest).map(([raw, at]) => parseFailure(raw, at)) };
      case "unregistered":
        return { kind, now };
      default:
        throw new Error(`fleetClaim answered ${kind}`);
    }
  }

  /** Extends this node's loading lease; null when the copy is gone or its token is not `token`. */
  async renew(model: string, token: string): Promise<Copy | null> {
    const reply = await this.run("fleetRenew", model, this.nodeId, token, this.loadLeaseMs);
    return reply === null ? null : (JSON.parse(String(reply)) as Copy);
  }

  /** This node's loading copy becomes ready; null when it is gone or the token does not match. */
  async promote(model: string, token: string): Promise<Copy | null> {
    const reply = await this.run("fleetPromote", model, this.nodeId, token);
    return reply === null ? null : (JSON.parse(String(reply)) as Copy);
  }

  /** Removes this node's copy; false when it was gone or the token does not match. */
  async release(model: string, token: string): Promise<boolean> {
    return Number(await this.run("fleetRelease", model, this.nodeId, token)) === 1;
  }

  /** Writes this node's copy of one model as it holds it, its other copies unchanged; false when it is not live. */
  async hold(model: string, copy: Copy): Promise<boolean> {
    return Number(await this.run("fleetHold", model, this.nodeId, JSON.stringify(copy))) === 1;
  }

  /** Records a load failure on this node (dropping its loading copy); returns the recent failures fleet-wide. */
  async recordFailure(model: string, token: string, message: string): Promise<number> {
    return Number(await this.run("fleetFail", model, this.nodeId, token, message, this.failureWindowMs));
  }

  /**
   * Makes Redis hold exactly this node's `copies` for it (others it lists for this node are dropped); false when this
   * node is not live (heartbeat first).
   */
  async publish(copies: Array<{ model: string; copy: Copy }>): Promise<boolean> {
    const args = copies.flatMap(({ model, copy }) => [model, JSON.stringify(copy)]);
    const reply = (await this.run("fleetPublish", this.nodeId, ...args)) as Reply[];
    return String(reply[0]) === "ok";
  }

  /** Removes this node (record and copies) when `incarnation` is the one Redis knows; false otherwise. */
  async leave(incarnation: string): Promise<boolean> {
    return Number(await this.run("fleetLeave", this.nodeId, incarnation)) === 1;
  }

  /** The whole shared state at one instant. */
  async snapshot(): Promise<FleetSnapshot> {
    const reply = (await this.run("fleetSnapshot")) as [number, number, string, Reply[], Reply[]];
    const nodes: FleetSnapshot["nodes"] = [];
    for (let i = 0; i + 2 < reply[3].length; i += 3) {
      const record = String(reply[3][i + 2]);
      nodes.push({
        id: String(reply[3][i]),
        lease: Number(reply[3][i + 1]),
        record: record === "" ? null : (JSON.parse(record) as NodeRecord),
      });
    }
    const copies: FleetSnapshot["copies"] = [];
    for (let i = 0; i + 2 < reply[4].length; i += 3) {
      copies.push({
        model: String(reply[4][i]),
        node: String(reply[4][i + 1]),
        copy: JSON.parse(String(reply[4][i + 2])) as Copy,
      });
    }
    return { now: Number(reply[0]), seq: Number(reply[1]), feedId: String(reply[2]), nodes, copies };
  }

  /**
   * The feed after `afterId`, waiting up to `blockMs` for an entry (on its own connection, bounded by `blockMs` plus
   * the call limit). An empty list when nothing came.
   */
  async readFeed(afterId: string, blockMs: number, count = 1000): Promise<FeedEvent[]> {
    const events: FeedEvent[] = [];
    for (const [id, fields] of await this.readStream("feed read", this.keys.feed, afterId, blockMs, count)) {
      const event = parseFeedEntry(id, fields);
      if (event) events.push(event);
    }
    return events;
  }

  /** A stream's entries after `afterId`, waiting up to `blockMs` for one on the feed connection (bounded). */
  private async readStream(
    operation: string,
    key: string,
    afterId: string,
    blockMs: number,
    count: number,
  ): Promise<Array<[string, string[]]>> {
    const reply = (await this.bounded(
      operation,
      this.feedClient.xread("COUNT", count, "BLOCK", blockMs, "STREAMS", key, afterId),
      blockMs + this.callTimeoutMs,
    )) as Array<[string, Array<[string, string[]]>]> | null;
    return (reply ?? []).flatMap(([, entries]) => entries);
  }

  /** The fleet's merged usage statistics, or null when none were merged yet. */
  async loadUsage(): Promise<CacheState | null> {
    const reply = (await this.run("fleetUsageRead", "")) as Reply[];
    return reply[0] === null ? null : (JSON.parse(String(reply[0])) as CacheState);
  }

  /**
   * Adds one delta to the fleet's usage ("merge my delta", persistence/merge.ts), exactly once per `id`: a compare-and-
   * set on the stored version, retried when another node merged in between (a null delta records the id alone); `dup`
   * when that id was merged before (a retry after a call that timed out but did reach Redis). `keepId`: the id is never forgotten (trimmed).
   * `epoch`: merge only into that Redis dataset; `epoch` when Redis restarted empty since (nothing written).
   */
  async mergeUsage(
    id: string,
    delta: StateDelta | null,
    options: { keepId?: boolean; epoch?: string } = {},
  ): Promise<"ok" | "dup" | "epoch"> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const [raw, version, applied] = (await this.run("fleetUsageRead", id)) as [string | null, number, number];
      if (Number(applied) === 1) return "dup";
      const current = raw === null ? null : (JSON.parse(raw) as CacheState);
      const merged = delta === null ? "" : JSON.stringify(mergeDelta(current, delta));
      const keep = options.keepId ? "1" : "0";
      const reply = String(
        await this.run(
          "fleetUsageWrite",
          id,
          Number(version),
          merged,
          this.appliedDeltasKept,
          keep,
          options.epoch ?? "",
        ),
      ) as "ok" | "dup" | "epoch" | "conflict";
      if (reply !== "conflict") return reply;
    }
    throw new FleetUnavailable("the fleet's usage kept changing under 20 merge attempts", {
      details: { operation: "usage merge" },
    });
  }

  /** Takes or renews the warm-up leader lease for this node (`leaseMs`), or tells who holds it. */
  async lead(leaseMs: number): Promise<Leadership> {
    const reply = (await this.run("fleetLead", this.nodeId, leaseMs)) as [string, number, number, number];
    return { node: String(reply[0]), epoch: Number(reply[1]), lease: Number(reply[2]), now: Number(reply[3]) };
  }

  /** Stores `plan` as the fleet's warm-up plan when this node leads under `plan.epoch`; `fenced` otherwise. */
  async writePlan(plan: FleetPlan): Promise<"ok" | "fenced"> {
    const reply = (await this.run("fleetPlanWrite", this.nodeId, plan.epoch, plan.id, JSON.stringify(plan))) as Reply[];
    return String(reply[0]) === "ok" ? "ok" : "fenced";
  }

  /** Records this node's progress on one item of plan `planId` (ignored once another plan replaced it). */
  async planProgress(planId: string, model: string, state: FleetPlanItemState): Promise<boolean> {
    return Number(await this.run("fleetPlanProgress", planId, model, this.nodeId, state)) === 1;
  }

  /** The plan, its progress and the leader. */
  async readPlan(): Promise<PlanView> {
    const reply = (await this.run("fleetPlanRead")) as [string, Reply[], string, number, number, number];
    const progress: Record<string, FleetPlanItemState> = {};
    for (const [item, state] of pairs(reply[1])) progress[item] = state as FleetPlanItemState;
    return {
      plan: reply[0] === "" ? null : (JSON.parse(String(reply[0])) as FleetPlan),
      progress,
      leader: { node: String(reply[2]), epoch: Number(reply[3]), lease: Number(reply[4]), now: Number(reply[5]) },
    };
  }

  /** Appends this node's cache events to the fleet's event stream (one pipeline; the oldest are trimmed). */
  async addEvents(events: ReadonlyArray<Record<string, unknown>>): Promise<void> {
    if (events.length === 0) return;
    const pipeline = this.client.pipeline();
    for (const event of events) {
      pipeline.xadd(
        this.keys.events,
        "MAXLEN",
        "~",
        EVENTS_MAX,
        "*",
        "node",
        this.nodeId,
        "event",
        JSON.stringify(event),
      );
    }
    await this.bounded("event append", pipeline.exec());
  }

  /**
   * The fleet's events after stream id `afterId` (`0-0`: from the oldest kept; `$`: only new ones), waiting up to
   * `blockMs` for one (on the feed connection). An empty list when nothing came.
   */
  async readEvents(afterId: string, blockMs: number, count = 1000): Promise<FleetEventEntry[]> {
    return (await this.readStream("event read", this.keys.events, afterId, blockMs, count)).map(([id, fields]) => {
      const f = new Map(pairs(fields));
      return { id, node: f.get("node") ?? "", event: JSON.parse(f.get("event") ?? "{}") as Record<string, unknown> };
    });
  }

  /** The id of the newest event in the fleet's event stream (`0-0` when it is empty): where "from now on" starts. */
  async lastEventId(): Promise<string> {
    const last = (await this.bounded(
      "event read",
      this.client.xrevrange(this.keys.events, "+", "-", "COUNT", 1),
    )) as Array<[string, string[]]>;
    return last[0]?.[0] ?? "0-0";
  }

  /** Closes both connections (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.disconnect();
    this.feedClient.disconnect();
  }
}
