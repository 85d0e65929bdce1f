/**
 * In-flight work and shutdown for one app: every request (and every stream, which outlives its handler) is tracked
 * so a graceful shutdown can wait for it, and one signal aborts whatever is still generating when the wait runs out.
 */
export class AppLifecycle {
  private readonly shutdown = new AbortController();
  private active = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** Requests' own abort controllers (see `watch`). */
  private readonly watched = new Set<AbortController>();

  /** Aborted when in-flight work must stop (shutdown grace period over). */
  get signal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** True once shutdown began: health reports it and new model requests are refused. */
  private readonly drainingController = new AbortController();

  get isDraining(): boolean {
    return this.draining;
  }

  get activeCount(): number {
    return this.active;
  }

  /** Runs `work` as tracked in-flight work. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    this.active += 1;
    try {
      return await work();
    } finally {
      this.active -= 1;
      if (this.active === 0) this.notifyIdle();
    }
  }

  /** Stops admitting model requests; in-flight ones continue. Long-lived streams (the event stream) end now. */
  beginDraining(): void {
    this.draining = true;
    this.drainingController.abort(new Error("server shutting down"));
  }

  /** Aborted when draining begins: streams without an end of their own (the event stream) close on it. */
  get drainingSignal(): AbortSignal {
    return this.drainingController.signal;
  }

  /** Resolves true when no work is in flight, or false after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(done);
    });
  }

  /**
   * Aborts `controller` too when in-flight work is aborted (already, or later by `abortInFlight`), until the returned
   * function is called: a request's own signal that needs no combined signal per request.
   */
  watch(controller: AbortController): () => void {
    if (this.shutdown.signal.aborted) {
      controller.abort(this.shutdown.signal.reason);
      return () => undefined;
    }
    this.watched.add(controller);
    return () => void this.watched.delete(controller);
  }

  /** Aborts every generation still running (they end with what they have and release their leases). */
  abortInFlight(): void {
    const reason = new Error("server shutting down");
    this.shutdown.abort(reason);
    for (const controller of this.watched) controller.abort(reason);
    this.watched.clear();
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const waiter of waiters) waiter();
  }
}
