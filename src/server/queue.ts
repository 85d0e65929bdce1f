/**
 * Admission control for requests that use a model. `slots` requests run at once (by default every resident model's
 * parallel sequences); up to `maxWaiting` more wait in arrival order; beyond that a request is refused at once with
 * QueueFull (503) and a `Retry-After` estimated from how long slots have recently been held.
 */
import { performance } from "node:perf_hooks";
import { Aborted, QueueFull } from "../errors/index.js";

/** A granted place; release it exactly when the request stops using its model (idempotent). */
export interface Slot {
  release(): void;
}

interface Waiter {
  grant: (slot: Slot) => void;
}

export interface AdmissionQueueOptions {
  /** Requests allowed to use models at the same time. */
  slots: number;
  /** Requests allowed to wait for a slot; 0 = none wait (busy → 503 at once). */
  maxWaiting: number;
}

/** Weight of the newest hold time in the moving average used for Retry-After. */
const HOLD_AVERAGE_WEIGHT = 0.2;
const MAX_RETRY_AFTER_SECONDS = 60;

export class AdmissionQueue {
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private averageHoldMs = 1000;

  constructor(private readonly options: AdmissionQueueOptions) {
    if (options.slots < 1) throw new RangeError(`slots must be at least 1, found ${options.slots}`);
  }

  /** Requests currently waiting for a slot. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.running;
  }

  /** Waits for a slot (bounded by `maxWaiting`); rejects with Aborted when `signal` aborts while waiting. */
  enter(signal?: AbortSignal): Promise<Slot> {
    if (signal?.aborted) return Promise.reject(new Aborted("request aborted before it started"));
    if (this.running < this.options.slots) return Promise.resolve(this.grant());
    if (this.waiting.length >= this.options.maxWaiting) {
      const retryAfterSeconds = this.retryAfterSeconds();
      return Promise.reject(
        new QueueFull(
          `server busy: ${this.running} requests running and ${this.waiting.length} waiting (max_queue = ${this.options.maxWaiting}); retry in ${retryAfterSeconds} s`,
          { details: { retry_after_seconds: retryAfterSeconds, waiting: this.waiting.length } },
        ),
      );
    }
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = {
        grant: (slot) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(slot);
        },
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(waiter);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(new Aborted("request aborted while waiting in the queue"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private grant(): Slot {
    this.running += 1;
    const started = performance.now();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.recordHold(performance.now() - started);
        this.running -= 1;
        this.next();
      },
    };
  }

  private next(): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter.grant(this.grant());
  }

  private recordHold(ms: number): void {
    this.averageHoldMs += HOLD_AVERAGE_WEIGHT * (ms - this.averageHoldMs);
  }

  /** How long until a newcomer would likely get a slot: the queue ahead of it, served `slots` at a time. */
  private retryAfterSeconds(): number {
    const rounds = (this.waiting.length + 1) / this.options.slots;
    return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.ceil((rounds * this.averageHoldMs) / 1000)));
  }
}
