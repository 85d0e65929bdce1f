/**
 * The usage book: every statistic the cache keeps, and the one mapping between in-memory usage and the saved record.
 * Counters and per-model usage live here; so do the dirty version (is there anything to save?) and the baseline of
 * the last save, from which a save's delta ("merge my delta", see persistence/merge.ts) is taken. Getters are O(1), so
 * `/health` and `/metrics` never build the full statistics.
 *
 * The request log (`log`) is a bounded ring of the most recent requests (model key, wall-clock time, hit / miss /
 * coalesced, and for a miss the load time it caused), kept so `inferno cache advise` can replay the user's own traffic
 * through other settings. `cache.request_log_size` requests are kept (0 = none); the oldest is overwritten by the newest.
 *
 * A request is one write into preallocated arrays (no allocation, O(1)), so the hit path does not notice it. The ring
 * is saved with the statistics: a save sends the requests logged since the last one, and the store merges them with
 * what other processes sharing the cache directory logged (by time, newest `request_log_size` kept: `mergeRequestLogs`
 * in persistence/merge.ts, beside the log's saved form).
 */
import type { Bytes, EpochMilliseconds, Fingerprint, ModelDescriptor } from "../models/types.js";
import {
  LOAD_SAMPLES,
  type LoggedRequest,
  persistedLogOf,
  type RequestOutcome,
  requestsOf,
} from "./persistence/merge.js";
import type {
  CacheState,
  PersistedCounters,
  PersistedGgufFacts,
  PersistedModel,
  PersistedRequestLog,
  StateDelta,
} from "./persistence/types.js";
import { addUsesInPlace, decayedValue, type DecayedCount } from "./policy/frequency.js";
import { emptyCounters, priorityOf } from "./state-view.js";
import type { EvictionReason } from "./types.js";

/** The additive part of a model's usage, as it stood at the last save (the delta is taken against it). */
interface UsageBase {
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  loadMsTotal: number;
  frequency: DecayedCount | null;
}

/** Usage statistics of one model: they outlive unloads and restarts. */
export interface Usage {
  key: string;
  name: string;
  format: ModelDescriptor["format"];
  fingerprint: Fingerprint;
  requests: number;
  hits: number;
  misses: number;
  loads: number;
  lastUsedAt: EpochMilliseconds | null;
  frequency: DecayedCount | null;
  loadMsTotal: number;
  loadMsSamples: number[];
  memoryBytes: Bytes | null;
  /** Header facts the model source gave at the last load (GGUF only), for the state file. */
  gguf: PersistedGgufFacts | null;
  /** GDSF inflation at the last use. */
  inflation: number;
  /** Size or mtime changed since these statistics were recorded (restore): not warmed. */
  fileChanged: boolean;
  /** Since when the file has been missing at restore, or null. */
  missingSince: EpochMilliseconds | null;
  base: UsageBase;
  /** Changed since the last save (a flag, not a set: a hit costs one store), and a count of changes. */
  dirty: boolean;
  changes: number;
  /** Removed from the book (statistics reset): a holder of this object must look the model up again. */
  removed: boolean;
}

export type UseKind = "hit" | "miss" | "coalesced";

/** Models read per turn of the event loop while a delta is taken. */
const DELTA_CHUNK = 250;

const ZERO_BASE: UsageBase = { requests: 0, hits: 0, misses: 0, loads: 0, loadMsTotal: 0, frequency: null };

/** A model's usage with nothing recorded yet and nothing to save; `restore` fills in what a save held. */
function freshUsage(model: Pick<Usage, "key" | "name" | "format" | "fingerprint">): Usage {
  return {
    key: model.key,
    name: model.name,
    format: model.format,
    fingerprint: model.fingerprint,
    ...ZERO_BASE,
    lastUsedAt: null,
    loadMsSamples: [],
    memoryBytes: null,
    gguf: null,
    inflation: 0,
    fileChanged: false,
    missingSince: null,
    base: { ...ZERO_BASE },
    dirty: false,
    changes: 0,
    removed: false,
  };
}

function baseOf(u: Pick<Usage, keyof UsageBase>): UsageBase {
  // The frequency is a copy: the live one changes in place on every use.
  const frequency = u.frequency ? { ...u.frequency } : null;
  return {
    requests: u.requests,
    hits: u.hits,
    misses: u.misses,
    loads: u.loads,
    loadMsTotal: u.loadMsTotal,
    frequency,
  };
}

