/**
 * Clocks for the cache. `systemClock` is the real one; `ManualClock` only moves when told to, so scenario tests and the
 * eviction benchmark run hours of simulated time in milliseconds.
 */
import { performance } from "node:perf_hooks";
import type { EpochMilliseconds } from "../models/types.js";
import type { Clock, TimerHandle } from "./types.js";

/** The longest delay Node's `setTimeout` honours: above it the timer fires after 1 ms (with a TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The platform timer functions `setLongTimeout` chains (the real ones by default; tests may pass fakes). */
export interface TimerFunctions {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const platformTimers: TimerFunctions = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A timer of any length: a chain of platform timers of at most `MAX_TIMER_MS` each. */
export class LongTimer implements TimerHandle {
  private current: unknown = null;
  private unrefed = false;
  private cleared = false;

  constructor(
    private readonly fn: () => void,
    /** Delay in ms; Infinity never fires. */
    ms: number,
    private readonly timers: TimerFunctions,
  ) {
    // A non-finite delay (e.g. "forever") never fires; NaN or negative ones fire at once, as Node's would.
    const delay = Number.isNaN(ms) ? 0 : Math.max(0, ms);
    if (delay !== Number.POSITIVE_INFINITY) this.arm(delay);
  }

  private arm(remainingMs: number): void {
    const step = Math.min(remainingMs, MAX_TIMER_MS);
    this.current = this.timers.setTimeout(() => {
      this.current = null;
      if (this.cleared) return;
      if (remainingMs > step) this.arm(remainingMs - step);
      else this.fn();
    }, step);
    if (this.unrefed) (this.current as TimerHandle).unref?.();
  }

  /** Lets the process exit while the timer waits (applies to every link of the chain). */
  unref(): void {
    this.unrefed = true;
    if (this.current !== null) (this.current as TimerHandle).unref?.();
  }

  clear(): void {
    this.cleared = true;
    if (this.current !== null) this.timers.clearTimeout(this.current);
    this.current = null;
  }
}

/**
 * `setTimeout` for any delay: the one place durations become platform timers, so a TTL, a `keep_alive` or a save
 * interval beyond 24.8 days waits its full length instead of firing after 1 ms. Cancel with `clear()`.
 */
export function setLongTimeout(fn: () => void, ms: number, timers: TimerFunctions = platformTimers): LongTimer {
  return new LongTimer(fn, ms, timers);
}

/**
 * `promise`, or a rejection with `timedOut()` once `ms` passed (real time: a stuck file system must not hang a save or
 * shutdown). The one home of "bounded in time" for the state store and the saver. The timer is not unref'd: work in
 * flight keeps the process alive, but never longer than `ms`.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: LongTimer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    // After a stalled event loop, timers run before the I/O that arrived meanwhile: the answer waiting in a socket
    // settles `promise` in this turn's poll phase, before the check phase gives up on it.
    timer = setLongTimeout(() => setImmediate(() => reject(timedOut())), ms);
  });
  return Promise.race([promise, timeout]).finally(() => timer?.clear());
}

/** `base`'s time with its timers chained by `setLongTimeout`: what `systemClock` is over the platform's timers. */
export function longTimerClock(base: Pick<Clock, "now" | "monotonic"> & TimerFunctions): Clock {
  return {
    now: () => base.now(),
    monotonic: () => base.monotonic(),
    setTimeout: (fn, ms) => setLongTimeout(fn, ms, base),
    clearTimeout: (handle) => (handle as LongTimer).clear(),
  };
}

/**
 * The real clock: wall time from `Date.now()`, monotonic time from `performance.now()`, timers of any length.
 * `performance` is perf_hooks' (the global one is a lazy getter, run on every read).
 */
export const systemClock: Clock = longTimerClock({
  now: () => Date.now(),
  monotonic: () => performance.now(),
  ...platformTimers,
});

/**
 * The cache's reading of time: one clock read per call. Wall-clock time is derived from the monotonic reading plus an
 * offset taken from the wall clock again whenever `resyncMs` of monotonic time passed since the last time, so a reading
 * costs one clock read instead of two, times kept as monotonic readings (when a model became idle) convert to wall-clock
 * times (`wallAt`) consistently, and a wall-clock step (NTP, a suspended laptop) shows in recorded times within
 * `resyncMs`.
 */
export class ClockReader {
  private offset = 0;
  private syncedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly clock: Pick<Clock, "now" | "monotonic">,
    /** How stale (ms of monotonic time) the wall-clock offset may get. */
    private readonly resyncMs: number,
  ) {}

  /** Monotonic time (ms), re-reading the wall clock's offset when it is due. */
  monotonic(): number {
    const monotonic = this.clock.monotonic();
    if (monotonic - this.syncedAt >= this.resyncMs) {
      this.offset = this.clock.now() - monotonic;
      this.syncedAt = monotonic;
    }
    return monotonic;
  }

  /** The wall-clock time (whole epoch ms, as `Date.now()`) of a monotonic reading taken from `monotonic()`. */
  wallAt(monotonic: number): EpochMilliseconds {
    return Math.floor(monotonic + this.offset);
  }

  /** Wall-clock time now (epoch ms). */
  now(): EpochMilliseconds {
    return this.wallAt(this.monotonic());
  }
}

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

  /**
   * @param wallStartMs wall-clock time at monotonic 0 (default: 2026-01-01T00:00:00Z, so tests do not depend on today).
   * @param options.overflowLikeNode timers behave like Node's: a delay above `MAX_TIMER_MS` fires after 1 ms (to show
   *   that code chains long timers through `longTimerClock` / `setLongTimeout`).
   */
  constructor(
    private readonly wallStartMs: EpochMilliseconds = Date.UTC(2026, 0, 1),
    private readonly options: { overflowLikeNode?: boolean } = {},
  ) {}

  now(): EpochMilliseconds {
    return this.wallStartMs + this.monotonicMs;
  }

  monotonic(): number {
    return this.monotonicMs;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const delay = this.options.overflowLikeNode && ms > MAX_TIMER_MS ? 1 : Math.max(0, ms);
    const timer: ManualTimer = { id: this.nextId++, due: this.monotonicMs + delay, fn, unref: () => {} };
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
      if (!timer)
        throw new Error(`ManualClock.run: the promise did not settle and no timer is due before +${limitMs} ms`);
      await this.advance(timer.due - this.monotonicMs);
    }
    return tracked;
  }

  private nextDue(limit: number): ManualTimer | undefined {
    let next: ManualTimer | undefined;
    for (const timer of this.timers.values()) {
      if (timer.due <= limit && (!next || timer.due < next.due || (timer.due === next.due && timer.id < next.id)))
        next = timer;
    }
    return next;
  }
}
