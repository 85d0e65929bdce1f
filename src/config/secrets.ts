/**
 * The settings whose values are secrets, and their masked forms: what `inferno config show` (and `config get` of a
 * whole section) prints, and what a log or an answer may show of a Redis URL.
 */
import type { InfernoConfig } from "./schema.js";

/** What a secret prints as. */
export const MASK = "***";

/** `url` with its password (and a lone user, which may be a token) replaced by `***`. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/, (_, scheme: string, auth: string) => {
    const colon = auth.indexOf(":");
    return `${scheme}${colon >= 0 ? `${auth.slice(0, colon)}:${MASK}` : MASK}@`;
  });
}

/**
 * `config` with every secret masked — `server.api_key` and `fleet.secret` when set, the password in `fleet.redis_url` —
 * for printing a whole configuration (pasted into an issue, shown on a screen). The value of one key stays readable
 * through `inferno config get <key>`.
 */
export function redactConfig(config: InfernoConfig): InfernoConfig {
  const secret = (value: string | undefined) => (value === undefined || value === "" ? value : MASK);
  return {
    ...config,
    server: { ...config.server, api_key: secret(config.server.api_key) ?? "" },
    fleet: {
      ...config.fleet,
      redis_url: redactRedisUrl(config.fleet.redis_url),
      ...(config.fleet.secret === undefined ? {} : { secret: secret(config.fleet.secret) }),
    },
  };
}
