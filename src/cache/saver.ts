/**
 * Saving and restoring the usage book: periodic saves (only when something changed), saves on demand and the final one
 * at close, one at a time, each bounded in time; `last_save`; and the restore that seeds the book at start. It is given
 * what it needs — the store, the book, the clock, the entries as a `SaveSource`, the event source — never the cache.
 */
import { InfernoError, messageOf, StateTimeout } from "../errors/index.js";
import { withTimeout } from "./clock.js";
import type { CacheState, StateStore } from "./persistence/types.js";
import type { CacheEventSource } from "./events.js";
import type { CacheLogger, Clock, LastSave, TimerHandle } from "./types.js";
import type { UsageBook } from "./usage.js";

/** A save (or restore) that takes longer than this is reported as failed; the cache does not wait for it. */
export const DEFAULT_STORE_TIMEOUT_MS = 15_000;

export interface SaverOptions {
  store: StateStore | null;
  book: UsageBook;
  clock: Clock;
  /** Periodic save interval (ms); 0 = only on demand and at close. */
  intervalMs: number;
  /** Bound on each store call (ms). */
  timeoutMs?: number;
  /** Lets the event loop turn while a large delta is taken. Default: `setImmediate`. */
  turn?: () => Promise<void>;
  /** Pins (a pinned model's record says so) and the hits not yet timed, timed right before a delta is taken. */
  entries: SaveSource;
  events: Pick<CacheEventSource, "emit">;
  logger: CacheLogger | undefined;
}

/** What a save reads of the entries: the entry table's pin test, and the timing of hits counted but not yet timed. */
export interface SaveSource {
  isPinned(key: string): boolean;
  /** Brings the book up to date (the hit path counts a use at once and times it when the use ends). */
  stampAll(): void;
}

/** What makes two failures "the same cause": the system's code (EROFS, ENOSPC…), else the typed code, else the message. */
function causeOf(error: unknown): string {
  if (error instanceof InfernoError) {
    const code = error.details?.cause_code;
    return typeof code === "string" ? code : error.code;
  }
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === "string" ? code : messageOf(error);
}

const NEVER_SAVED: LastSave = { at: null, ok: null, duration_ms: null, bytes: null, error: null };

export class Saver {
  private last: LastSave = { ...NEVER_SAVED };
  /** Causes of failed saves warned about since the last successful one (`causeOf`). */
  private readonly warnedCauses = new Set<string>();
  private saving: Promise<LastSave> | null = null;
  private timer: TimerHandle | null = null;
  private stopped = false;
  private readonly timeoutMs: number;

  constructor(private readonly options: SaverOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  }

  get lastSave(): LastSave {
    return { ...this.last };
  }

  get path(): string | null {
    return this.options.store?.path ?? null;
  }

  /** Reads the saved state into the book. Returns what was read, and the store's warning (a refused file). */
  async restore(): Promise<{ state: CacheState | null; warning: string | null }> {
    const { store } = this.options;
    if (!store) return { state: null, warning: null };
    // A read that fails or never finishes (a stuck file system) never stops a start: the cache starts empty, and saves
    // still merge into whatever the file holds, so nothing in it is lost.
    const { state, warning } = await this.bounded(store.load(), "reading the cache state").catch((error: unknown) => ({
      state: null,
      warning: `${messageOf(error)}; the cache starts empty (later saves merge into the file, losing nothing)`,
    }));
    if (warning) this.options.logger?.warn(warning, { state_file: store.path });
    if (state) this.options.book.restore(state);
    return { state, warning };
  }

  /**
   * Asks the store whether saves can work (an unwritable `cache_dir`, say): when not, warns once and sets
   * `last_save.error`, and the cache keeps working in memory.
   */
  async probe(): Promise<void> {
    const { store } = this.options;
    if (!store?.probe) return;
    const problem = await this.bounded(store.probe(), "checking the cache directory").catch((error: unknown) => error);
    if (problem === null) return;
    this.last = { at: null, ok: false, duration_ms: null, bytes: null, error: messageOf(problem) };
    this.warnOnce(problem, "the cache state cannot be saved; the cache keeps working in memory", store.path);
  }

  /**
   * Warns about a failure unless one with the same cause was warned about since the last successful save: a full disk
   * is reported once, not at every periodic save; a different cause (now read-only, say) is reported too.
   */
  private warnOnce(error: unknown, message: string, path: string): void {
    const cause = causeOf(error);
    if (this.warnedCauses.has(cause)) return;
    this.warnedCauses.add(cause);
    this.options.logger?.warn(message, { state_file: path, error: messageOf(error) });
  }

  /** Starts periodic saves. */
  schedule(): void {
    const { store, intervalMs, clock } = this.options;
    if (!store || intervalMs <= 0 || this.stopped) return;
    this.timer = clock.setTimeout(() => {
      this.timer = null;
      const due = this.options.book.unsaved ? this.save() : Promise.resolve(this.lastSave);
      void due.finally(() => this.schedule());
    }, intervalMs);
    this.timer.unref?.();
  }

  /** Stops periodic saves (close). */
  stop(): void {
    this.stopped = true;
    if (this.timer) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  /** Saves now, one save at a time. Never throws: failures are reported in `last_save`. */
  save(): Promise<LastSave> {
    const { store } = this.options;
    if (!store) {
      return Promise.resolve({
        at: null,
        ok: false,
        duration_ms: null,
        bytes: null,
        error: "persist_cache is false: nothing is saved",
      });
    }
    const previous = this.saving ?? Promise.resolve(this.last);
    const run = previous.then(() => this.saveNow(store));
    this.saving = run;
    return run.finally(() => {
      if (this.saving === run) this.saving = null;
    });
  }

  private async saveNow(store: StateStore): Promise<LastSave> {
    const { clock, book } = this.options;
    const started = clock.monotonic();
    const now = clock.now();
    const at = new Date(now).toISOString();
    const turn = this.options.turn ?? (() => new Promise<void>((resolve) => setImmediate(resolve)));
    const { entries } = this.options;
    entries.stampAll();
    const pending = await book.takeDelta(now, (key) => entries.isPinned(key), turn);
    try {
      const { bytes } = await this.bounded(store.save(pending.delta), "saving the cache state");
      pending.commit();
      this.last = { at, ok: true, duration_ms: clock.monotonic() - started, bytes, error: null };
      this.warnedCauses.clear();
    } catch (error) {
      this.last = { at, ok: false, duration_ms: clock.monotonic() - started, bytes: null, error: messageOf(error) };
      this.warnOnce(error, "could not save the cache state; the cache keeps working in memory", store.path);
    }
    this.options.events.emit("save", this.lastSave);
    return this.lastSave;
  }

  /** The store call, or `StateTimeout` once `timeoutMs` passed (real time: a hung filesystem must not hang shutdown). */
  private bounded<T>(promise: Promise<T>, what: string): Promise<T> {
    return withTimeout(
      promise,
      this.timeoutMs,
      () =>
        new StateTimeout(`${what} did not finish within ${this.timeoutMs / 1000} s`, { details: { operation: what } }),
    );
  }
}
