/**
 * One model in the cache. An entry keeps its identity for its whole life (leases and waiters point at it); what only
 * one state has lives in that state's object — `Loading`, `Ready` (the model, its timers, its keep-alive) or
 * `Unloading` (why, and the model still to dispose) — so a transition replaces `entry.state` and nothing else needs
 * clearing. The entry is the single flight: it holds the load's promise and its AbortController from birth, so there
 * is no separate in-flight map to keep in sync, and a request that arrives after the load ended still reads its outcome.
 *
 * Only the entry table (entry-table.ts) changes entries; other modules read them through `EntryFacts`.
 */
import type { LoadedModel } from "../backends/types.js";
import { Aborted } from "../errors/index.js";
import type { Fingerprint, ModelDescriptor } from "../models/types.js";
import type { Reservation } from "./memory.js";
import type { Pins } from "./pins.js";
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
