/**
 * The request log: a bounded ring of the most recent requests (model key, wall-clock time, hit / miss / coalesced, and
 * for a miss the load time it caused), kept so `inferno cache advise` can replay the user's own traffic through other
 * settings. `cache.request_log_size` requests are kept (0 = none); the oldest is overwritten by the newest.
 *
 * A request is one write into preallocated arrays (no allocation, O(1)), so the hit path does not notice it. The ring
 * is saved with the statistics: a save sends the requests logged since the last one, and the store merges them with
 * what other processes sharing the cache directory logged (by time, newest `request_log_size` kept: `mergeRequestLogs`).
 */
import type { EpochMilliseconds } from "../models/types.js";
import type { PersistedRequestLog } from "./persistence/types.js";

export type RequestOutcome = "hit" | "miss" | "coalesced";

/** One logged request. */
export interface LoggedRequest {
  key: string;
  at: EpochMilliseconds;
  outcome: RequestOutcome;
  /** For a miss: how long the load it started took (ms); null when it failed, was cancelled or is not over yet. */
  loadMs: number | null;
}

/** Outcomes as the saved log spells them: one letter per request. */
const LETTER: Record<RequestOutcome, string> = { hit: "h", miss: "m", coalesced: "c" };
const OUTCOME_OF_LETTER: Record<string, RequestOutcome> = { h: "hit", m: "miss", c: "coalesced" };
const OUTCOMES: readonly RequestOutcome[] = ["hit", "miss", "coalesced"];

/** The requests of a saved log, oldest first. */
export function requestsOf(log: PersistedRequestLog | undefined | null): LoggedRequest[] {
  if (!log) return [];
  return log.at.map((at, i) => ({
    key: log.keys[log.model[i] as number] as string,
    at,
    outcome: OUTCOME_OF_LETTER[log.outcome[i] as string] as RequestOutcome,
    loadMs: log.load_ms[i] ?? null,
  }));
}

/** Requests (oldest first) in the saved form: columns, each model key written once. */
export function persistedLogOf(requests: readonly LoggedRequest[]): PersistedRequestLog {
  const index = new Map<string, number>();
  const log: PersistedRequestLog = { keys: [], at: [], model: [], outcome: "", load_ms: [] };
  const letters: string[] = [];
  for (const r of requests) {
    let i = index.get(r.key);
    if (i === undefined) {
      i = log.keys.length;
      index.set(r.key, i);
      log.keys.push(r.key);
    }
    log.at.push(r.at);
    log.model.push(i);
    letters.push(LETTER[r.outcome]);
    log.load_ms.push(r.loadMs);
  }
  log.outcome = letters.join("");
  return log;
}

/**
 * Two logs as one: every request of both by time (the stored ones first at equal times), less the models in `removed`,
 * the newest `capacity` kept.
 */
export function mergeRequestLogs(
  stored: PersistedRequestLog | undefined | null,
  added: PersistedRequestLog | undefined | null,
  capacity: number,
  removed: ReadonlySet<string> = new Set(),
): PersistedRequestLog | undefined {
  const all = [...requestsOf(stored), ...requestsOf(added)].filter((r) => !removed.has(r.key));
  if (all.length === 0) return undefined;
  // Array.prototype.sort is stable: at equal times the stored request stays first.
  all.sort((a, b) => a.at - b.at);
  return persistedLogOf(all.slice(Math.max(0, all.length - capacity)));
}

/** The ring. Capacity 0 logs nothing. */
export class RequestLog {
  private readonly keys: Array<string | null>;
  private readonly at: Float64Array;
  private readonly outcomes: Uint8Array;
  /** NaN: no load time. */
  private readonly loadMs: Float64Array;
  /** Requests ever written (the next one's sequence number); its slot is `written % capacity`. */
  private written = 0;
  /** `written % capacity`, kept as a wrapping counter: an integer division per request weighed on the hit path. */
  private nextSlot = 0;
  /** Sequence numbers below this were saved (or restored): a save's delta starts here. */
  private savedUpTo = 0;
  /** Model key → sequence number of its latest miss still waiting for its load time. */
  private readonly pendingLoads = new Map<string, number>();

  constructor(readonly capacity: number) {
    this.keys = new Array<string | null>(capacity).fill(null);
    this.at = new Float64Array(capacity);
    this.outcomes = new Uint8Array(capacity);
    this.loadMs = new Float64Array(capacity).fill(Number.NaN);
  }

