/**
 * What a model host sends while a request runs — streamed text, load progress — gathered into as few messages as keep
 * it live.
 */

/**
 * The shortest time between two messages of one request's streamed text, in milliseconds. Every message wakes
 * Inferno's process (~0.05–0.2 ms of its CPU: wake-up, read, decode) and costs the host a write, while a tiny model
 * samples a token every ~0.3–0.5 ms; llama.cpp hands over one token per turn of the host's event loop, so merging only
 * what arrives within one turn merges nothing. At this interval a 200-token answer of the generated nano model goes as
 * ~60 messages (~5 ms of Inferno's CPU; one per token: 200 and ~10 ms), and a model that takes longer than this per
 * token — the bench's medium model at ~2 ms, any real one — streams every token the moment it comes, so the client
 * sees the model's own pace (at the former 16 ms it saw 16-ms ticks: 15.2 against 1.65 ms between tokens at p50). The
 * first piece of a request is never held back, nor the last (it goes out with the answer).
 */
export const STREAM_INTERVAL_MS = 1;

/**
 * The shortest time between two messages of one load's progress, in milliseconds: one frame of a 60 Hz display. A load
 * reports progress in bursts (57 times for the medium model), and no one reads a fraction faster than a screen shows it.
 */
export const PROGRESS_INTERVAL_MS = 16;

/**
 * A request's stream of one kind of update: an update that arrives when nothing went out for `intervalMs` is sent when
 * the event loop turns (merged with whatever else arrives in that turn); later ones wait until the interval since the
 * last message has passed (Node's timers count whole milliseconds), and go merged as one. `take()` hands over what is
 * held back, for the answer to carry.
 */
export class Coalesced<T> {
  private held: T | undefined;
  private sentAt = -Infinity;
  private cancel: (() => void) | null = null;

  /**
   * @param merge Combines what is held with a new update (text: appended; progress: the newer fraction).
   * @param send Sends one merged update.
   * @param intervalMs The shortest time between two messages.
   * @param now Monotonic milliseconds (tests give a mock clock).
   */
  constructor(
    private readonly merge: (held: T, next: T) => T,
    private readonly send: (value: T) => void,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  readonly push = (value: T): void => {
    this.held = this.held === undefined ? value : this.merge(this.held, value);
    if (this.cancel) return;
    const wait = this.sentAt + this.intervalMs - this.now();
    if (wait > 0) {
      const timer = setTimeout(this.flush, wait);
      this.cancel = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(this.flush);
      this.cancel = () => clearImmediate(immediate);
    }
  };

  private readonly flush = (): void => {
    const value = this.take();
    if (value !== undefined) this.send(value);
  };

  /** What is held back (undefined when nothing is); a scheduled send is dropped. */
  take(): T | undefined {
    this.cancel?.();
    this.cancel = null;
    const value = this.held;
    this.held = undefined;
    if (value !== undefined) this.sentAt = this.now();
    return value;
  }
}
