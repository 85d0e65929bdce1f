/**
 * The `[fleet]` section resolved for one node: what the engine and the node's loops read. `null` when `redis_url` is
 * empty: a single node, exactly as without a fleet.
 */
import type { InfernoConfig } from "../config/schema.js";
import { redactRedisUrl } from "../config/secrets.js";
import { copiesRule, type CopiesRule } from "./copies.js";

export interface FleetSettings {
  /** The Redis URL, password included: hand it to the client only; log `redactedUrl`. */
  redisUrl: string;
  /** The same URL with any password replaced by `***`, for logs and `/health`. */
  redactedUrl: string;
  name: string;
  nodeId: string;
  /** What peers dial, without a trailing slash. */
  advertiseUrl: string;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  /** Sent with forwarded requests; empty when neither `fleet.secret` nor `server.api_key` is set. */
  secret: string;
  /** `fleet.scale_up_rpm`. */
  scaleUpRpm: number;
  /** The copies rule of a model by name (`[cache.models."NAME"]` `min_copies`, `max_copies`, `pinned`). */
  copies: (model: string) => CopiesRule;
  /** The models with a `min_copies` (or `pinned`): the fleet keeps them loaded whatever the traffic. */
  kept: string[];
  /** `cache.eviction_policy`: the order of the eviction ladder the node publishes for placement. */
  evictionPolicy: InfernoConfig["cache"]["eviction_policy"];
}

function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * The node's fleet settings, or null when it runs alone. `port` is the port the server listens on (it differs from
 * `server.port` when that is 0). The config schema has refused a wildcard bind without `advertise_url` already.
 */
export function fleetSettings(
  config: Pick<InfernoConfig, "fleet" | "server"> & {
    cache: Pick<InfernoConfig["cache"], "models" | "eviction_policy">;
  },
  port = config.server.port,
): FleetSettings | null {
  const fleet = config.fleet;
  if (fleet.redis_url === "") return null;
  const advertiseUrl = (fleet.advertise_url ?? `http://${hostForUrl(config.server.host)}:${port}`).replace(/\/$/, "");
  return {
    redisUrl: fleet.redis_url,
    redactedUrl: redactRedisUrl(fleet.redis_url),
    name: fleet.name,
    nodeId: fleet.node_id ?? new URL(advertiseUrl).host,
    advertiseUrl,
    heartbeatMs: Math.round(fleet.heartbeat_seconds * 1000),
    nodeTimeoutMs: Math.round(fleet.node_timeout_seconds * 1000),
    secret: fleet.secret ?? config.server.api_key,
    scaleUpRpm: fleet.scale_up_rpm,
    copies: (model) =>
      copiesRule(
        Object.hasOwn(config.cache.models, model) ? config.cache.models[model] : undefined,
        fleet.scale_up_rpm,
      ),
    kept: Object.keys(config.cache.models).filter((model) => copiesRule(config.cache.models[model]).minCopies > 0),
    evictionPolicy: config.cache.eviction_policy,
  };
}
