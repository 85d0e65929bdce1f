/**
 * The cache's two limits — `max_cached_models` and `max_memory_mb` — and everything that keeps them: admitting a load
 * (reserving its estimate, evicting idle models for room, or waiting, bounded, for leases to end), refusing a model
 * that could never fit, and bringing the limits back after a lease ends or a model is measured larger. It is given what
 * it needs as functions (the entries, the pin test, the usage, a way to retire a model), never the cache.
 */
import type { CacheConfig } from "../config/schema.js";
import { Aborted, CacheBusy, ModelTooLarge } from "../errors/index.js";
import type { Bytes } from "../models/types.js";
import { type Entry, inService } from "./entry.js";
import type { MemoryLedger } from "./memory.js";
import { chooseVictims, type EvictionCandidate, nextInflation } from "./policy/eviction.js";
import { decayedValue } from "./policy/frequency.js";
import type { Clock, EvictionReason } from "./types.js";
import type { Usage } from "./usage.js";
import { MIB } from "../units.js";

export interface LimitsOptions {
  config: Pick<CacheConfig, "max_cached_models" | "eviction_policy" | "usage_half_life_hours">;
  /** `max_memory_mb` in bytes (0: no memory limit). */
  memoryLimit: Bytes;
  ledger: MemoryLedger;
  /** Timers for the bounded wait for room. */
  clock: Clock;
  /** Monotonic and wall-clock time now (ms). */
  monotonic(): number;
  now(): number;
  /** How long (ms) a load waits for room when every resident model is leased. */
  busyWaitMs: number;
  entries(): Iterable<Entry>;
  isPinned(key: string): boolean;
  usage(key: string): Usage | undefined;
  /** Takes a model out of service (evicts it); resolves once it is gone. */
  retire(key: string, reason: EvictionReason): Promise<void>;
  /** Throws when the cache is closed. */
  assertOpen(): void;
  debug(message: string, fields: Record<string, unknown>): void;
}

export class Limits {
  /** GDSF's inflation: the value of the last victim, added to every later use (eviction.ts). */
  inflation = 0;
  private readonly capacityWaiters = new Set<() => void>();

  constructor(private readonly o: LimitsOptions) {}

  /** Whether the resident models are over either limit now (the cheap test run after every lease release). */
  overLimits(): boolean {
    const { ledger, memoryLimit, config } = this.o;
    return ledger.count > config.max_cached_models || (memoryLimit > 0 && ledger.bytes > memoryLimit);
  }

  /** Entries holding a reservation (counted against the limits). */
  private admitted(): Entry[] {
    return [...this.o.entries()].filter((e) => e.reservation !== null && !e.reservation.released);
  }

  /** Refuses a model that could not fit even with every evictable model gone (pinned models never go). */
  assertCanEverFit(entry: Entry, bytes: Bytes): void {
    const { memoryLimit, config, isPinned } = this.o;
    const pinnedOthers = this.admitted().filter(
      (e) => e !== entry && isPinned(e.descriptor.key) && e.retireReason === null,
    );
    const pinnedBytes = pinnedOthers.reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
    const { name } = entry.descriptor;
    if (memoryLimit > 0 && bytes > memoryLimit - pinnedBytes) {
      throw new ModelTooLarge(
        `${name} needs ${Math.ceil(bytes / MIB)} MiB but the cache's memory limit is ${Math.floor(memoryLimit / MIB)} MiB` +
          (pinnedBytes > 0 ? ` (${Math.ceil(pinnedBytes / MIB)} MiB of it held by pinned models)` : ""),
        { details: { model: name, needed_bytes: bytes, limit_bytes: memoryLimit, pinned_bytes: pinnedBytes } },
      );
    }
    if (!isPinned(entry.descriptor.key) && pinnedOthers.length >= config.max_cached_models) {
      throw new ModelTooLarge(
        `${name} cannot be loaded: all ${config.max_cached_models} places (max_cached_models) are taken by pinned models`,
        { details: { model: name, max_cached_models: config.max_cached_models } },
      );
    }
  }

  /** How far over the limits the cache would be with `extra` more models of `bytes` in total (0, 0: as it is now). */
  private shortfall(extra: number, bytes: Bytes): { count: number; bytes: Bytes } {
    const { ledger, memoryLimit, config } = this.o;
    return {
      count: ledger.count + extra - config.max_cached_models,
      bytes: memoryLimit > 0 ? ledger.bytes + bytes - memoryLimit : 0,
    };
  }

