/**
 * The cache's one event source: every event has a type and carries the facts a listener needs (durations in
 * milliseconds or seconds as the field names say, sizes in bytes), so logs, Prometheus metrics and the event stream
 * of the server all read the same events and nothing has to reach back into the cache.
 */
import type { Bytes } from "../models/types.js";
import type { EvictionReason, LastSave, WarmupResult } from "./types.js";

/** Events the cache emits, by type. */
export interface CacheEvents {
  /** A request found the model ready. */
  hit: { name: string; key: string };
  /** A request had to load the model (`key` is null for names that resolved to no model — see `unknown_model`). */
  miss: { name: string; key: string | null };
  /** A request joined a load already in flight: neither a hit nor a fresh miss. */
  coalesced: { name: string; key: string };
  /** A request named no model: counted as `unknown_model_requests`, not as a miss. */
  unknown_model: { name: string; code: string };
  /** A load started (`progress` 0) or moved on (0..1, when the backend tells). */
  loading: { name: string; key: string; progress: number; estimateBytes: Bytes };
  /** A load finished: its duration excludes the runtime's one-time start-up. */
  load: { name: string; key: string; durationMs: number; memoryBytes: Bytes };
  /** A load failed; `code` is the error's stable code (e.g. `model_load_failed`). */
  load_failed: { name: string; key: string; code: string; error: unknown };
  /** An idle model's TTL ran out (an `evict` with reason `ttl` follows once it is unloaded). */
  expired: { name: string; key: string; idleSeconds: number };
  /** A model left memory. `idleSeconds`: since its last lease ended (0 when it was in use); `residentSeconds`: since it became ready. */
  evict: { name: string; key: string; reason: EvictionReason; idleSeconds: number; residentSeconds: number };
  /**
   * A model's prompt store saved an evaluated prefix (on unload), restored one (on load or for a request), evicted one
   * (the budget, or `superseded` by a longer one) or quarantined one (`reason` says why). `diskBytes`: the saved
   * prefixes' bytes on disk after it.
   */
  prefix: {
    name: string;
    key: string;
    action: "saved" | "restored" | "evicted" | "quarantined";
    tokens: number;
    bytes: Bytes;
    diskBytes: Bytes;
    reason: string | null;
  };
  /** A model is pinned (`always_warm` or `pinned = true`), resolved at start. */
  pinned: { name: string; key: string };
  save: LastSave;
  restore: { models: number; missing: number; warning: string | null };
  warmup: WarmupResult;
}

/** Every event name, in the order a cache's life usually meets them. */
export const CACHE_EVENT_NAMES: readonly (keyof CacheEvents)[] = [
  "restore",
  "pinned",
  "warmup",
  "unknown_model",
  "miss",
  "coalesced",
  "hit",
  "loading",
  "load",
  "load_failed",
  "expired",
  "evict",
  "prefix",
  "save",
];

/** One event with its type, as a single value (for streams: `{ type: "evict", name, key, reason, … }`). */
export type CacheEvent = { [E in keyof CacheEvents]: { type: E } & CacheEvents[E] }[keyof CacheEvents];

/**
 * Listeners keyed by event name, given when the cache is created (`ModelCache.new(…, { metrics })`). They are subscribed
 * before the saved state is restored and before warm-up starts, so they see the start-up `restore` event and warm-up's
 * `load`/`warmup` events, which a listener added with `on()` after creation can miss. A listener that throws is logged
 * and does not disturb the cache.
 */
export type CacheMetrics = { [E in keyof CacheEvents]?: (payload: CacheEvents[E]) => void };

type AnyListener = (event: CacheEvent) => void;

const isCacheEvent = (name: string): name is keyof CacheEvents =>
  (CACHE_EVENT_NAMES as readonly string[]).includes(name);

/**
 * Refuses a subscription that would never fire (JavaScript callers have no type check): an unknown event name, naming
 * the known ones, or a listener that is not a function.
 */
export function checkListener(event: string, listener: unknown, refuse: (message: string) => Error): void {
  if (!isCacheEvent(event)) {
    throw refuse(`there is no cache event "${event}"; expected one of ${CACHE_EVENT_NAMES.join(", ")}`);
  }
  if (typeof listener !== "function") {
    throw refuse(`${event} must be a function (the listener); found ${typeof listener}`);
  }
}

/** Subscribers by event type, plus listeners of every event. A listener that throws is reported to `onListenerError`. */
export class CacheEventSource {
  private readonly listeners = new Map<keyof CacheEvents, Set<(payload: never) => void>>();
  private readonly anyListeners = new Set<AnyListener>();
  constructor(private readonly onListenerError: (event: keyof CacheEvents, error: unknown) => void) {}

  /** Subscribes to one event type; returns the unsubscribe function. */
  on<E extends keyof CacheEvents>(event: E, listener: (payload: CacheEvents[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    const entry = listener as (payload: never) => void;
    set.add(entry);
    return () => set.delete(entry);
  }

  /** Subscribes to every event, each given with its `type`; returns the unsubscribe function. */
  onAny(listener: AnyListener): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  /** Whether anyone listens to `event` (emitters skip building payloads nobody reads). */
  wants(event: keyof CacheEvents): boolean {
    return this.anyListeners.size > 0 || (this.listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof CacheEvents>(event: E, payload: CacheEvents[E]): void {
    const set = this.listeners.get(event);
    if (set) {
      for (const listener of set) this.call(event, () => (listener as (payload: CacheEvents[E]) => void)(payload));
    }
    if (this.anyListeners.size > 0) {
      const typed = { type: event, ...payload } as CacheEvent;
      for (const listener of this.anyListeners) this.call(event, () => listener(typed));
    }
  }

  /**
   * Subscribes a `CacheMetrics` object, refusing what would otherwise never fire: an unknown event name (naming the
   * known ones) or a listener that is not a function.
   */
  subscribeAll(metrics: CacheMetrics, refuse: (message: string) => Error): void {
    for (const [event, listener] of Object.entries(metrics)) {
      if (listener === undefined && isCacheEvent(event)) continue;
      checkListener(event, listener, refuse);
      this.on(event as keyof CacheEvents, listener as (payload: unknown) => void);
    }
  }

  private call(event: keyof CacheEvents, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.onListenerError(event, error);
    }
  }
}
