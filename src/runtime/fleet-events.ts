/**
 * `inferno fleet events`: every node's cache events from the fleet's one event stream in Redis (each node appends its
 * events, as `/v1/cache/events` names them, to `inferno:{<name>}:events`, capped at `EVENTS_MAX`). Read straight from
 * Redis, so it needs `fleet.redis_url` and no running server; resumable: each entry carries its stream id, and
 * `since` starts after one.
 */
import type { InfernoConfig } from "../config/schema.js";
import { UsageError } from "../errors/index.js";
import { FleetEngine, type FleetEventEntry, type FleetSettings, fleetSettings } from "../fleet/index.js";

/** How long one read waits in Redis for an event (ms). */
const BLOCK_MS = 1000;

export interface FleetEventsOptions {
  /** Start after this stream id; `0` (or `0-0`): from the oldest kept; absent: only events from now on. */
  since?: string;
  signal?: AbortSignal;
}

/** The fleet the configuration names (its name, and Redis without its password: `redactedUrl`). */
export function fleetOf(config: InfernoConfig): FleetSettings {
  const settings = fleetSettings(config);
  if (!settings) throw new UsageError("this configuration names no fleet: set fleet.redis_url (and fleet.name)");
  return settings;
}

/** The fleet's events, in order, until `signal` aborts. Throws `FleetUnavailable` when Redis cannot be reached. */
export async function* fleetEvents(
  config: InfernoConfig,
  options: FleetEventsOptions = {},
): AsyncGenerator<FleetEventEntry> {
  const settings = fleetOf(config);
  if (options.since !== undefined && !/^\d+(-\d+)?$/.test(options.since)) {
    throw new UsageError(`--since takes a stream id such as 1733480000000-0 (or 0 for all), found ${options.since}`);
  }
  const engine = new FleetEngine({ redisUrl: settings.redisUrl, name: settings.name, nodeId: `cli:${process.pid}` });
  try {
    await engine.connect();
    let after = options.since ?? (await engine.lastEventId());
    while (!options.signal?.aborted) {
      for (const entry of await engine.readEvents(after, BLOCK_MS)) {
        after = entry.id;
        yield entry;
      }
    }
  } finally {
    engine.close();
  }
}