function subtractCounters(a: PersistedCounters, b: PersistedCounters): PersistedCounters {
  const evictions = { ...a.evictions };
  for (const reason of Object.keys(evictions) as EvictionReason[])
    evictions[reason] = a.evictions[reason] - (b.evictions[reason] ?? 0);
  return {
    hits: a.hits - b.hits,
    misses: a.misses - b.misses,
    loads: a.loads - b.loads,
    load_failures: a.load_failures - b.load_failures,
    evictions,
    warmups: a.warmups - b.warmups,
    unknown_model_requests: a.unknown_model_requests - b.unknown_model_requests,
    coalesced: a.coalesced - b.coalesced,
  };
}

/** A save in progress: the delta, and what to do when the store took it (or did not). */
export interface PendingSave {
  delta: StateDelta;
  /** The store took the delta: it becomes the new baseline. */
  commit(): void;
}

export class UsageBook {
  private counterValues: PersistedCounters = emptyCounters();
  private counterBase: PersistedCounters = emptyCounters();
  private readonly models = new Map<string, Usage>();
  /** Statistics removed since the last save, and whether everything was reset. */
  private removedKeys = new Set<string>();
  private resetAll = false;
  /** Bumped on every change worth saving; `savedVersion` is the one the store last took. */
  private version = 0;
  private savedVersion = 0;

  /** The most recent requests (`cache.request_log_size`), saved with the statistics. */
  readonly log: RequestLog;

  constructor(
    private readonly halfLifeHours: number,
    requestLogSize = 0,
  ) {
    this.log = new RequestLog(requestLogSize);
  }

  // ------------------------------------------------------------ O(1) reads

  get counters(): Readonly<PersistedCounters> {
    return this.counterValues;
  }

  get unsaved(): boolean {
    return this.version !== this.savedVersion;
  }

  get size(): number {
    return this.models.size;
  }

  get(key: string): Usage | undefined {
    return this.models.get(key);
  }

  keys(): IterableIterator<string> {
    return this.models.keys();
  }

  values(): IterableIterator<Usage> {
    return this.models.values();
  }

  // ------------------------------------------------------------ recording

  private changed(usage?: Usage): void {
    this.version++;
    if (usage) {
      usage.dirty = true;
      usage.changes++;
    }
  }

  private ensure(descriptor: ModelDescriptor): Usage {
    let usage = this.models.get(descriptor.key);
    if (!usage) {
      usage = freshUsage(descriptor);
      this.models.set(descriptor.key, usage);
    }
    return usage;
  }

  /** One request for a model, at `now`: a hit, a miss, or one that joined a load in flight. */
  recordUse(descriptor: ModelDescriptor, kind: UseKind, now: EpochMilliseconds, inflation: number): void {
    const usage = this.countUse(descriptor, kind);
    this.log.record(descriptor.key, now, kind);
    this.stampUses(usage, now, 1, inflation);
  }

  /**
   * One request for a model, counted now and timed later (`stampUses`): the cache's hit path counts a use without
   * reading the clock and stamps it when the request's lease ends. `known`: the usage this returned for the model
   * before (saves a lookup while it is still the book's). Returns the model's usage (for the stamp).
   */
  countUse(descriptor: ModelDescriptor, kind: UseKind, known?: Usage | null): Usage {
    const usage = known && !known.removed ? known : this.ensure(descriptor);
    usage.name = descriptor.name;
    usage.requests++;
    if (kind === "hit") {
      usage.hits++;
      this.counterValues.hits++;
    } else if (kind === "miss") {
      usage.misses++;
      this.counterValues.misses++;
    } else {
      this.counterValues.coalesced++;
    }
    this.changed(usage);
    return usage;
  }

  /**
   * Times `count` uses counted by `countUse` at `now`: the last use, and the decayed frequency. Usage reset since it
   * was counted (`reset`) is no longer the book's: its stamp is dropped with it.
   */
  stampUses(usage: Usage, now: EpochMilliseconds, count: number, inflation: number): void {
    if (usage.removed) return;
    usage.lastUsedAt = now;
    if (usage.frequency) addUsesInPlace(usage.frequency, now, count, this.halfLifeHours);
    else usage.frequency = { value: count, at: now };
    usage.inflation = inflation;
    this.changed(usage);
  }

  /**
   * `stampUses` for hits counted on the cache's hit path, which also enter the request log then: a hit is logged at
   * the time its use ended (the hit path reads no clock), in the order the log is written, so it stays sorted by time.
   */
  stampHits(usage: Usage, now: EpochMilliseconds, count: number, inflation: number): void {
    if (usage.removed) return;
    // Only the newest `capacity` can stay in the ring.
    for (let i = Math.min(count, this.log.capacity); i > 0; i--) this.log.record(usage.key, now, "hit");
    this.stampUses(usage, now, count, inflation);
  }

  /** A request for a name that resolves to no model. */
  recordUnknownModel(): void {
    this.counterValues.unknown_model_requests++;
    this.changed();
  }

