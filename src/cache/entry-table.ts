/**
 * The entry table: the one writer of the cache's entries. It owns the map of entries, the count of ready ones, every
 * transition (loading → ready → unloading, a failed load, retire, unload), leases, the two timers a ready entry may
 * have, admission against the limits and the load-failure cooldowns. Everything else reads entries through
 * `EntryView` (limits, warm-up) or asks the table to act; `ModelCache` is the request API over it.
 *
 * The timers, neither armed per hit:
 * - expiry: the idle TTL. Armed only when none would fire in time; when it fires it checks (lazily) whether the model
 *   really idled its full time, and otherwise waits for the rest of it;
 * - the file check: a model's file is due to be compared with the version loaded every `FINGERPRINT_CHECK_INTERVAL_MS`;
 *   a timer armed once per check marks it due, so a hit reads no clock for it.
 *
 * An entry is one model in the cache. It keeps its identity for its whole life (leases and waiters point at it); what only
 * one state has lives in that state's object — `Loading`, `Ready` (the model, its timers, its keep-alive) or
 * `Unloading` (why, and the model still to dispose) — so a transition replaces `entry.state` and nothing else needs
 * clearing. The entry is the single flight: it holds the load's promise and its AbortController from birth, so there
 * is no separate in-flight map to keep in sync, and a request that arrives after the load ended still reads its outcome.
 */
import type { LoadedModel } from "../backends/types.js";
import type { CacheConfig } from "../config/schema.js";
import {
  Aborted,
  CacheBusy,
  Disposed,
  InfernoError,
  ModelInvalid,
  ModelLoadCooldown,
  ModelLoadFailed,
  ModelTooLarge,
  messageOf,
} from "../errors/index.js";
import {
  type Bytes,
  type Fingerprint,
  type ModelDescriptor,
  type ModelSource,
  sameFileVersion,
  type Sequences,
} from "../models/types.js";
import type { ClockReader } from "./clock.js";
import type { CacheEventSource } from "./events.js";
import { Limits, type MemoryLedger, type Reservation, type Victim } from "./limits.js";
import type { PersistedGgufFacts } from "./persistence/types.js";
import { Pins } from "./limits.js";
import type { CacheLogger, Clock, EvictionReason, KeepAlive, Lease, TimerHandle } from "./types.js";
import type { Usage, UsageBook } from "./usage.js";

// ---------------------------------------------------------------------------------------------------------------------
// Entries and their states

export interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Being loaded: requests for the model await the entry's `promise`. */
export interface Loading {
  readonly kind: "loading";
}

/** Loaded and in service. */
export interface Ready {
  readonly kind: "ready";
  readonly model: LoadedModel;
  readonly loadMs: number;
  /** Monotonic time the model became ready. */
  readonly readyAt: number;
  /** Request `keep_alive`, replacing the configured TTL until another request sets one. */
  keepAlive: KeepAlive | null;
  /** The idle time before unloading (ms, null = never), worked out when it can change (not per release). */
  idleMs: number | null;
  /** Monotonic time the model became idle (last lease ended, or a lease-free use); the TTL counts from here. */
  idleSince: number;
  /** The armed expiry timer and when it fires (monotonic); checked lazily — hits never re-arm it. */
  expiry: { handle: TimerHandle; dueAt: number } | null;
  /**
   * Whether the file is due to be compared with the entry's `fingerprint` (a hit then takes the slow path, which
   * compares it). Set by `checkTimer`, armed once per check: a hit reads no clock and arms no timer for it.
   */
  checkDue: boolean;
  checkTimer: TimerHandle | null;
  /** The model became idle since its file was last compared: compare it once the check is due (a deleted file unloads it). */
  checkWhenIdle: boolean;
}

/** Out of service: its model (if it got one) is disposed once its last lease ends, then the entry leaves the table. */
export interface Unloading {
  readonly kind: "unloading";
  /** Why it was taken out of service; null for a load that failed. */
  readonly reason: EvictionReason | null;
  /** The model still to dispose; null once disposal started, or when none was loaded. */
  toDispose: LoadedModel | null;
  readonly loadMs: number | null;
  readonly readyAt: number | null;
  /** When it last became idle (null: it never served). */
  readonly idleSince: number | null;
}

