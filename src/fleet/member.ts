/**
 * One node's membership in the fleet: its heartbeat, its mirror kept current from the feed, its own copies (with their
 * tokens) and its usage deltas. Degraded, never down: when Redis is unreachable or hangs, every call fails within the
 * engine's limit, the node warns once and goes on as a single node (`claim` answers `local`), and the heartbeat keeps
 * trying; when Redis answers again the node re-registers, re-publishes its copies, reloads its mirror and merges its
 * pending deltas, each exactly once (delta ids).
 *
 * Usage after Redis restarted empty: the merged statistics are gone with it (each Redis dataset has an epoch id). A node
 * then contributes its whole own statistics (`localUsage`) once to the new epoch, in place of its pending deltas (which
 * they include), so the fleet's usage is again the sum of the nodes': nothing lost, nothing counted twice.
 */
import { randomUUID } from "node:crypto";
import { setLongTimeout, type LongTimer } from "../cache/clock.js";
import { replacingDelta } from "../cache/persistence/merge.js";
import type { CacheState, StateDelta } from "../cache/persistence/types.js";
import { FleetLoadRefused, FleetUnavailable, messageOf } from "../errors/index.js";
import { FleetEngine, type ClaimResult } from "./engine.js";
import { fleetWarmSaving } from "./record.js";
import { FleetMirror } from "./mirror.js";
import {
  candidatesFor,
  type Placement,
  type PlacementCandidate,
  placeModel,
  type PlacementRequest,
} from "./placement.js";
import type { Copy, Holder, NodeRecord } from "./types.js";

export type FleetStatus = "joining" | "joined" | "degraded" | "closed";

export interface FleetSummary {
  status: FleetStatus;
  node_id: string;
  /** The Redis URL without its password. */
  redis: string;
  /** Live nodes as the mirror sees them, this one included. */
  live_nodes: number;
  /** Usage deltas waiting for Redis. */
  pending_deltas: number;
}

export interface FleetLog {
  warn(message: string): void;
  info(message: string): void;
}

export interface FleetMemberOptions {
  engine: FleetEngine;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  /** The node's record as of now, read at every heartbeat. */
  record: () => NodeRecord;
  /**
   * The node's own statistics, including every delta handed to `saveUsage` so far (its state file's content): what
   * it contributes to a Redis that restarted empty. Absent: only deltas are merged.
   */
  localUsage?: () => Promise<CacheState | null>;
  log: FleetLog;
  /** How long one feed read blocks in Redis (ms). Default 1000. */
  feedBlockMs?: number;
}

/** What a node does at a miss: `local` when the fleet cannot be asked (degraded): load on its own. */
export type MemberClaim = Exclude<ClaimResult, { kind: "refused" | "unregistered" }> | { kind: "local"; copy: Copy };

interface PendingDelta {
  id: string;
  delta: StateDelta;
}

export class FleetMember {
  readonly engine: FleetEngine;
  readonly mirror: FleetMirror;
  /** This process's id: a restarted node is a new incarnation, and Redis drops the old one's copies. */
  readonly incarnation = randomUUID();
  private state: FleetStatus = "joining";
  /** This node's copies, with their tokens: what it re-publishes after Redis lost them. */
  private readonly own = new Map<string, Copy>();
  private pending: PendingDelta[] = [];
  private deltaCount = 0;
  /** The Redis dataset this node's usage went to; null before the first heartbeat. */
  private epoch: string | null = null;
  private timer: LongTimer | null = null;
  private beating: Promise<void> | null = null;
  /** The beat asked for while one was running: it follows that one (`beat`). */
  private nextBeat: Promise<void> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private feedLoop: Promise<void> | null = null;

  private constructor(private readonly options: FleetMemberOptions) {
    this.engine = options.engine;
    this.mirror = new FleetMirror(Date.now, options.nodeTimeoutMs);
  }