  recordLoad(
    descriptor: ModelDescriptor,
    facts: { fingerprint: Fingerprint; loadMs: number; memoryBytes: Bytes; gguf: PersistedGgufFacts | null },
  ): void {
    const usage = this.ensure(descriptor);
    usage.gguf = facts.gguf;
    usage.loads++;
    usage.loadMsTotal += facts.loadMs;
    usage.loadMsSamples = [...usage.loadMsSamples, facts.loadMs].slice(-LOAD_SAMPLES);
    usage.memoryBytes = facts.memoryBytes;
    usage.fingerprint = facts.fingerprint;
    usage.fileChanged = false;
    usage.missingSince = null;
    this.log.loaded(descriptor.key, facts.loadMs);
    this.counterValues.loads++;
    this.changed(usage);
  }

  /** A load of the model with this key failed. */
  recordLoadFailure(key: string): void {
    this.log.loadFailed(key);
    this.counterValues.load_failures++;
    this.changed();
  }

  recordEviction(reason: EvictionReason): void {
    this.counterValues.evictions[reason]++;
    this.changed();
  }

  recordWarmup(): void {
    this.counterValues.warmups++;
    this.changed();
  }

  /** The file of a model changed (seen by a file check): its statistics now describe the new version. */
  recordFileVersion(key: string, fingerprint: Fingerprint): void {
    const usage = this.models.get(key);
    if (!usage) return;
    usage.fingerprint = fingerprint;
    this.changed(usage);
  }

  /** Resets every statistic (`keys` null) or those of some models. */
  reset(keys: string[] | null): void {
    if (keys === null) {
      this.counterValues = emptyCounters();
      this.counterBase = emptyCounters();
      for (const usage of this.models.values()) usage.removed = true;
      this.models.clear();
      this.removedKeys.clear();
      this.log.clear();
      this.resetAll = true;
    } else {
      for (const key of keys) this.remove(key);
    }
    this.changed();
  }

  private remove(key: string): void {
    const usage = this.models.get(key);
    if (!usage) return;
    usage.removed = true;
    this.models.delete(key);
    this.removedKeys.add(key);
    this.log.remove(new Set([key]));
  }

  // ------------------------------------------------------------ restore

  /** Takes the saved state as the baseline: what was restored is never saved again as new. */
  restore(state: CacheState): void {
    this.counterValues = { ...emptyCounters(), ...structuredClone(state.counters) };
    this.counterValues.evictions = { ...emptyCounters().evictions, ...state.counters.evictions };
    this.counterBase = structuredClone(this.counterValues);
    for (const saved of state.models) {
      const u = saved.usage;
      const usage: Usage = {
        ...freshUsage(saved),
        requests: u.requests,
        hits: u.hits,
        misses: u.misses,
        loads: u.loads,
        lastUsedAt: u.last_used_at,
        frequency: u.frequency ? { ...u.frequency } : null,
        loadMsTotal: u.load_ms_total,
        loadMsSamples: [...u.load_ms_samples],
        memoryBytes: saved.metadata.memory_bytes,
        gguf: saved.metadata.gguf ?? null,
        missingSince: saved.missing_since ?? null,
      };
      usage.base = baseOf(usage);
      this.models.set(saved.key, usage);
    }
    this.log.restore(state.request_log);
  }

  /** At restore: the model's file is there but changed. Statistics stay; the facts of the old version go. */
  markChanged(key: string, fingerprint: Fingerprint): void {
    const usage = this.models.get(key);
    if (!usage) return;
    usage.fingerprint = fingerprint;
    // Facts of an older version of the file would be wrong; the next load brings the current ones.
    usage.gguf = null;
    usage.fileChanged = true;
    usage.missingSince = null;
    this.changed(usage);
  }

  /** At restore: the model's file is there (again). */
  markPresent(key: string): void {
    const usage = this.models.get(key);
    if (!usage || usage.missingSince === null) return;
    usage.missingSince = null;
    this.changed(usage);
  }

  /**
   * At restore: the model's file is missing. Its statistics are kept, marked missing since `now` (or since earlier),
   * and dropped once missing longer than `retentionMs`. Returns whether they were kept.
   */
  markMissing(key: string, now: EpochMilliseconds, retentionMs: number): boolean {
    const usage = this.models.get(key);
    if (!usage) return false;
    if (usage.missingSince !== null && now - usage.missingSince >= retentionMs) {
      this.remove(key);
      this.changed();
      return false;
    }
    if (usage.missingSince === null) {
      usage.missingSince = now;
      this.changed(usage);
    }
    return true;
  }

  // ------------------------------------------------------------ the saved record