export type EntryState = Loading | Ready | Unloading;

export interface Entry {
  readonly descriptor: ModelDescriptor;
  /** The file version this entry loaded. */
  readonly fingerprint: Fingerprint;
  state: EntryState;
  /** The single flight: every request for a loading model awaits this (it stays settled once the load is over). */
  promise: Promise<LoadedModel>;
  readonly abort: AbortController;
  /** Counted against the limits from admission until the model is disposed; releases itself once. */
  reservation: Reservation | null;
  /** The sequences a GGUF model loads with (decided before its admission); null for other formats. */
  sequences: Sequences | null;
  leases: number;
  /** Requests awaiting the load: the fresh model is not evictable until they took their leases. */
  waiters: number;
  /** Resolves once the entry has left the table (unloaded or failed). */
  readonly gone: Deferred;
  /** Hits counted but not yet timed (their time is read when the use ends), and whose usage they are. */
  unstamped: number;
  usage: Usage | null;
  /** Uses were timed while still leased: the lease's end times the last use again. */
  timedInUse: boolean;
}

/** What other modules may read of an entry (the table alone writes). */
export interface EntryFacts {
  readonly descriptor: ModelDescriptor;
  readonly state: Readonly<EntryState>;
  readonly reservation: Pick<Reservation, "bytes" | "released"> | null;
  readonly sequences: Sequences | null;
  readonly leases: number;
  readonly waiters: number;
}

/** What the limits and the warm-up read of the table. */
export interface EntryView {
  /** Entries holding a reservation (counted against the limits). */
  admitted(): EntryFacts[];
  /** The state of a model's entry, if it has one. */
  stateOf(key: string): EntryState["kind"] | undefined;
  /** The configured pins (resolved once at start). */
  readonly pins: Pins;
  isPinned(key: string): boolean;
  /** Whether the cache is closing. */
  readonly closing: boolean;
}

/** An entry that serves requests now. */
export type ReadyEntry = Entry & { state: Ready };

/** Whether an entry serves requests now: the one home of that rule, for the hit path, leases, file checks and expiry. */
export function inService(entry: Entry | undefined): entry is ReadyEntry {
  return entry !== undefined && entry.state.kind === "ready";
}

/** Whether an entry is being taken out of service (or its load failed). */
export function leaving(entry: EntryFacts): boolean {
  return entry.state.kind === "unloading";
}

/** A fresh loading entry (its `promise` is set by whoever starts the load). */
export function loadingEntry(descriptor: ModelDescriptor, fingerprint: Fingerprint): Entry {
  return {
    descriptor,
    fingerprint,
    state: { kind: "loading" },
    promise: Promise.resolve(null as never),
    abort: new AbortController(),
    reservation: null,
    sequences: null,
    leases: 0,
    waiters: 0,
    gone: deferred(),
    unstamped: 0,
    usage: null,
    timedInUse: false,
  };
}

/** The model an entry holds: a ready one's, or the one an unloading entry has yet to dispose. */
export function modelOf(entry: EntryFacts): LoadedModel | null {
  const { state } = entry;
  return state.kind === "ready" ? state.model : state.kind === "unloading" ? state.toDispose : null;
}

/** Resolves with `promise`, or rejects with `Aborted` when `signal` aborts first (the promise itself goes on). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new Aborted("the request was aborted while waiting for the model"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Aborted("the request was aborted while waiting for the model"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** A request's hold on a ready model. A class, not closures: a hit allocates one small object. */
export class EntryLease implements Lease {
  private released = false;

  constructor(
    private readonly entry: Entry,
    readonly model: LoadedModel,
    /** Called once the lease ended: the table drops the count and looks whether the entry became idle. */
    private readonly ended: (entry: Entry) => void,
  ) {}

