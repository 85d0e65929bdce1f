/**
 * Saved-state pieces the scenarios share, kept apart from the scenarios so the small child processes that use them
 * (save-loop.ts) load nothing else.
 */
import { decodeState } from "../src/cache/persistence/codec.js";
import type { CacheState, PersistedModel, StateDelta } from "../src/cache/persistence/types.js";
import { emptyCounters } from "../src/cache/state-view.js";
import { validDocument } from "../testkit/out-of-range.js";
import { deltaOf, usedOnce } from "../testkit/state-samples.js";

/** A valid state (testkit/out-of-range.ts's document) whose models are the given ones, each like its model. */
export function stateWithModels(
  now: number,
  models: Array<{ key: string; name: string; missing_since?: number | null }>,
): CacheState {
  const document = validDocument(now);
  const [template] = document.models as Array<Record<string, unknown>>;
  document.models = models.map((m) => ({ ...template, ...m }));
  return decodeState(Buffer.from(JSON.stringify(document)), now);
}

/** `count` models as a save's delta carries them: each used once since the last save. */
export function stressModels(count: number): PersistedModel[] {
  const now = Date.now();
  const models = Array.from({ length: count }, (_, i) => ({
    key: `/models/stress-${i}.gguf`,
    name: `stress-${i}.gguf`,
  }));
  return stateWithModels(now, models).models.map((m) => ({
    ...m,
    usage: usedOnce(now, { value: 1, at: now }),
  }));
}

/** A save's delta, now, that adds one hit (and carries `models`): what a server's saver writes after a request. */
export function oneHit(models: PersistedModel[]): StateDelta {
  return deltaOf(Date.now(), models, { ...emptyCounters(), hits: 1 });
}
