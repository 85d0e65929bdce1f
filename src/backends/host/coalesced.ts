/**
 * What a model host sends while a request runs — streamed text, load progress — gathered into as few messages as keep
 * it live.
 */

/**
 * The shortest time between two messages of one request's stream, in milliseconds: one frame of a 60 Hz display, below
 * what a reader or an HTTP client can tell. Every message wakes Inferno's process: in this VM the host's write that
 * does so took ~0.1 ms of the host's main thread and Inferno spent ~0.2 ms of CPU per message (wake-up, read, decode),
 * while a tiny model samples a token every ~0.5 ms. At 4 ms apart, a 256-token answer of the generated nano model went
 * as 30–64 messages costing Inferno 5–16 ms of CPU beside 60–170 ms for the generation — on a shared 2-core machine,
 * CPU the host then lacks; at this interval it goes as 7–15 messages and 3–6 ms. A model that takes longer than this
 * per token (any real one on a CPU) streams every token the moment it comes; a faster one streams in batches at most
 * this far apart. The first piece of a request is never held back, nor the last (it goes out with the answer).
 */
export const STREAM_INTERVAL_MS = 16;

/**
 * A request's stream of one kind of update: an update that arrives when nothing went out for `intervalMs` is sent when
 * the event loop turns (merged with whatever else arrives in that tick); later ones wait until the interval since the
 * last message has passed, and go merged as one. `take()` hands over what is held back, for the answer to carry.
 */
export class Coalesced<T> {
  private held: T | undefined;
  private sentAt = -Infinity;
  private cancel: (() => void) | null = null;

  /**
   * @param merge Combines what is held with a new update (text: appended; progress: the newer fraction).
   * @param send Sends one merged update.
   * @param now Monotonic milliseconds (tests give a mock clock).
   */
  constructor(
    private readonly merge: (held: T, next: T) => T,
    private readonly send: (value: T) => void,
    private readonly intervalMs: number = STREAM_INTERVAL_MS,
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
