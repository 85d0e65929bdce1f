/**
 * Clocks for the cache. `systemClock` is the real one; `ManualClock` only moves when told to, so scenario tests and the
 * eviction benchmark run hours of simulated time in milliseconds.
 */
import type { EpochMilliseconds } from "../models/types.js";
import type { Clock, TimerHandle } from "./types.js";

/** The real clock: wall time from `Date.now()`, monotonic time from `performance.now()`, real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface ManualTimer extends TimerHandle {
  id: number;
  due: number;
  fn: () => void;
}

/** Lets pending promise chains run: every microtask queued so far (and the ones they queue) runs before this resolves. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A clock that advances only through `advance()`. Timers fire in due order, each at its own due time, and the promise
 * chains they start run before the next one fires, so code under test sees the same order as with real time.
 */
export class ManualClock implements Clock {
  private monotonicMs = 0;
  private nextId = 1;
  private readonly timers = new Map<number, ManualTimer>();

  /** @param wallStartMs wall-clock time at monotonic 0 (default: 2026-01-01T00:00:00Z, so tests do not depend on today). */
  constructor(private readonly wallStartMs: EpochMilliseconds = Date.UTC(2026, 0, 1)) {}

  now(): EpochMilliseconds {
    return this.wallStartMs + this.monotonicMs;
  }

  monotonic(): number {
    return this.monotonicMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: ManualTimer = { id: this.nextId++, due: this.monotonicMs + Math.max(0, ms), fn, unref: () => {} };
    this.timers.set(timer.id, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers.delete((handle as ManualTimer).id);
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way (and letting its promise chains run). */
  async advance(ms: number): Promise<void> {
    const target = this.monotonicMs + ms;
    await settle();
    for (let timer = this.nextDue(target); timer; timer = this.nextDue(target)) {
      this.timers.delete(timer.id);
      this.monotonicMs = Math.max(this.monotonicMs, timer.due);
      timer.fn();
      await settle();
    }
    this.monotonicMs = target;
    await settle();
  }

  /**
   * Advances from timer to timer until `promise` settles, then returns its outcome. Fails (rather than spinning) when
   * no timer is left or `limitMs` of simulated time has passed without the promise settling.
   */
  async run<T>(promise: Promise<T>, limitMs = 24 * 3600_000): Promise<T> {
    let done = false;
    const tracked = promise.finally(() => {
      done = true;
    });
    tracked.catch(() => {});
    const limit = this.monotonicMs + limitMs;
    await settle();
    while (!done) {
      const timer = this.nextDue(limit);
      if (!timer) throw new Error(`ManualClock.run: the promise did not settle and no timer is due before +${limitMs} ms`);
      await this.advance(timer.due - this.monotonicMs);
    }
    return tracked;
  }

  private nextDue(limit: number): ManualTimer | undefined {
    let next: ManualTimer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.due <= limit && (!next || timer.due < next.due || (timer.due === next.due && timer.id < next.id))) next = timer;
    }
    return next;
  }
}
