/** Streamed text of one call in a model host, gathered into as few messages as keep the stream live. */
import type { FromHost } from "./protocol.js";

/**
 * The shortest time between two text messages of one call, in milliseconds. Every message wakes Inferno's process
 * (a context switch each way, costly in a VM), and a tiny model samples a token every ~0.7 ms: sent one by one, the
 * wake-ups cost more CPU than the tokens (measured on the generated nano model in this VM: ~0.3 ms of CPU per token
 * across both processes, against ~0.6 ms for the token itself). A model that takes longer than this per token streams
 * every token the moment it comes; a faster one streams in batches at most this far apart — well below what a reader or
 * an HTTP client can tell. The first piece of a call is never held back, nor the last (it goes out with the answer).
 */
export const TEXT_INTERVAL_MS = 4;

/**
 * A call's text stream: a piece that arrives when no message went out for `intervalMs` is sent when the event loop
 * turns (with whatever else arrives in that tick); later pieces wait until the interval since the last message has
 * passed, and go as one message. `take()` hands over what is held back, for the call's answer to carry.
 */
export class TextStream {
  private pending = "";
  private sentAt = -Infinity;
  private cancel: (() => void) | null = null;

  constructor(
    private readonly id: number,
    private readonly send: (message: FromHost) => void,
    private readonly intervalMs: number = TEXT_INTERVAL_MS,
    /** Monotonic milliseconds (tests give a mock clock). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  readonly onText = (text: string): void => {
    this.pending += text;
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
    const [message] = this.take();
    if (message) this.send(message);
  };

  /** The text held back, as a message (none when there is none); a scheduled send is dropped. */
  take(): FromHost[] {
    this.cancel?.();
    this.cancel = null;
    if (this.pending.length === 0) return [];
    const message: FromHost = { type: "text", id: this.id, text: this.pending };
    this.pending = "";
    this.sentAt = this.now();
    return [message];
  }
}