  get descriptor(): ModelDescriptor {
    return this.entry.descriptor;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.ended(this.entry);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The table

/** A model's file is compared with the version loaded at most this often (ms), so hits cost no `stat` each. */
export const FINGERPRINT_CHECK_INTERVAL_MS = 5000;

export interface EntryTableOptions {
  config: Pick<
    CacheConfig,
    | "model_ttl_seconds"
    | "load_failure_cooldown_seconds"
    | "max_cached_models"
    | "eviction_policy"
    | "usage_half_life_hours"
  >;
  /** `max_memory_mb` in bytes (0: no memory limit). */
  memoryLimit: Bytes;
  /** For the timers. */
  clock: Clock;
  /** For every reading of time. */
  time: ClockReader;
  ledger: MemoryLedger;
  book: UsageBook;
  events: CacheEventSource;
  logger: CacheLogger | undefined;
  /** For the file checks. */
  models: Pick<ModelSource, "fingerprint" | "available">;
  /** How long (ms) a load waits for room when every resident model is leased. */
  busyWaitMs: number;
}

function errorCode(error: unknown): string {
  return error instanceof InfernoError ? error.code : "model_load_failed";
}

function sameKeepAlive(a: KeepAlive | null, b: KeepAlive | null): boolean {
  if (a === b) return true;
  if (a === null || b === null || a === "forever" || b === "forever") return false;
  return a.afterSeconds === b.afterSeconds;
}

export class EntryTable implements EntryView {
  readonly limits: Limits;
  private readonly entries = new Map<string, Entry>();
  /** Entries in the ready state (`models_loaded`): changed only where an entry enters or leaves that state. */
  private ready = 0;
  private pinned = Pins.none();
  private closed = false;
  /**
   * Model key → monotonic time until which loads are refused after a failure, and the file version that failed: a
   * different version (the file was fixed or replaced) lifts the cooldown at once.
   */
  private readonly cooldowns = new Map<string, { until: number; fingerprint: Fingerprint }>();
  /** Model key → monotonic time of its last crash: a second crash soon after starts the load-failure cooldown. */
  private readonly crashes = new Map<string, number>();

  constructor(private readonly o: EntryTableOptions) {
    this.limits = new Limits({
      config: o.config,
      memoryLimit: o.memoryLimit,
      ledger: o.ledger,
      clock: o.clock,
      time: o.time,
      book: o.book,
      view: this,
    });
  }

  // ---------------------------------------------------------------- reading

  get(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  values(): IterableIterator<Entry> {
    return this.entries.values();
  }

  get readyCount(): number {
    return this.ready;
  }

  admitted(): EntryFacts[] {
    return [...this.entries.values()].filter((e) => e.reservation !== null && !e.reservation.released);
  }

  stateOf(key: string): EntryState["kind"] | undefined {
    return this.entries.get(key)?.state.kind;
  }

  get pins(): Pins {
    return this.pinned;
  }

  isPinned(key: string): boolean {
    return this.pinned.has(key);
  }

  get closing(): boolean {
    return this.closed;
  }

  /** Wall-clock time (ms) an idle model will be unloaded, or null (leased, pinned, no TTL, not ready). */
  expiresAt(entry: Entry | undefined): number | null {
    if (!inService(entry) || entry.leases > 0 || entry.state.idleMs === null) return null;
    return this.o.time.wallAt(entry.state.idleSince) + entry.state.idleMs;
  }

  // ---------------------------------------------------------------- configuration and lifecycle

  /** The resolved pins (limits.ts), once at start. */
  usePins(pins: Pins): void {
    this.pinned = pins;
  }

  /** The cache is closing: no admission from now on, and waiting loads give up. */
  close(): void {
    this.closed = true;
    this.limits.notify();
  }

  assertOpen(): void {
    if (this.closed) throw new Disposed("the model cache is closed");
  }

  // ---------------------------------------------------------------- the hit, leases, idleness

  /**
   * A hit on a ready entry, counted now and timed when its use ends (`stamp`): no clock read, no timer. `keepAlive`
   * (validated) replaces the idle time.
   */
  hit(entry: ReadyEntry, keepAlive: KeepAlive | undefined): void {
    const { descriptor } = entry;
    entry.usage = this.o.book.countUse(descriptor, "hit", entry.usage);
    entry.unstamped++;
    if (this.o.events.wants("hit")) this.o.events.emit("hit", { name: descriptor.name, key: descriptor.key });
    this.applyKeepAlive(entry, keepAlive);
  }

  lease(entry: ReadyEntry): Lease {
    entry.leases++;
    return new EntryLease(entry, entry.state.model, this.leaseEnded);
  }

  /** A lease ended: the TTL may start, waiting loads may fit, limits may hold again. */
  private readonly leaseEnded = (entry: Entry): void => {
    entry.leases--;
    if (entry.leases > 0) return;
    this.whenIdle(entry);
    this.limits.notify();
    this.enforce();
  };

  applyKeepAlive(entry: ReadyEntry, keepAlive: KeepAlive | undefined): void {
    const ready = entry.state;
    if (keepAlive === undefined || sameKeepAlive(ready.keepAlive, keepAlive)) return;
    ready.keepAlive = keepAlive;
    ready.idleMs = this.idleMs(entry.descriptor.key, ready);
    // A different idle time: the armed expiry no longer says when.
    this.cancelExpiry(ready);
  }

  /** Idle time (ms) before an idle model is unloaded; null = never. */
  private idleMs(key: string, ready: Ready): number | null {
    if (this.pinned.has(key)) return null;
    if (ready.keepAlive !== null) return ready.keepAlive === "forever" ? null : ready.keepAlive.afterSeconds * 1000;
    const ttl = this.pinned.ttlSeconds(key) ?? this.o.config.model_ttl_seconds;
    return ttl === 0 ? null : ttl * 1000;
  }

  /**
   * Called when an entry may have become idle: finishes a pending unload, or (re)starts the idle TTL (the expiry timer
   * is armed only when none would fire in time) and the file check of an idle model.
   */
  whenIdle(entry: Entry): void {
    if (entry.leases > 0) return;
    const state = entry.state;
    // An unloading entry still holding its model is unloaded now (`finishUnload` takes the model first: once).
    if (state.kind === "unloading") {
      if (state.toDispose) void this.finishUnload(entry, state);
      return;
    }
    if (state.kind !== "ready") return;
    const now = this.o.time.monotonic();
    this.stamp(entry, now);
    state.idleSince = now;
    if (state.idleMs === 0) void this.retire(entry, "ttl");
    else {
      this.armIdle(entry, state);
      this.checkFileWhenIdle(entry, state);
    }
  }

  // ---------------------------------------------------------------- timing hits

  /**
   * Times the hits counted on the hit path at `monotonic` (a reading of `time`): when their use ended, or — read while
   * still in use — now, and again when the use ends (the last use is when the model was last in use).
   */
  private stamp(entry: Entry, monotonic: number): void {
    if (entry.usage === null || (entry.unstamped === 0 && !entry.timedInUse)) return;
    this.o.book.stampHits(entry.usage, this.o.time.wallAt(monotonic), entry.unstamped, this.limits.inflation);
    entry.unstamped = 0;
    entry.timedInUse = entry.leases > 0;
  }

  /** Times every hit not yet timed (before statistics are read or saved): uses still leased count as of now. */
  stampAll(): void {
    const now = this.o.time.monotonic();
    for (const entry of this.entries.values()) this.stamp(entry, now);
  }

  // ---------------------------------------------------------------- loading

  /**
   * A new loading entry for `descriptor`, whose load `run` starts at once (the entry is the single flight). Refused
   * with `ModelLoadCooldown` while a recent failure's cooldown lasts.
   */
  startLoad(descriptor: ModelDescriptor, run: (entry: Entry) => Promise<LoadedModel>): Entry {
    const cooldown = this.cooldowns.get(descriptor.key);
    const now = this.o.time.monotonic();
    if (cooldown && !sameFileVersion(cooldown.fingerprint, descriptor.fingerprint))
      this.cooldowns.delete(descriptor.key);
    const until = this.cooldowns.get(descriptor.key)?.until;
    if (until !== undefined && until > now) {
      const retry = Math.ceil((until - now) / 1000);
      throw new ModelLoadCooldown(`${descriptor.name} failed to load recently; retry in ${retry} s`, {
        details: { model: descriptor.name, retry_after_seconds: retry },
      });
    }
    const known = this.o.book.get(descriptor.key)?.fingerprint;
    // The newer of what resolve saw and what a file check last saw (a cached descriptor may be older).
    const fingerprint = known && known.mtimeMs > descriptor.fingerprint.mtimeMs ? known : descriptor.fingerprint;
    const entry = loadingEntry(descriptor, fingerprint);
    this.entries.set(descriptor.key, entry);
    entry.promise = run(entry);
    entry.promise.catch(() => {});
    return entry;
  }

  /** Awaits a load in flight as one more waiter (the fresh model is not evictable until its waiters took their leases). */
  async join(entry: Entry, signal: AbortSignal | undefined): Promise<void> {
    entry.waiters++;
    try {
      await abortable(entry.promise, signal);
    } catch (error) {
      // A load cancelled by eviction or clear: the caller retries; a waiter that gave up leaves the model to its TTL.
      const state = entry.state;
      const retired = state.kind === "unloading" && state.reason !== null && state.reason !== "shutdown";
      if (error instanceof Aborted && !signal?.aborted && retired) return;
      throw error;
    } finally {
      entry.waiters--;
      if (signal?.aborted) this.whenIdle(entry);
    }
  }

  /**
   * Reserves room for a load: evicts idle models until both limits hold with the estimate counted, or waits (bounded)
   * for leases to end when that is not possible. Warm-up (`allowEvict = false`) never evicts and never waits.
   * `sequences`: what the estimate counted (a GGUF model's), kept for the loaded model's info and the refusal's message.
   */
  async admit(entry: Entry, estimate: Bytes, allowEvict: boolean, sequences: Sequences | null = null): Promise<void> {
    entry.sequences = sequences;
    const { busyWaitMs } = this.o;
    const deadline = this.o.time.monotonic() + busyWaitMs;
    const { name } = entry.descriptor;
    for (;;) {
      if (entry.abort.signal.aborted) throw new Aborted(`loading ${name} was cancelled`);
      this.assertOpen();
      this.limits.assertCanEverFit(entry, estimate);
      const shortfall = this.limits.shortfall(1, estimate);
      if (shortfall.count <= 0 && shortfall.bytes <= 0) {
        entry.reservation = this.o.ledger.reserve(estimate);
        return;
      }
      if (!allowEvict)
        throw new CacheBusy(`no room for ${name} without evicting another model`, { details: { model: name } });
      if (await this.evict(this.limits.victims(shortfall, entry))) continue;
      if (this.o.time.monotonic() >= deadline) {
        throw new CacheBusy(
          `no room for ${name}: the resident models are in use and none became free within ${busyWaitMs / 1000} s`,
          { details: { model: name, retry_after_seconds: Math.ceil(busyWaitMs / 1000) } },
        );
      }
      await this.limits.roomMayBeFree(deadline, entry.abort.signal);
    }
  }

  /** The measured figure replaces the estimate; a model that turns out never to fit is disposed and refused. */
  async assertMeasuredFits(entry: Entry, model: LoadedModel): Promise<void> {
    try {
      this.limits.assertCanEverFit(entry, model.memoryBytes);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /**
   * loading → ready: the model is in (its measured memory reserved, its load recorded, its file check scheduled).
   * False when the entry was retired while it loaded: the caller disposes the model, which never enters service.
   */
  markReady(entry: Entry, model: LoadedModel, loadMs: number, gguf: PersistedGgufFacts | null): boolean {
    if (entry.abort.signal.aborted || entry.state.kind !== "loading") return false;
    const now = this.o.time.monotonic();
    const ready: Ready = {
      kind: "ready",
      model,
      loadMs,
      readyAt: now,
      keepAlive: null,
      idleMs: null,
      idleSince: now,
      expiry: null,
      checkDue: false,
      checkTimer: null,
      checkWhenIdle: false,
    };
    ready.idleMs = this.idleMs(entry.descriptor.key, ready);
    entry.state = ready;
    this.ready++;
    entry.reservation?.resize(model.memoryBytes);
    this.scheduleFileCheck(entry, ready);
    const { descriptor } = entry;
    this.o.book.recordLoad(descriptor, {
      fingerprint: entry.fingerprint,
      loadMs,
      memoryBytes: model.memoryBytes,
      gguf,
    });
    this.o.events.emit("load", {
      name: descriptor.name,
      key: descriptor.key,
      durationMs: loadMs,
      memoryBytes: model.memoryBytes,
    });
    void model.crashed?.then((error) => this.crashed(entry, model, error));
    model.onMemoryChange?.((bytes) => this.remeasured(entry, model, bytes));
    if (entry.waiters === 0) this.whenIdle(entry);
    this.enforce();
    return true;
  }

  /**
   * A failed or cancelled load: its entry leaves the table, and the cause becomes the error every waiter gets (a real
   * failure is counted and starts the cooldown).
   */
  loadFailed(entry: Entry, error: unknown): unknown {
    const { name, key } = entry.descriptor;
    if (this.entries.get(key) === entry) this.entries.delete(key);
    const state = entry.state.kind === "unloading" ? entry.state : this.becomeUnloading(entry, null);
    entry.reservation?.release();
    entry.gone.resolve();
    this.limits.notify();
    if (entry.abort.signal.aborted) return new Aborted(`loading ${name} was cancelled (${state.reason ?? "aborted"})`);
    if (error instanceof ModelTooLarge || error instanceof CacheBusy || error instanceof Disposed) return error;
    this.o.book.recordLoadFailure(key);
    const cooldownMs = this.o.config.load_failure_cooldown_seconds * 1000;
    // A ModelInvalid is the verdict on this file version's header, given before any load and cheap to give again: each
    // request gets it, rather than a cooldown's "failed to load recently" that hides why.
    if (cooldownMs > 0 && !(error instanceof ModelInvalid)) {
      const until = this.o.time.monotonic() + cooldownMs;
      this.cooldowns.set(key, { until, fingerprint: entry.descriptor.fingerprint });
    }
    const typed =
      error instanceof InfernoError
        ? error
        : new ModelLoadFailed(`could not load ${name}: ${messageOf(error)}`, {
            cause: error,
            details: { model: name },
          });
    this.o.events.emit("load_failed", { name, key, code: errorCode(typed), error });
    this.o.logger?.warn("model failed to load", { model: name, error: messageOf(error) });
    return typed;
  }

  /**
   * A ready model whose runtime died: it leaves at once with reason `crashed` (its requests in flight already failed
   * with the backend's typed error), and the next request loads it again. A model that crashes again within
   * `load_failure_cooldown_seconds` of its previous crash is refused for that long, as a failed load is, so a model
   * that crashes on every request cannot crash-loop.
   */
  private crashed(entry: Entry, model: LoadedModel, error: Error): void {
    if (modelOf(entry) !== model) return;
    const { name, key } = entry.descriptor;
    const now = this.o.time.monotonic();
    const cooldownMs = this.o.config.load_failure_cooldown_seconds * 1000;
    const previous = this.crashes.get(key);
    this.crashes.set(key, now);
    const repeated = previous !== undefined && now - previous < cooldownMs;
    if (repeated) this.cooldowns.set(key, { until: now + cooldownMs, fingerprint: entry.descriptor.fingerprint });
    this.o.logger?.warn("model crashed; it is unloaded and loads again on the next request", {
      model: name,
      error: messageOf(error),
      ...(repeated ? { cooldown_seconds: this.o.config.load_failure_cooldown_seconds } : {}),
    });
    void this.retire(entry, "crashed", true);
  }

  /**
   * A resident model's memory was measured again (a model host's figure changes while it runs): its reservation takes
   * the new figure, so the limits and the statistics count the latest one, and a model that grew makes idle ones go.
   */
  private remeasured(entry: Entry, model: LoadedModel, bytes: Bytes): void {
    if (modelOf(entry) !== model || !entry.reservation || entry.reservation.bytes === bytes) return;
    entry.reservation.resize(bytes);
    this.enforce();
  }

  // ---------------------------------------------------------------- limits

  /**
   * Brings both limits back as far as idle models allow. Called after every load, lease release and re-measure, so a
   * model measured larger than its estimate while others were leased is made up for as soon as a lease ends.
   */
  enforce(): void {
    const over = this.limits.excess();
    if (over === null) return;
    const victims = this.limits.victims(over, null);
    if (victims === null) {
      this.o.logger?.debug?.("over the cache limits until leased models are released", {
        over_models: over.count,
        over_bytes: over.bytes,
      });
      return;
    }
    void this.evict(victims);
  }

  /** Retires the victims; resolves (true) once they are gone, false at once when there are none to cover the room. */
  private async evict(victims: Victim[] | null): Promise<boolean> {
    if (victims === null) return false;
    await Promise.all(victims.map((v) => this.retireKey(v.key, v.reason)));
    return true;
  }

  // ---------------------------------------------------------------- leaving

  private retireKey(key: string, reason: EvictionReason): Promise<void> {
    const entry = this.entries.get(key);
    return entry ? this.retire(entry, reason) : Promise.resolve();
  }

  /**
   * Takes an entry out of service: a loading one is aborted, a ready one stops taking new leases and is unloaded when
   * its last lease ends (at once when idle; `force` does not wait — shutdown and crashes). Resolves once it is gone.
   */
  retire(entry: Entry, reason: EvictionReason, force = false): Promise<void> {
    const state = entry.state;
    if (state.kind !== "unloading") {
      const unloading = this.becomeUnloading(entry, reason);
      if (state.kind === "loading") entry.abort.abort();
      else if (entry.leases === 0 || force) void this.finishUnload(entry, unloading);
    } else if (force && state.toDispose) {
      void this.finishUnload(entry, state);
    }
    return entry.gone.promise;
  }

  /** loading or ready → unloading (`reason` null: a load that failed); a ready entry's model becomes the one to dispose. */
  private becomeUnloading(entry: Entry, reason: EvictionReason | null): Unloading {
    const state = entry.state;
    let next: Unloading;
    if (state.kind === "ready") {
      this.ready--;
      this.cancelTimers(state);
      const { model: toDispose, loadMs, readyAt, idleSince } = state;
      next = { kind: "unloading", reason, toDispose, loadMs, readyAt, idleSince };
    } else {
      next = { kind: "unloading", reason, toDispose: null, loadMs: null, readyAt: null, idleSince: null };
    }
    entry.state = next;
    return next;
  }

  private async finishUnload(entry: Entry, state: Unloading): Promise<void> {
    const model = state.toDispose;
    if (!model) return;
    state.toDispose = null;
    const now = this.o.time.monotonic();
    this.stamp(entry, now);
    const idleSeconds = entry.leases === 0 && state.idleSince !== null ? (now - state.idleSince) / 1000 : 0;
    const residentSeconds = state.readyAt === null ? 0 : (now - state.readyAt) / 1000;
    try {
      await model.dispose();
    } catch (error) {
      this.o.logger?.warn("model did not dispose cleanly", { model: entry.descriptor.name, error: messageOf(error) });
    }
    const reason = state.reason ?? "manual";
    const { name, key } = entry.descriptor;
    if (this.entries.get(key) === entry) this.entries.delete(key);
    entry.reservation?.release();
    this.o.book.recordEviction(reason);
    this.o.events.emit("evict", { name, key, reason, idleSeconds, residentSeconds });
    entry.gone.resolve();
    this.limits.notify();
  }

  // ---------------------------------------------------------------- timers

  /** The entry is idle since `idleSince`: makes sure it expires `idleMs` after (or never, when null). */
  private armIdle(entry: Entry, ready: Ready): void {
    if (ready.idleMs === null) this.cancelExpiry(ready);
    else this.armExpiry(entry, ready, ready.idleSince + ready.idleMs);
  }

  private armExpiry(entry: Entry, ready: Ready, dueAt: number): void {
    if (ready.expiry && ready.expiry.dueAt <= dueAt) return;
    this.cancelExpiry(ready);
    const { clock, time } = this.o;
    const handle = clock.setTimeout(() => this.expire(entry, ready), Math.max(0, dueAt - time.monotonic()));
    handle.unref?.();
    ready.expiry = { handle, dueAt };
  }

  /** The expiry timer fired: the model expires if it idled its full time, else the timer waits for the rest of it. */
  private expire(entry: Entry, ready: Ready): void {
    ready.expiry = null;
    if (entry.state !== ready || entry.leases > 0 || ready.idleMs === null) return;
    const now = this.o.time.monotonic();
    const dueAt = ready.idleSince + ready.idleMs;
    if (now < dueAt) {
      this.armExpiry(entry, ready, dueAt);
      return;
    }
    const { name, key } = entry.descriptor;
    this.o.events.emit("expired", { name, key, idleSeconds: (now - ready.idleSince) / 1000 });
    void this.retire(entry, "ttl");
  }

  private cancelExpiry(ready: Ready): void {
    if (!ready.expiry) return;
    this.o.clock.clearTimeout(ready.expiry.handle);
    ready.expiry = null;
  }

  /** The next file check is due in `FINGERPRINT_CHECK_INTERVAL_MS` (one timer per check, none per hit). */
  private scheduleFileCheck(entry: Entry, ready: Ready): void {
    const { clock } = this.o;
    ready.checkDue = false;
    if (ready.checkTimer) clock.clearTimeout(ready.checkTimer);
    ready.checkTimer = clock.setTimeout(() => {
      ready.checkTimer = null;
      ready.checkDue = true;
      if (ready.checkWhenIdle && entry.leases === 0) this.checkFileWhenIdle(entry, ready);
    }, FINGERPRINT_CHECK_INTERVAL_MS);
    ready.checkTimer.unref?.();
  }

  /** Stops both timers (the entry leaves service). */
  private cancelTimers(ready: Ready): void {
    this.cancelExpiry(ready);
    if (ready.checkTimer) this.o.clock.clearTimeout(ready.checkTimer);
    ready.checkTimer = null;
  }

  // ---------------------------------------------------------------- file checks

  /**
   * A model whose file was deleted (or replaced) is unloaded once it is idle — its last lease ended — not at its TTL:
   * its file is compared then, or when the check is next due (every file check stays at most once per
   * `FINGERPRINT_CHECK_INTERVAL_MS`, and hits stay free of I/O). Once per idle spell, so idle models are not polled.
   */
  private checkFileWhenIdle(entry: Entry, ready: Ready): void {
    if (entry.state !== ready) return;
    if (!ready.checkDue) {
      ready.checkWhenIdle = true;
      return;
    }
    ready.checkWhenIdle = false;
    void this.fileChanged(entry).then((changed) => {
      if (changed) void this.retire(entry, "file_changed");
    });
  }

  /**
   * Whether a ready entry's file changed: compared at most once per interval per model (a hit costs no stat). True
   * only while the entry still serves (the caller retires it).
   */
  async fileChanged(entry: Entry): Promise<boolean> {
    const ready = entry.state;
    if (ready.kind !== "ready" || !ready.checkDue) return false;
    // Uses held for long (overlapping leases that never all end) are timed at least this often.
    this.stamp(entry, this.o.time.monotonic());
    this.scheduleFileCheck(entry, ready);
    const { models, book, logger } = this.o;
    const { name, key } = entry.descriptor;
    const current = await models.fingerprint(key);
    if (current && sameFileVersion(current, entry.fingerprint)) return false;
    // A models folder that is not there at all (unmounted) changes nothing: the loaded model keeps serving.
    if (!current && models.available && !(await models.available())) return false;
    if (current) book.recordFileVersion(key, current);
    logger?.info(
      current
        ? "model file changed; reloading once its requests end"
        : "model file deleted; unloading once its requests end",
      { model: name },
    );
    return entry.state === ready;
  }
}
