/**
 * The cache's two limits — `max_cached_models` and `max_memory_mb` — as questions about the entries: is a model too
 * large ever to fit, how far over the limits a load would take the cache, which idle models to evict for that room (by
 * the eviction policy), how far over it is now, and a bounded wait for room to become free. It reads the entries
 * through the entry table's `EntryView` and changes none: the table admits, reserves and evicts.
 *
 * Memory reservations live here too: the estimate is reserved before a load (so two loads cannot overcommit), replaced
 * by the measured figure after, and released exactly once when the model is gone. The ledger keeps the totals, so "how
 * much is held" and "how many models count against the limits" are O(1).
 *
 * Pins live here as well, the models the limits never take: `cache.always_warm` and per-model `pinned = true` (and per-model `ttl_seconds`), turned into canonical model
 * keys by resolving each name exactly as a request would (so `tiny` pins `llama/tiny.gguf`). The live cache and the
 * CLI's file mode both use this, so "is it pinned?" has one answer with or without a server.
 */
import type { CacheConfig } from "../config/schema.js";
import { messageOf, ModelTooLarge } from "../errors/index.js";
import type { Bytes, ModelDescriptor, Sequences } from "../models/types.js";
import type { ClockReader } from "./clock.js";
import type { EntryFacts, EntryView } from "./entry-table.js";
import {
  asSpareCopy,
  chooseVictims,
  type EvictionCandidate,
  fleetLoadTimes,
  nextInflation,
  settledLoadTimes,
} from "./policy/eviction.js";
import { countOfRate, type DecayedCount, decayedValue, fleetFrequency } from "./policy/frequency.js";
import type { Clock, EvictionReason } from "./types.js";
import type { UsageBook } from "./usage.js";
import { matchSaved } from "../models/name-index.js";
import { MIB } from "../units.js";

export interface LimitsOptions {
  config: Pick<CacheConfig, "max_cached_models" | "eviction_policy" | "usage_half_life_hours">;
  /** `max_memory_mb` in bytes (0: no memory limit). */
  memoryLimit: Bytes;
  ledger: MemoryLedger;
  /** Timers for the bounded wait for room. */
  clock: Clock;
  time: ClockReader;
  /** Usage, for the eviction policy. */
  book: Pick<UsageBook, "get">;
  view: EntryView;
}

/** How far over the limits (models, bytes); at most 0 each when within them. */
export interface Shortfall {
  count: number;
  bytes: Bytes;
}

/** How a fleet node's eviction differs from a single node's. */
export interface FleetEviction {
  /**
   * Whether this node's copy of a model (by name) is spare: another node holds it too and the copies rule does not
   * need this one, so it goes first (`asSpareCopy`).
   */
  isSpare(name: string): boolean;
  /** The fleet's typical load time per byte (`fleetLoadTimes`), or null while unknown. */
  loadRate(): number | null;
  /**
   * The other nodes' usage of a model (uses per hour, decayed, as their records last showed it) and the copies the
   * fleet holds of it: its frequency here is `fleetFrequency`.
   */
  usageElsewhere(name: string): { perHour: number; copies: number };
}

/** A model to evict, and why. */
export interface Victim {
  key: string;
  reason: EvictionReason;
}

export class Limits {
  /** GDSF's inflation: the value of the last victim, added to every later use (eviction.ts). */
  inflation = 0;
  /** Set by the fleet; null on a single node. */
  fleet: FleetEviction | null = null;
  private readonly capacityWaiters = new Set<() => void>();

  constructor(private readonly o: LimitsOptions) {}

  /** Whether the resident models are over either limit now (the cheap test run after every lease release). */
  overLimits(): boolean {
    const { ledger, memoryLimit, config } = this.o;
    return ledger.count > config.max_cached_models || (memoryLimit > 0 && ledger.bytes > memoryLimit);
  }