  /** Connects and joins; never throws for an outage: the node then starts degraded and keeps trying. */
  static async start(options: FleetMemberOptions): Promise<FleetMember> {
    const member = new FleetMember(options);
    try {
      await member.engine.connect();
    } catch (error) {
      if (!(error instanceof FleetUnavailable)) throw error;
      member.degrade(error);
    }
    await member.beat();
    member.schedule();
    member.feedLoop = member.followFeed();
    return member;
  }

  get status(): FleetStatus {
    return this.state;
  }

  get nodeId(): string {
    return this.engine.nodeId;
  }

  /** What `/health` and `inferno cache stats` will show of the fleet: no password, no Redis call. */
  summary(): FleetSummary {
    return {
      status: this.state,
      node_id: this.nodeId,
      redis: this.engine.url,
      live_nodes: this.mirror.liveNodes().length,
      pending_deltas: this.pending.length,
    };
  }

  /** Deltas not merged into the fleet yet. */
  get pendingDeltas(): number {
    return this.pending.length;
  }

  private degrade(error: unknown): void {
    if (this.state === "degraded" || this.state === "closed") return;
    this.state = "degraded";
    this.options.log.warn(
      `fleet: Redis at ${this.engine.url} is unreachable (${messageOf(error)}); serving as a single node until it returns`,
    );
  }

