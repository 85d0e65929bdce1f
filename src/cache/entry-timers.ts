/**
 * The two timers an entry may have, neither armed per hit:
 *
 * - expiry: the idle TTL. It is armed only when none would fire in time; when it fires it checks (lazily) whether the
 *   model really idled its full time, and otherwise waits for the rest of it;
 * - the file check: the model's file is due to be compared with the version loaded every
 *   `FINGERPRINT_CHECK_INTERVAL_MS`; a timer armed once per check marks it due, so a hit reads no clock for it.
 *
 * Given the clock and what to do when a model expired, never the cache.
 */
import type { ClockReader } from "./clock.js";
import { type Entry, inService, type ReadyEntry } from "./entry.js";
import type { Clock } from "./types.js";

/** A model's file is compared with the version loaded at most this often (ms), so hits cost no `stat` each. */
export const FINGERPRINT_CHECK_INTERVAL_MS = 5000;

export class EntryTimers {
  constructor(
    private readonly clock: Clock,
    private readonly time: ClockReader,
    /** The expiry timer found the model idle for its full time (`idleMs`). */
    private readonly expired: (entry: ReadyEntry, idleSeconds: number) => void,
    /** The entry's file check became due. */
    private readonly checkBecameDue: (entry: Entry) => void = () => {},
  ) {}

  /** The entry is idle since `entry.idleSince`: makes sure it expires `idleMs` after (or never, when null). */
  idle(entry: ReadyEntry): void {
    if (entry.idleMs === null) this.cancelExpiry(entry);
    else this.armExpiry(entry, entry.idleSince + entry.idleMs);
  }

  private armExpiry(entry: ReadyEntry, dueAt: number): void {
    if (entry.expiry && entry.expiry.dueAt <= dueAt) return;
    this.cancelExpiry(entry);
    const handle = this.clock.setTimeout(() => this.expire(entry), Math.max(0, dueAt - this.time.monotonic()));
    handle.unref?.();
    entry.expiry = { handle, dueAt };
  }

  /** The expiry timer fired: the model expires if it idled its full time, else the timer waits for the rest of it. */
  private expire(entry: ReadyEntry): void {
    entry.expiry = null;
    if (!inService(entry) || entry.leases > 0 || entry.idleMs === null) return;
    const now = this.time.monotonic();
    const dueAt = entry.idleSince + entry.idleMs;
    if (now < dueAt) this.armExpiry(entry, dueAt);
    else this.expired(entry, (now - entry.idleSince) / 1000);
  }

  cancelExpiry(entry: Entry): void {
    if (!entry.expiry) return;
    this.clock.clearTimeout(entry.expiry.handle);
    entry.expiry = null;
  }

  /** Wall-clock time (ms) an idle model will be unloaded, or null (leased, pinned, no TTL, not ready). */
  expiresAt(entry: Entry | undefined): number | null {
    if (!inService(entry) || entry.leases > 0 || entry.idleMs === null) return null;
    return this.time.wallAt(entry.idleSince) + entry.idleMs;
  }

  /** The next file check is due in `FINGERPRINT_CHECK_INTERVAL_MS` (one timer per check, none per hit). */
  scheduleFileCheck(entry: Entry): void {
    entry.checkDue = false;
    if (entry.checkTimer) this.clock.clearTimeout(entry.checkTimer);
    entry.checkTimer = this.clock.setTimeout(() => {
      entry.checkTimer = null;
      entry.checkDue = true;
      this.checkBecameDue(entry);
    }, FINGERPRINT_CHECK_INTERVAL_MS);
    entry.checkTimer.unref?.();
  }

  /** Stops both timers (the entry leaves service). */
  cancel(entry: Entry): void {
    this.cancelExpiry(entry);
    if (entry.checkTimer) this.clock.clearTimeout(entry.checkTimer);
    entry.checkTimer = null;
  }
}