  private evictionCandidates(except: Entry | null): EvictionCandidate[] {
    const now = this.o.now();
    return this.admitted()
      .filter(
        (e) => e !== except && inService(e) && e.leases === 0 && e.waiters === 0 && !this.o.isPinned(e.descriptor.key),
      )
      .map((e) => {
        const usage = this.o.usage(e.descriptor.key);
        return {
          key: e.descriptor.key,
          lastUsedAt: usage?.lastUsedAt ?? null,
          memoryBytes: e.reservation?.bytes ?? 0,
          loadMs: usage && usage.loads > 0 ? usage.loadMsTotal / usage.loads : e.state === "ready" ? e.loadMs : null,
          frequency: decayedValue(usage?.frequency ?? null, now, this.o.config.usage_half_life_hours),
          inflation: usage?.inflation ?? 0,
        };
      });
  }

  /** Evicts victims that cover a shortfall; false (evicting nothing) when the idle models cannot cover it. */
  private async evictFor(shortfall: { count: number; bytes: Bytes }, except: Entry | null): Promise<boolean> {
    const { config, memoryLimit } = this.o;
    const limits = { maxModels: config.max_cached_models, maxMemoryBytes: memoryLimit };
    const { victims, covers } = chooseVictims(
      this.evictionCandidates(except),
      shortfall,
      config.eviction_policy,
      limits,
    );
    if (!covers || victims.length === 0) return false;
    this.inflation = nextInflation(this.inflation, victims);
    await Promise.all(victims.map((v) => this.o.retire(v.key, v.reason)));
    return true;
  }

  /**
   * Reserves room for a load: evicts idle models until both limits hold with the estimate counted, or waits (bounded)
   * for leases to end when that is not possible. Warm-up (`allowEvict = false`) never evicts and never waits.
   */
  async admit(entry: Entry, estimate: Bytes, allowEvict: boolean): Promise<void> {
    const { busyWaitMs } = this.o;
    const deadline = this.o.monotonic() + busyWaitMs;
    const { name } = entry.descriptor;
    for (;;) {
      if (entry.abort.signal.aborted) throw new Aborted(`loading ${name} was cancelled`);
      this.o.assertOpen();
      this.assertCanEverFit(entry, estimate);
      const shortfall = this.shortfall(1, estimate);
      if (shortfall.count <= 0 && shortfall.bytes <= 0) {
        entry.reservation = this.o.ledger.reserve(estimate);
        return;
      }
      if (!allowEvict)
        throw new CacheBusy(`no room for ${name} without evicting another model`, { details: { model: name } });
      if (await this.evictFor(shortfall, entry)) continue;
      if (this.o.monotonic() >= deadline) {
        throw new CacheBusy(
          `no room for ${name}: the resident models are in use and none became free within ${busyWaitMs / 1000} s`,
          {
            details: { model: name, retry_after_seconds: Math.ceil(busyWaitMs / 1000) },
          },
        );
      }
      await this.capacityChanged(deadline, entry.abort.signal);
    }
  }

  /**
   * Brings both limits back as far as idle models allow. Called after every load, lease release and keep-alive change,
   * so a model measured larger than its estimate while others were leased is made up for as soon as a lease ends.
   */
  enforce(): void {
    if (!this.overLimits()) return;
    const over = this.shortfall(0, 0);
    // Models already on their way out hold their reservations until disposed (a model host takes a moment to end):
    // they are as good as gone, or every lease released meanwhile would evict one more model.
    const leaving = this.admitted().filter((e) => e.retireReason !== null);
    const count = over.count - leaving.length;
    const bytes = over.bytes - leaving.reduce((sum, e) => sum + (e.reservation?.bytes ?? 0), 0);
    if (count <= 0 && bytes <= 0) return;
    void this.evictFor({ count: Math.max(0, count), bytes: Math.max(0, bytes) }, null).then((done) => {
      if (!done)
        this.o.debug("over the cache limits until leased models are released", {
          over_models: count,
          over_bytes: bytes,
        });
    });
  }

  /** Room may have become free (a lease ended, a model left, the cache is closing): waiting loads look again. */
  notify(): void {
    if (this.capacityWaiters.size === 0) return;
    for (const waiter of [...this.capacityWaiters]) waiter();
  }

  private capacityChanged(deadline: number, signal: AbortSignal): Promise<void> {
    const { clock } = this.o;
    return new Promise((resolve) => {
      const done = () => {
        this.capacityWaiters.delete(done);
        clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, Math.max(0, deadline - this.o.monotonic()));
      timer.unref?.();
      signal.addEventListener("abort", done, { once: true });
      this.capacityWaiters.add(done);
    });
  }
}