  /** Requests in the ring now. */
  get size(): number {
    return Math.min(this.written, this.capacity);
  }

  /** One request. O(1): a write into the ring (a miss also remembers where, for its load time). */
  record(key: string, at: EpochMilliseconds, outcome: RequestOutcome): void {
    if (this.capacity === 0) return;
    const seq = this.written++;
    const slot = this.nextSlot;
    this.nextSlot = slot + 1 === this.capacity ? 0 : slot + 1;
    this.keys[slot] = key;
    this.at[slot] = at;
    this.outcomes[slot] = outcome === "hit" ? 0 : outcome === "miss" ? 1 : 2;
    this.loadMs[slot] = Number.NaN;
    if (outcome === "miss") this.pendingLoads.set(key, seq);
  }

  /** A model finished loading: the miss that started the load (if it is still in the ring) gets its load time. */
  loaded(key: string, loadMs: number): void {
    const seq = this.pendingLoads.get(key);
    if (seq === undefined) return;
    this.pendingLoads.delete(key);
    if (seq >= this.written - this.capacity) this.loadMs[seq % this.capacity] = loadMs;
  }

  /** A model's load failed or was cancelled: its miss keeps no load time. */
  loadFailed(key: string): void {
    this.pendingLoads.delete(key);
  }

  private request(seq: number): LoggedRequest {
    const slot = seq % this.capacity;
    const loadMs = this.loadMs[slot] as number;
    return {
      key: this.keys[slot] as string,
      at: this.at[slot] as number,
      outcome: OUTCOMES[this.outcomes[slot] as number] as RequestOutcome,
      loadMs: Number.isNaN(loadMs) ? null : loadMs,
    };
  }

  private range(from: number): LoggedRequest[] {
    const out: LoggedRequest[] = [];
    for (let seq = Math.max(from, this.written - this.capacity); seq < this.written; seq++) out.push(this.request(seq));
    return out;
  }

  /** Every request in the ring, oldest first. */
  requests(): LoggedRequest[] {
    return this.range(0);
  }

  /** The whole ring in the saved form, or undefined when empty. */
  persisted(): PersistedRequestLog | undefined {
    return this.size === 0 ? undefined : persistedLogOf(this.requests());
  }

  /**
   * The requests logged since the last save, and the commit that makes them saved. (A miss's load time that arrives
   * after its request was saved stays in memory only.)
   */
  takeDelta(): { log: PersistedRequestLog | undefined; commit(): void } {
    const upTo = this.written;
    const fresh = this.range(this.savedUpTo);
    return {
      log: fresh.length === 0 ? undefined : persistedLogOf(fresh),
      commit: () => {
        this.savedUpTo = Math.max(this.savedUpTo, upTo);
      },
    };
  }

  /** Starts from a saved log (its newest `capacity` requests), all of it counted as saved. */
  restore(log: PersistedRequestLog | undefined): void {
    this.clear();
    const requests = requestsOf(log);
    this.rewrite(requests, requests.length);
  }

  /** Forgets every request (statistics reset). */
  clear(): void {
    this.written = 0;
    this.nextSlot = 0;
    this.savedUpTo = 0;
    this.pendingLoads.clear();
  }

  /** Forgets the requests of these models (their statistics were removed). O(capacity); rare. */
  remove(keys: ReadonlySet<string>): void {
    if (this.size === 0) return;
    const savedFrom = this.savedUpTo;
    const kept: LoggedRequest[] = [];
    let savedKept = 0;
    for (let seq = Math.max(0, this.written - this.capacity); seq < this.written; seq++) {
      const request = this.request(seq);
      if (keys.has(request.key)) continue;
      kept.push(request);
      if (seq < savedFrom) savedKept++;
    }
    this.clear();
    this.rewrite(kept, savedKept);
  }

  private rewrite(requests: readonly LoggedRequest[], savedCount: number): void {
    const from = Math.max(0, requests.length - this.capacity);
    for (let i = from; i < requests.length; i++) {
      const r = requests[i] as LoggedRequest;
      this.record(r.key, r.at, r.outcome);
      if (r.loadMs !== null) this.loadMs[(this.written - 1) % this.capacity] = r.loadMs;
    }
    this.pendingLoads.clear();
    this.savedUpTo = Math.max(0, Math.min(this.written, savedCount - from));
  }
}