  /** A model's usage as the state file holds it (`withUsage` false: the usage is filled in by the caller). */
  persisted(u: Usage, now: EpochMilliseconds, pinned: boolean, withUsage = true): PersistedModel {
    const model: PersistedModel = {
      key: u.key,
      name: u.name,
      format: u.format,
      fingerprint: { ...u.fingerprint },
      metadata: u.gguf ? { memory_bytes: u.memoryBytes, gguf: { ...u.gguf } } : { memory_bytes: u.memoryBytes },
      usage: withUsage
        ? {
            requests: u.requests,
            hits: u.hits,
            misses: u.misses,
            loads: u.loads,
            last_used_at: u.lastUsedAt,
            frequency: u.frequency ? { ...u.frequency } : null,
            load_ms_total: u.loadMsTotal,
            load_ms_samples: [...u.loadMsSamples],
          }
        : (null as never),
      priority: 0,
      pinned,
      missing_since: u.missingSince,
    };
    if (withUsage) model.priority = priorityOf(model, now, this.halfLifeHours);
    return model;
  }

  /** The whole state as this process sees it. */
  snapshot(now: EpochMilliseconds, isPinned: (key: string) => boolean): CacheState {
    const state: CacheState = {
      saved_at: now,
      counters: structuredClone(this.counterValues),
      models: [...this.models.values()].map((u) => this.persisted(u, now, isPinned(u.key))),
    };
    const log = this.log.persisted();
    if (log) state.request_log = log;
    return state;
  }

  /** This model's changes since the last save: facts as they are, usage as increments. */
  private modelDelta(u: Usage, now: EpochMilliseconds, pinned: boolean): PersistedModel {
    const record = this.persisted(u, now, pinned, false);
    const b = u.base;
    const newLoads = u.loads - b.loads;
    const frequency =
      u.frequency === null
        ? null
        : {
            value: Math.max(0, u.frequency.value - decayedValue(b.frequency, u.frequency.at, this.halfLifeHours)),
            at: u.frequency.at,
          };
    record.usage = {
      requests: u.requests - b.requests,
      hits: u.hits - b.hits,
      misses: u.misses - b.misses,
      loads: newLoads,
      last_used_at: u.lastUsedAt,
      frequency,
      load_ms_total: u.loadMsTotal - b.loadMsTotal,
      load_ms_samples: newLoads > 0 ? u.loadMsSamples.slice(-newLoads) : [],
    };
    return record;
  }

  /**
   * The changes since the last save, for the store to merge. Built a few hundred models at a time, letting the event
   * loop turn in between (`turn`), so thousands of changed models never block it. Each model's increments are taken
   * against its baseline when it is read, and that reading becomes its baseline on `commit()` — a use in between is
   * simply in the next delta. Nothing moves until `commit()`: a failed save leaves every baseline as it was.
   */
  async takeDelta(
    now: EpochMilliseconds,
    isPinned: (key: string) => boolean,
    turn: () => Promise<void>,
  ): Promise<PendingSave> {
    const version = this.version;
    const counters = structuredClone(this.counterValues);
    const removed = [...this.removedKeys];
    const resetAll = this.resetAll;
    const logDelta = this.log.takeDelta();
    const dirty = [...this.models.values()].filter((u) => u.dirty);
    const captured: Array<{ usage: Usage; base: UsageBase; changes: number }> = [];
    const models: PersistedModel[] = [];
    for (let i = 0; i < dirty.length; i++) {
      if (i > 0 && i % DELTA_CHUNK === 0) await turn();
      const usage = dirty[i] as Usage;
      if (this.models.get(usage.key) !== usage) continue; // removed meanwhile: in `removed` next time
      captured.push({ usage, base: baseOf(usage), changes: usage.changes });
      models.push(this.modelDelta(usage, now, isPinned(usage.key)));
    }
    const delta: StateDelta = {
      at: now,
      half_life_hours: this.halfLifeHours,
      reset_all: resetAll,
      removed,
      counters: subtractCounters(counters, this.counterBase),
      models,
      request_log_size: this.log.capacity,
    };
    if (logDelta.log) delta.request_log = logDelta.log;
    return {
      delta,
      commit: () => {
        this.counterBase = counters;
        logDelta.commit();
        for (const { usage, base, changes } of captured) {
          usage.base = base;
          // Changed again since it was read: stays dirty, so the next save sends the rest.
          if (usage.changes === changes) usage.dirty = false;
        }
        for (const key of removed) this.removedKeys.delete(key);
        if (resetAll) this.resetAll = false;
        this.savedVersion = version;
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The request log

/** Outcomes by their index in the ring's `outcomes` column. */
const OUTCOMES: readonly RequestOutcome[] = ["hit", "miss", "coalesced"];

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
