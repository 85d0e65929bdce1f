/**
 * A node's local copy of the fleet's copies table and node records (ModelMesh keeps the same): requests route from it,
 * so the hot path never waits on Redis. It is loaded whole from a snapshot, then follows the change feed; every feed
 * entry carries a sequence number, and a gap (entries trimmed away, or a Redis restarted empty) means "load whole
 * again" (`apply` says so). No I/O here: the member (member.ts) feeds it.
 *
 * Time: leases are Redis times. The mirror keeps the offset between Redis time and the local clock, taken at each
 * snapshot and heartbeat, so it can tell a lapsed lease without asking Redis.
 */
import type {
  Copy,
  FeedEvent,
  FleetNodeState,
  FleetSnapshot,
  Holder,
  LoadFailure,
  NodeRecord,
  RedisMilliseconds,
} from "./types.js";

export type ApplyResult = "applied" | "stale" | "gap";

export class FleetMirror {
  private readonly nodeStates = new Map<string, FleetNodeState>();
  private readonly copies = new Map<string, Map<string, Copy>>();
  /** Load failures seen on the feed since the mirror was loaded, per model. */
  private readonly failures = new Map<string, LoadFailure[]>();
  /** The last feed entry applied (-1: never loaded). */
  private seq = -1;
  /** Where the feed continues. */
  feedId = "0-0";
  /** Redis time minus local time (ms). */
  private offsetMs = 0;
  /** Counts every change (a snapshot, a feed entry, the leases), so a reader can tell that nothing changed since. */
  private changes = 0;

  constructor(
    /** Local wall-clock time (ms). */
    private readonly now: () => number = Date.now,
    /** The lease a node gets when the feed shows its record before a heartbeat reported its lease. */
    private readonly defaultLeaseMs = 15_000,
  ) {}

  /** A number that changes whenever the mirror does (what a result worked out from it can be kept by). */
  get version(): number {
    return this.changes;
  }

  /** Whether a snapshot was loaded. */
  get loaded(): boolean {
    return this.seq >= 0;
  }

  /** Redis time now, as this node estimates it. */
  redisNow(): RedisMilliseconds {
    return this.now() + this.offsetMs;
  }

  /** Takes Redis's time `redisNow`, read at local time `localAt`, as the offset. */
  syncTime(redisNow: RedisMilliseconds, localAt = this.now()): void {
    this.offsetMs = redisNow - localAt;
  }

  /** Replaces everything with `snapshot`. */
  load(snapshot: FleetSnapshot, localAt = this.now()): void {
    this.syncTime(snapshot.now, localAt);
    this.changes++;
    this.nodeStates.clear();
    this.copies.clear();
    this.failures.clear();
    for (const node of snapshot.nodes) this.nodeStates.set(node.id, { ...node });
    for (const { model, node, copy } of snapshot.copies) this.setCopy(model, node, copy);
    this.seq = snapshot.seq;
    this.feedId = snapshot.feedId;
  }

  /**
   * Applies one feed entry. `stale`: an entry the loaded snapshot already holds (ignored); `gap`: entries were missed,
   * load a snapshot again (nothing applied).
   */
  apply(event: FeedEvent): ApplyResult {
    if (!this.loaded || event.seq <= this.seq) return "stale";
    if (event.seq !== this.seq + 1) return "gap";
    this.seq = event.seq;
    this.feedId = event.id;
    this.changes++;
    switch (event.kind) {
      case "copy":
        if (event.copy) this.setCopy(event.model, event.node, event.copy);
        else this.dropCopy(event.model, event.node);
        break;
      case "node":
        this.setRecord(event.node, event.record);
        break;
      case "gone":
        this.nodeStates.delete(event.node);
        for (const model of [...this.copies.keys()]) this.dropCopy(model, event.node);
        break;
      case "fail":
        this.failures.set(event.model, [...(this.failures.get(event.model) ?? []), event.failure]);
        break;
    }
    return "applied";
  }

  /** Every node's lease as a heartbeat read it; a node missing from the list is gone. */
  updateLeases(leases: ReadonlyArray<{ id: string; lease: RedisMilliseconds }>): void {
    this.changes++;
    const seen = new Set<string>();
    for (const { id, lease } of leases) {
      seen.add(id);
      const state = this.nodeStates.get(id);
      if (state) state.lease = lease;
      else this.nodeStates.set(id, { id, lease, record: null });
    }
    for (const id of [...this.nodeStates.keys()]) if (!seen.has(id)) this.nodeStates.delete(id);
  }

  private setRecord(id: string, record: NodeRecord): void {
    const state = this.nodeStates.get(id);
    if (state) state.record = record;
    else this.nodeStates.set(id, { id, lease: this.redisNow() + this.defaultLeaseMs, record });
  }

  private setCopy(model: string, node: string, copy: Copy): void {
    let holders = this.copies.get(model);
    if (!holders) this.copies.set(model, (holders = new Map()));
    holders.set(node, copy);
  }

  private dropCopy(model: string, node: string): void {
    const holders = this.copies.get(model);
    if (!holders?.delete(node)) return;
    if (holders.size === 0) this.copies.delete(model);
  }

  private alive(node: string, now: RedisMilliseconds): boolean {
    const state = this.nodeStates.get(node);
    return state !== undefined && state.lease >= now;
  }

  /**
   * The live copies of `model`: ready ones first, then loading ones whose lease runs, each group oldest first (a
   * request for a loading copy goes to the oldest loader and waits).
   */
  holders(model: string): Holder[] {
    const holders = this.copies.get(model);
    if (!holders) return [];
    const now = this.redisNow();
    const live: Holder[] = [];
    for (const [node, copy] of holders) {
      if (!this.alive(node, now) || (copy.state === "loading" && copy.lease < now)) continue;
      live.push({ node, copy });
    }
    return live.sort((a, b) =>
      a.copy.state !== b.copy.state ? (a.copy.state === "ready" ? -1 : 1) : a.copy.since - b.copy.since,
    );
  }

  /** Every node the mirror knows, its lease run out or not (what it last showed while Redis is away). */
  knownNodes(): FleetNodeState[] {
    return [...this.nodeStates.values()];
  }

  /** The nodes whose lease runs. */
  liveNodes(): FleetNodeState[] {
    const now = this.redisNow();
    return [...this.nodeStates.values()].filter((n) => n.lease >= now);
  }

  /**
   * The nodes where `model` failed to load within the last `windowMs` (as seen on the feed since the last snapshot):
   * placement skips them. The fleet-wide refusal after repeated failures is the claim's, which reads Redis.
   */
  failedNodes(model: string, windowMs: number): Set<string> {
    const since = this.redisNow() - windowMs;
    const recent = (this.failures.get(model) ?? []).filter((f) => f.at >= since);
    if (recent.length > 0) this.failures.set(model, recent);
    else this.failures.delete(model);
    return new Set(recent.map((f) => f.node));
  }

  /** One node's state (live or not), or undefined. */
  node(id: string): FleetNodeState | undefined {
    return this.nodeStates.get(id);
  }

  /** Every model with a copy on `node`, as the mirror sees them. */
  copiesOn(node: string): Array<{ model: string; copy: Copy }> {
    const out: Array<{ model: string; copy: Copy }> = [];
    for (const [model, holders] of this.copies) {
      const copy = holders.get(node);
      if (copy) out.push({ model, copy });
    }
    return out;
  }
}