  /** The pinned models other than `entry` that stay (they never go to make room). */
  private pinnedOthers(entry: EntryFacts): EntryFacts[] {
    const { view } = this.o;
    return view
      .admitted()
      .filter((e) => e !== entry && view.isPinned(e.descriptor.key) && e.state.kind !== "unloading");
  }

  /** Bytes reserved by `pinnedOthers`. */
  private pinnedBytes(entry: EntryFacts): Bytes {
    return this.pinnedOthers(entry).reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
  }

  /**
   * The memory a load of `entry` may take with every evictable model gone: the memory limit less what pinned models
   * hold (Infinity without a limit). Auto `backend.parallel` takes as many sequences as fit in it.
   */
  room(entry: EntryFacts): Bytes {
    const { memoryLimit } = this.o;
    return memoryLimit > 0 ? memoryLimit - this.pinnedBytes(entry) : Infinity;
  }

  /** Refuses a model that could not fit even with every evictable model gone (pinned models never go). */
  assertCanEverFit(entry: EntryFacts, bytes: Bytes): void {
    const { memoryLimit, config, view } = this.o;
    const pinnedBytes = this.pinnedBytes(entry);
    const { name } = entry.descriptor;
    if (memoryLimit > 0 && bytes > memoryLimit - pinnedBytes) {
      const sequences = entry.sequences;
      throw new ModelTooLarge(
        `${name} needs ${Math.ceil(bytes / MIB)} MiB but the cache's memory limit is ${Math.floor(memoryLimit / MIB)} MiB` +
          (pinnedBytes > 0 ? ` (${Math.ceil(pinnedBytes / MIB)} MiB of it held by pinned models)` : "") +
          (sequences ? sequencesNote(sequences) : ""),
        {
          details: {
            model: name,
            needed_bytes: bytes,
            limit_bytes: memoryLimit,
            pinned_bytes: pinnedBytes,
            ...(sequences ? { sequences: sequences.count } : {}),
          },
        },
      );
    }
    if (!view.isPinned(entry.descriptor.key) && this.pinnedOthers(entry).length >= config.max_cached_models) {
      throw new ModelTooLarge(
        `${name} cannot be loaded: all ${config.max_cached_models} places (max_cached_models) are taken by pinned models`,
        { details: { model: name, max_cached_models: config.max_cached_models } },
      );
    }
  }

  /** How far over the limits the cache would be with `extra` more models of `bytes` in total (0, 0: as it is now). */
  shortfall(extra: number, bytes: Bytes): Shortfall {
    const { ledger, memoryLimit, config } = this.o;
    return {
      count: ledger.count + extra - config.max_cached_models,
      bytes: memoryLimit > 0 ? ledger.bytes + bytes - memoryLimit : 0,
    };
  }

  /**
   * How far over the limits the cache is now, not counting models already on their way out (they hold their
   * reservations until disposed — a model host takes a moment to end — but are as good as gone, or every lease released
   * meanwhile would evict one more model); null when within them.
   */
  excess(): Shortfall | null {
    if (!this.overLimits()) return null;
    const over = this.shortfall(0, 0);
    const leaving = this.o.view.admitted().filter((e) => e.state.kind === "unloading");
    const count = over.count - leaving.length;
    const bytes = over.bytes - leaving.reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
    if (count <= 0 && bytes <= 0) return null;
    return { count: Math.max(0, count), bytes: Math.max(0, bytes) };
  }

