/**
 * One model in the cache, as a discriminated union of its states — loading, ready, unloading — with the model only on
 * `ReadyEntry` (an unloading entry holds the model it still has to dispose, once its last lease ends). The entry is the
 * single flight: a loading entry holds the load's promise and its AbortController, so there is no separate in-flight
 * map to keep in sync. An entry keeps its identity through its states (leases point at it); the transitions below are
 * the only places its state changes.
 */
import type { LoadedModel } from "../backends/types.js";
import { Aborted } from "../errors/index.js";
import type { Fingerprint, ModelDescriptor } from "../models/types.js";
import type { Reservation } from "./memory.js";
import type { EvictionReason, KeepAlive, Lease, TimerHandle } from "./types.js";
import type { Usage } from "./usage.js";

export interface Deferred {
  promise: Promise<void>;
  resolve(): void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** What every state has. */
interface EntryCommon {
  readonly descriptor: ModelDescriptor;
  /** The single flight: every request for a loading model awaits this (settled once the load is over). */
  promise: Promise<LoadedModel>;
  readonly abort: AbortController;
  /** Counted against the limits from admission until the model is disposed; releases itself once. */
  reservation: Reservation | null;
  leases: number;
  /** Requests awaiting the load: the fresh model is not evictable until they took their leases. */
  waiters: number;
  /** Request `keep_alive`, replacing the configured TTL until another request sets one. */
  keepAlive: KeepAlive | null;
  /** The idle time before unloading (ms, null = never), worked out when it can change (not per release). */
  idleMs: number | null;
  /** Monotonic time the model became idle (last lease ended, or a lease-free use); the TTL counts from here. */
  idleSince: number;
  /** The armed expiry timer and when it fires (monotonic); checked lazily — hits never re-arm it. */
  expiry: { handle: TimerHandle; dueAt: number } | null;
  /** Why it is being taken out of service, once it is. */
  retireReason: EvictionReason | null;
  /** Resolves once the entry has left the map (unloaded or failed). */
  readonly gone: Deferred;
  /** The file version this entry loaded. */
  fingerprint: Fingerprint;
  /**
   * Whether the file is due to be compared with `fingerprint` (a hit then takes the slow path, which compares it). Set
   * by `checkTimer`, armed once per check: a hit reads no clock and arms no timer for it.
   */
  checkDue: boolean;
  checkTimer: TimerHandle | null;
  /** The model became idle since its file was last compared: compare it once the check is due (a deleted file unloads it). */
  checkWhenIdle: boolean;
  /** Hits counted but not yet timed (their time is read when the lease ends), and whose usage they are. */
  unstamped: number;
  usage: Usage | null;
  /** Uses were timed while still leased: the lease's end times the last use again. */
  timedInUse: boolean;
}

export interface LoadingEntry extends EntryCommon {
  state: "loading";
}

export interface ReadyEntry extends EntryCommon {
  state: "ready";
  model: LoadedModel;
  loadMs: number;
  /** Monotonic time the model became ready. */
  readyAt: number;
}

export interface UnloadingEntry extends EntryCommon {
  state: "unloading";
  /** The model still to dispose (when the last lease ends); null once disposal started, or when none was loaded. */
  toDispose: LoadedModel | null;
  loadMs: number | null;
  readyAt: number | null;
}

export type Entry = LoadingEntry | ReadyEntry | UnloadingEntry;

/**
 * Whether an entry serves requests now: loaded, and not being taken out of service. The one home of that rule, for
 * the hit path, leases, file checks and expiry alike.
 */
export function inService(entry: Entry | undefined): entry is ReadyEntry {
  return entry !== undefined && entry.state === "ready" && entry.retireReason === null;
}

/** A fresh loading entry (its `promise` is set by whoever starts the load). */
export function loadingEntry(descriptor: ModelDescriptor, fingerprint: Fingerprint, now: number): LoadingEntry {
  return {
    descriptor,
    state: "loading",
    promise: Promise.resolve(null as never),
    abort: new AbortController(),
    reservation: null,
    leases: 0,
    waiters: 0,
    keepAlive: null,
    idleMs: null,
    idleSince: now,
    expiry: null,
    retireReason: null,
    gone: deferred(),
    fingerprint,
    checkDue: false,
    checkTimer: null,
    checkWhenIdle: false,
    unstamped: 0,
    usage: null,
    timedInUse: false,
  };
}

/** loading → ready: the model is in. */
export function becomeReady(entry: LoadingEntry, model: LoadedModel, loadMs: number, now: number): ReadyEntry {
  const ready = entry as unknown as ReadyEntry;
  ready.state = "ready";
  ready.model = model;
  ready.loadMs = loadMs;
  ready.readyAt = now;
  ready.idleSince = now;
  return ready;
}

/**
 * loading or ready → unloading, taken out of service for `reason` (null: a load that failed): a ready entry's model
 * becomes the one to dispose.
 */
export function becomeUnloading(entry: LoadingEntry | ReadyEntry, reason: EvictionReason | null): UnloadingEntry {
  const model = entry.state === "ready" ? entry.model : null;
  const unloading = entry as unknown as UnloadingEntry & { model?: LoadedModel };
  unloading.state = "unloading";
  if (reason !== null) unloading.retireReason = reason;
  unloading.toDispose = model;
  unloading.loadMs ??= null;
  unloading.readyAt ??= null;
  unloading.model = undefined;
  return unloading;
}

/** The model an entry holds: a ready one's, or the one an unloading entry has yet to dispose. */
export function modelOf(entry: Entry): LoadedModel | null {
  return entry.state === "ready" ? entry.model : entry.state === "unloading" ? entry.toDispose : null;
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
  readonly model: LoadedModel;

  constructor(
    private readonly entry: ReadyEntry,
    private readonly ended: (entry: Entry) => void,
  ) {
    this.model = entry.model;
    entry.leases++;
  }

  get descriptor(): ModelDescriptor {
    return this.entry.descriptor;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.entry.leases--;
    this.ended(this.entry);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.release();
  }
}