  /** Runs a Redis call; an outage degrades the node and yields `fallback`. */
  private async guarded<T>(call: () => Promise<T>, fallback: T): Promise<T> {
    if (this.state !== "joined") return fallback;
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof FleetUnavailable)) throw error;
      this.degrade(error);
      return fallback;
    }
  }

  private schedule(): void {
    if (this.state === "closed") return;
    this.timer = setLongTimeout(() => {
      void this.beat()
        .catch((error: unknown) => this.options.log.warn(`fleet: heartbeat failed: ${messageOf(error)}`))
        .finally(() => this.schedule());
    }, this.options.heartbeatMs);
    this.timer.unref();
  }

  /**
   * One heartbeat, and the rejoin work after an outage. Never throws for an outage. A beat asked for while one runs
   * (a load or an eviction right after another) follows it, once for all asked meanwhile: the running one carries the
   * record from before the change, and answering with it left the change unpublished until the next heartbeat (in
   * the bench's Zipf replay a node whose load went unpublished looked full of models it would not give up, and the
   * next load evicted a more used model elsewhere).
   */
  beat(): Promise<void> {
    if (this.beating) {
      this.nextBeat ??= this.beating.then(() => {
        this.nextBeat = null;
        return this.beat();
      });
      return this.nextBeat;
    }
    this.beating = this.beatOnce().finally(() => {
      this.beating = null;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    if (this.state === "closed") return;
    try {
      const localAt = Date.now();
      const beat = await this.engine.heartbeat(this.incarnation, this.options.record(), this.options.nodeTimeoutMs);
      this.mirror.syncTime(beat.now, localAt);
      const rejoin = this.state !== "joined" || !beat.known || !this.mirror.loaded;
      const newEpoch = this.epoch !== beat.epoch;
      if (rejoin) {
        const wasDegraded = this.state === "degraded";
        await this.publishOwn(beat.now);
        this.mirror.load(await this.engine.snapshot(), Date.now());
        this.state = "joined";
        if (wasDegraded) {
          this.options.log.info(
            `fleet: Redis at ${this.engine.url} is back; re-registered, ${this.own.size} copies re-published`,
          );
        }
      }
      this.mirror.updateLeases(beat.leases);
      if (newEpoch) await this.contributeBase(beat.epoch);
      await this.flush();
      await this.engine.prune();
    } catch (error) {
      if (!(error instanceof FleetUnavailable)) throw error;
      this.degrade(error);
    }
  }

  private async publishOwn(redisNow: number): Promise<void> {
    const copies = [...this.own].map(([model, copy]) => ({
      model,
      copy: copy.state === "loading" ? { ...copy, lease: redisNow + this.engine.loadLeaseMs } : copy,
    }));
    await this.engine.publish(copies);
  }

  /**
   * A Redis dataset this node has not contributed to (its first join, or Redis restarted empty): its whole own
   * statistics go in once (an id per node and epoch, never trimmed, so a restarted process finds it merged), replacing
   * the pending deltas they already include. Without `localUsage`, the pending deltas are merged as they are.
   */
  private async contributeBase(epoch: string): Promise<void> {
    // The deltas handed over before the read are in the node's own statistics; later ones may not be.
    const included = this.pending.length;
    const local = this.options.localUsage ? await this.options.localUsage() : undefined;
    if (local !== undefined) {
      // With no statistics yet (a first start) the base's id is recorded all the same: a restarted process, whose
      // state file then holds every delta this one merged, must find its base merged and not add them again.
      const base = local ? { ...replacingDelta(local), reset_all: false } : null;
      await this.engine.mergeUsage(`base:${this.nodeId}:${epoch}`, base, { keepId: true, epoch });
      this.pending.splice(0, included);
    }
    this.epoch = epoch;
  }

  /**
   * Merges the pending deltas in order, one flush at a time, into the epoch they belong to: when Redis restarted empty
   * since (the next heartbeat has not told this node yet), they stay pending, as the base the node contributes to the
   * new dataset holds them.
   */
  private flush(): Promise<void> {
    // A flush that failed (an outage) leaves the rest pending; the next one starts afresh.
    this.flushing = this.flushing
      .catch(() => {})
      .then(async () => {
        while (this.pending.length > 0 && this.state === "joined" && this.epoch !== null) {
          const next = this.pending[0] as PendingDelta;
          if ((await this.engine.mergeUsage(next.id, next.delta, { epoch: this.epoch })) === "epoch") {
            void this.beat();
            return;
          }
          this.pending.shift();
        }
      });
    return this.flushing;
  }

  /**
   * Hands one delta of this node's usage to the fleet: merged now when Redis answers, else kept and merged once when it
   * returns. Never throws for an outage.
   */
  async saveUsage(delta: StateDelta): Promise<void> {
    this.pending.push({ id: `${this.nodeId}:${this.incarnation}:${++this.deltaCount}`, delta });
    await this.guarded(() => this.flush(), undefined);
  }

  /** The fleet's merged usage; null when Redis cannot be asked or holds none. */
  loadUsage(): Promise<CacheState | null> {
    return this.guarded(() => this.engine.loadUsage(), null);
  }

  /**
   * The cross-node single flight at a miss: a live holder (forward there), or a loading copy for `loader` (placement's
   * choice; this node by default): this node's own (load it, then `promote` or `failed`) or the placed node's (forward
   * there), or `local` when the fleet cannot be asked. Throws `FleetLoadRefused` after too many recent failures
   * fleet-wide. `wanted`: the copies the rule wants (copies.ts); below it the claim adds the loader's.
   */
  async claim(model: string, wanted = 1, loader = this.nodeId): Promise<MemberClaim> {
    const token = FleetEngine.token();
    let result = await this.tryClaim(model, token, wanted, loader);
    if (result?.kind === "unregistered") {
      await this.beat();
      result = await this.tryClaim(model, token, wanted, loader);
    }
    if (result?.kind === "refused") throw refusal(model, result.failures, result.now, this.engine.failureWindowMs);
    if (!result || result.kind === "unregistered") {
      const copy: Copy = { state: "loading", since: this.mirror.redisNow(), lease: 0, token };
      this.own.set(model, copy);
      return { kind: "local", copy };
    }
    if (result.kind === "claimed" && result.node === this.nodeId) this.own.set(model, result.copy);
    return result;
  }

  private tryClaim(model: string, token: string, wanted: number, loader: string): Promise<ClaimResult | null> {
    return this.guarded<ClaimResult | null>(() => this.engine.claim(model, token, wanted, loader), null);
  }

  /**
   * Keeps this node's loading lease alive while a load runs: a renewal every third of the lease. Returns the function
   * that stops it (call it once the load settled, before `promote` or `failed`). `onLost` is called when the copy is
   * gone (the lease ran out while Redis could not be reached, or the node was pruned): the load may go on, but another
   * node may start one too.
   */
  keepLoading(model: string, token: string, onLost: () => void = () => {}): () => void {
    let timer: LongTimer | null = null;
    let stopped = false;
    const tick = (): void => {
      timer = setLongTimeout(() => {
        void this.renew(model, token).then((kept) => {
          if (stopped) return;
          if (kept) tick();
          else onLost();
        });
      }, this.engine.loadLeaseMs / 3);
      timer.unref();
    };
    tick();
    return () => {
      stopped = true;
      timer?.clear();
    };
  }

  /**
   * Extends this node's loading lease; false when the copy was lost. A degraded node's load counts as kept (it is
   * re-published when Redis returns).
   */
  async renew(model: string, token: string): Promise<boolean> {
    if (this.state !== "joined") return true;
    try {
      return (await this.engine.renew(model, token)) !== null;
    } catch (error) {
      if (!(error instanceof FleetUnavailable)) throw error;
      this.degrade(error);
      return true;
    }
  }

  /** This node's load of `model` finished: its copy is ready. */
  async promote(model: string, token: string): Promise<void> {
    const own = this.own.get(model);
    if (own?.token === token) this.own.set(model, { ...own, state: "ready", lease: 0 });
    // A copy Redis no longer has (its lease ran out during a long load, or a prune) is written again, now ready.
    await this.guarded(async () => {
      const copy = this.own.get(model);
      if ((await this.engine.promote(model, token)) === null && copy?.token === token) {
        await this.engine.hold(model, copy);
      }
    }, undefined);
  }

  /** This node no longer holds `model` (evicted, unloaded). */
  async release(model: string, token: string): Promise<void> {
    if (this.own.get(model)?.token === token) this.own.delete(model);
    await this.guarded(() => this.engine.release(model, token), false);
  }

  /** This node's load of `model` failed: its copy is dropped and the failure counts fleet-wide. */
  async failed(model: string, token: string, message: string): Promise<void> {
    if (this.own.get(model)?.token === token) this.own.delete(model);
    await this.guarded(() => this.engine.recordFailure(model, token, message), 0);
  }

  /**
   * A load of `model` goes on here without a claim of this node's: another node holds it (a warm-up, an explicit load,
   * a holder that could not be reached), or another node's claim placed the load here. This node's loading copy is
   * written (in place of a copy claimed for it), beside the others' and leaving its own other copies as they are.
   * Returns the copy (promote or release it as a claimed one).
   */
  async hold(model: string): Promise<Copy> {
    const existing = this.own.get(model);
    if (existing) return existing;
    const now = this.mirror.redisNow();
    const copy: Copy = {
      state: "loading",
      since: now,
      lease: now + this.engine.loadLeaseMs,
      token: FleetEngine.token(),
    };
    this.own.set(model, copy);
    // A node that is not live re-publishes its copies when it joins again.
    await this.guarded(() => this.engine.hold(model, copy), false);
    return copy;
  }

  /**
   * This node's ready copy of `model` gives way to a copy the warm-up moved to another node (warmup.ts, the share
   * back): its `since` becomes now, so the moved copy is the older one, which the copies rule keeps, and this one the
   * spare its eviction takes first. False when it holds no ready copy.
   */
  async giveWay(model: string): Promise<boolean> {
    const own = this.own.get(model);
    if (own?.state !== "ready") return false;
    const copy: Copy = { ...own, since: this.mirror.redisNow() };
    this.own.set(model, copy);
    return this.guarded(() => this.engine.hold(model, copy), false);
  }

  /** This node's own copy of `model` (loading or ready), if it holds one. */
  ownCopy(model: string): Copy | undefined {
    return this.own.get(model);
  }

  /** The live copies of `model` from the mirror: no Redis call. */
  holders(model: string): Holder[] {
    return this.mirror.holders(model);
  }

  private async followFeed(): Promise<void> {
    const blockMs = this.options.feedBlockMs ?? 1000;
    while (this.state !== "closed") {
      if (this.state !== "joined" || !this.mirror.loaded) {
        await pause(Math.min(200, this.options.heartbeatMs));
        continue;
      }
      try {
        const events = await this.engine.readFeed(this.mirror.feedId, blockMs);
        for (const event of events) {
          if (this.mirror.apply(event) === "gap") {
            this.mirror.load(await this.engine.snapshot());
            break;
          }
        }
      } catch (error) {
        // The heartbeat decides whether the node is degraded; the feed waits and tries again. Anything else (a bug,
        // a malformed entry) is logged, never left to end the process.
        if (!(error instanceof FleetUnavailable)) this.options.log.warn(`fleet: feed read failed: ${messageOf(error)}`);
        await pause(Math.min(200, this.options.heartbeatMs));
      }
    }
  }

  /**
   * The live nodes as placement sees them for `model`, from the mirror: a node's models counted from its record or
   * from the copies table (other models' copies, loading ones too), whichever is more — a node swapping one model for
   * another holds a loading copy its record does not count yet, and has no free slot.
   */
  candidates(model: string): PlacementCandidate[] {
    const others = (node: string) => this.mirror.copiesOn(node).filter((c) => c.model !== model).length;
    return candidatesFor(model, this.mirror.liveNodes(), others);
  }

  /**
   * Where `model` should load (placement.ts over the mirror's live nodes), this node preferred among near-equals. No
   * Redis call. `exclude`: nodes that failed this request.
   */
  place(model: string, file?: PlacementRequest["file"], exclude: Iterable<string> = []): Placement {
    const excluded = new Set(exclude);
    for (const node of this.mirror.failedNodes(model, this.engine.failureWindowMs)) excluded.add(node);
    return placeModel(this.candidates(model), {
      receivedBy: this.nodeId,
      now: Date.now(),
      warmSavingMsPerByte: fleetWarmSaving(this.mirror.liveNodes().map((n) => n.record?.load_rate)),
      ...(file ? { file } : {}),
      exclude: excluded,
    });
  }

  /**
   * Stops the heartbeat and the feed and closes the connections (idempotent). A graceful close (`leave`, the default)
   * removes this node's record and copies first, so peers stop routing to it at once; without it (or when Redis cannot
   * be reached) they stay until the node's lease runs out, as after a crash.
   */
  async close(options: { leave?: boolean } = {}): Promise<void> {
    if (this.state === "closed") return;
    const wasJoined = this.state === "joined";
    this.state = "closed";
    this.timer?.clear();
    await this.beating;
    if (wasJoined && options.leave !== false) await this.engine.leave(this.incarnation).catch(() => false);
    this.engine.close();
    await this.feedLoop?.catch(() => {});
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setLongTimeout(resolve, ms));
}

function refusal(
  model: string,
  failures: ReadonlyArray<{ node: string; message: string; at: number }>,
  now: number,
  windowMs: number,
): FleetLoadRefused {
  const oldest = Math.min(...failures.map((f) => f.at));
  const retryAfter = Math.max(1, Math.ceil((oldest + windowMs - now) / 1000));
  const list = failures.map((f) => `${f.node}: ${f.message}`).join("; ");
  return new FleetLoadRefused(
    `${model} failed to load ${failures.length} times in the fleet within ${Math.round(windowMs / 60_000)} min (${list}); no node loads it again for ${retryAfter} s`,
    { details: { model, failures, retry_after_seconds: retryAfter } },
  );
}