  private evictionCandidates(except: EntryFacts | null): EvictionCandidate[] {
    const { view, book, time } = this.o;
    const now = time.now();
    const candidates = view
      .admitted()
      .filter(
        (e) =>
          e !== except &&
          e.state.kind === "ready" &&
          e.leases === 0 &&
          e.waiters === 0 &&
          !view.isPinned(e.descriptor.key),
      )
      .map((e) => {
        const usage = book.get(e.descriptor.key);
        const candidate: EvictionCandidate = {
          key: e.descriptor.key,
          lastUsedAt: usage?.lastUsedAt ?? null,
          memoryBytes: e.reservation?.bytes ?? 0,
          loadMs:
            usage && usage.loads > 0
              ? usage.loadMsTotal / usage.loads
              : e.state.kind === "ready"
                ? e.state.loadMs
                : null,
          ...(usage ? { loads: usage.loads } : {}),
          frequency: this.frequency(e.descriptor.name, usage?.frequency ?? null, now),
          inflation: usage?.inflation ?? 0,
        };
        return this.fleet?.isSpare(e.descriptor.name) ? asSpareCopy(candidate) : candidate;
      });
    return this.fleet ? fleetLoadTimes(candidates, this.fleet.loadRate()) : settledLoadTimes(candidates);
  }

  /** A model's frequency as eviction weighs it: its decayed count here, in a fleet with the other nodes' usage. */
  private frequency(name: string, count: DecayedCount | null, now: number): number {
    const halfLife = this.o.config.usage_half_life_hours;
    const local = decayedValue(count, now, halfLife);
    if (!this.fleet) return local;
    const { perHour, copies } = this.fleet.usageElsewhere(name);
    return fleetFrequency(local, countOfRate(perHour, halfLife), copies);
  }

  /**
   * The idle models to evict to cover a shortfall, chosen by the eviction policy (the inflation moves on); null when
   * the idle models cannot cover it (nothing should go then).
   */
  victims(shortfall: Shortfall, except: EntryFacts | null): Victim[] | null {
    const { config, memoryLimit } = this.o;
    const limits = { maxModels: config.max_cached_models, maxMemoryBytes: memoryLimit };
    const { victims, covers } = chooseVictims(
      this.evictionCandidates(except),
      shortfall,
      config.eviction_policy,
      limits,
    );
    if (!covers || victims.length === 0) return null;
    this.inflation = nextInflation(this.inflation, victims);
    return victims.map((v) => ({ key: v.key, reason: v.reason }));
  }

  /** Room may have become free (a lease ended, a model left, the cache is closing): waiting loads look again. */
  notify(): void {
    if (this.capacityWaiters.size === 0) return;
    for (const waiter of [...this.capacityWaiters]) waiter();
  }

  /** Resolves when room may have become free (`notify`), at `deadline` (monotonic), or when `signal` aborts. */
  roomMayBeFree(deadline: number, signal: AbortSignal): Promise<void> {
    const { clock, time } = this.o;
    return new Promise((resolve) => {
      const done = () => {
        this.capacityWaiters.delete(done);
        clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, Math.max(0, deadline - time.monotonic()));
      timer.unref?.();
      signal.addEventListener("abort", done, { once: true });
      this.capacityWaiters.add(done);
    });
  }
}

/**
 * What a refusal says of `backend.parallel`: each sequence holds a KV cache of `context_size` tokens, so a model that
 * does not fit with several may fit with fewer; auto already tried down to 1.
 */
