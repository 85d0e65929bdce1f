/**
 * Which of a draining node's models are loaded elsewhere before it stops serving them, in which order: one pure
 * function (ModelMesh's `preShutdown` re-places an instance's models, most recently used first). A model unused for
 * `idleMs` (an hour) is left to go: re-placing it would spend a load on a model nobody asks for.
 */
import type { EpochMilliseconds } from "../models/types.js";

/** A model unused this long is not re-placed when its node drains. */
export const DRAIN_IDLE_MS = 3600_000;

export interface DrainingModel {
  name: string;
  /** Last use on this node; null: never used here (a warm-up loaded it and no request came). */
  lastUsed: EpochMilliseconds | null;
}

export interface DrainPlan {
  /** Most recently used first. */
  move: string[];
  /** Unused for `idleMs` or never used: they go with the node. */
  leave: string[];
}

export function drainOrder(
  models: readonly DrainingModel[],
  now: EpochMilliseconds,
  idleMs: number = DRAIN_IDLE_MS,
): DrainPlan {
  const recent = (m: DrainingModel) => m.lastUsed !== null && now - m.lastUsed <= idleMs;
  return {
    move: models
      .filter(recent)
      .sort((a, b) => b.lastUsed! - a.lastUsed! || a.name.localeCompare(b.name))
      .map((m) => m.name),
    leave: models
      .filter((m) => !recent(m))
      .map((m) => m.name)
      .sort(),
  };
}
