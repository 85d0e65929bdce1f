/**
 * Memory reservations: the estimate is reserved before a load (so two loads cannot overcommit), replaced by the measured
 * figure after, and released exactly once when the model is gone. The ledger keeps the totals, so "how much is held"
 * and "how many models count against the limits" are O(1).
 */
import type { Bytes } from "../models/types.js";

export interface Reservation {
  readonly bytes: Bytes;
  readonly released: boolean;
  /** Replaces the reserved figure (the measured memory after a load). */
  resize(bytes: Bytes): void;
  /** Gives the memory back; later calls do nothing. */
  release(): void;
}

export class MemoryLedger {
  private totalBytes = 0;
  private held = 0;

  /** Bytes reserved by every live reservation. */
  get bytes(): Bytes {
    return this.totalBytes;
  }

  /** Live reservations (models counted against `max_cached_models`). */
  get count(): number {
    return this.held;
  }

  reserve(bytes: Bytes): Reservation {
    this.totalBytes += bytes;
    this.held++;
    let current = bytes;
    let released = false;
    const adjust = (delta: Bytes, count: number) => {
      this.totalBytes += delta;
      this.held += count;
    };
    return {
      get bytes() {
        return released ? 0 : current;
      },
      get released() {
        return released;
      },
      resize(next: Bytes) {
        if (released) return;
        adjust(next - current, 0);
        current = next;
      },
      release() {
        if (released) return;
        released = true;
        adjust(-current, -1);
      },
    };
  }
}