function sequencesNote(sequences: Sequences): string {
  const { count, auto, most } = sequences;
  const held = `${count} sequence${count === 1 ? "" : "s"}`;
  if (auto && count < most)
    return `, with ${held} (backend.parallel = 0, auto, came down from ${most} to fit the limit): a smaller context_size needs less`;
  if (count <= 1) return "";
  const setting = auto ? "backend.parallel = 0, auto" : `backend.parallel = ${count}`;
  return `, with ${held} (${setting}), each holding its own KV cache of context_size tokens: a lower backend.parallel needs less`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Memory reservations

export interface Reservation {
  readonly bytes: Bytes;
  readonly released: boolean;
  /** Replaces the reserved figure (the measured memory after a load). */
  resize(bytes: Bytes): void;
  /** Gives the memory back; later calls do nothing. */
  release(): void;
}

export class MemoryLedger {
  private totalBytes = 0;
  private held = 0;

  /** Bytes reserved by every live reservation. */
  get bytes(): Bytes {
    return this.totalBytes;
  }

  /** Live reservations (models counted against `max_cached_models`). */
  get count(): number {
    return this.held;
  }

  reserve(bytes: Bytes): Reservation {
    this.totalBytes += bytes;
    this.held++;
    let current = bytes;
    let released = false;
    const adjust = (delta: Bytes, count: number) => {
      this.totalBytes += delta;
      this.held += count;
    };
    return {
      get bytes() {
        return released ? 0 : current;
      },
      get released() {
        return released;
      },
      resize(next: Bytes) {
        if (released) return;
        adjust(next - current, 0);
        current = next;
      },
      release() {
        if (released) return;
        released = true;
        adjust(-current, -1);
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Pins

/** A configured name that did not resolve to a model (reported, not fatal). */
export interface UnresolvedName {
  name: string;
  error: string;
}

export class Pins {
  private constructor(
    /** Pinned keys → position in `always_warm` (Infinity for `pinned = true` overrides, which come after). */
    private readonly order: ReadonlyMap<string, number>,
    /** Key → configured `ttl_seconds` override. */
    private readonly ttls: ReadonlyMap<string, number>,
    /** Pinned keys → the name the model resolved to. */
    readonly names: ReadonlyMap<string, string>,
    readonly unresolved: readonly UnresolvedName[],
  ) {}

  /** No pins at all. */
  static none(): Pins {
    return new Pins(new Map(), new Map(), new Map(), []);
  }

  /**
   * Resolves the configured names with `resolve` (the model source's own). Names that do not resolve are listed in
   * `unresolved`; a saved model they name (`saved`, e.g. from the state file when its file is missing) is still
   * matched by name — by the model manager's own rule (`matchSaved`), so an ambiguous name pins nothing — and a pinned
   * model's statistics stay protected while its file is away.
   */
  static async resolve(
    config: Pick<CacheConfig, "always_warm" | "models">,
    resolve: (name: string) => Promise<ModelDescriptor>,
    saved: ReadonlyArray<{ key: string; name: string }> = [],
  ): Promise<Pins> {
    const order = new Map<string, number>();
    const ttls = new Map<string, number>();
    const names = new Map<string, string>();
    const unresolved: UnresolvedName[] = [];
    const named = [
      ...config.always_warm.map((name, index) => ({ name, index, pinned: true, ttl: undefined as number | undefined })),
      ...Object.entries(config.models).map(([name, o]) => ({
        name,
        index: Infinity,
        pinned: o.pinned === true,
        ttl: o.ttl_seconds,
      })),
    ];
    for (const { name, index, pinned, ttl } of named) {
      let key: string;
      let resolvedName: string;
      try {
        ({ key, name: resolvedName } = await resolve(name));
      } catch (error) {
        const matches = matchSaved(name, saved);
        const match = matches.length === 1 ? matches[0] : undefined;
        if (!match) {
          unresolved.push({ name, error: messageOf(error) });
          continue;
        }
        ({ key, name: resolvedName } = match);
      }
      if (pinned && !order.has(key)) {
        order.set(key, index);
        names.set(key, resolvedName);
      }
      if (ttl !== undefined) ttls.set(key, ttl);
    }
    return new Pins(order, ttls, names, unresolved);
  }

  has(key: string): boolean {
    return this.order.has(key);
  }

  /** Pinned keys → position in `always_warm` (Infinity for a `pinned = true` override): the warm-up plan's input. */
  get alwaysWarm(): ReadonlyMap<string, number> {
    return this.order;
  }

  /** Position in `always_warm`, Infinity for a `pinned = true` override, null when not pinned. */
  alwaysWarmIndex(key: string): number | null {
    return this.order.get(key) ?? null;
  }

  /** The configured `ttl_seconds` of this model, or undefined. */
  ttlSeconds(key: string): number | undefined {
    return this.ttls.get(key);
  }

  keys(): IterableIterator<string> {
    return this.order.keys();
  }

  get size(): number {
    return this.order.size;
  }
}
