/**
 * `keep_alive` on requests, as Ollama spells it: a duration string (`"5m"`, `"90s"`, `"1h30m"`, `"500ms"`), a number of
 * seconds (`300`, also as a string), a negative value for "keep loaded forever", or `0` for "unload after this request".
 * The result is the cache's one `KeepAlive` type (`"forever"` or `{ afterSeconds }`), produced by the request schemas'
 * single zod transform and clamped to the server's bounds by `clampKeepAlive` alone.
 */
import type { KeepAlive } from "../cache/types.js";
import { MAX_DURATION_SECONDS, type ServerConfig } from "../config/schema.js";

export type { KeepAlive };

export const KEEP_ALIVE_FOREVER = "forever" as const;

const UNIT_SECONDS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

const DURATION = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/g;
const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/;

/** Why a keep_alive value was refused; the caller names the field. */
export class KeepAliveSyntaxError extends Error {}

/**
 * From a number of seconds: negative means forever; fractions round up so "0.5" does not mean "unload now". Above
 * `MAX_DURATION_SECONDS` (10 years) is refused rather than guessed at: -1 says "forever".
 */
function fromSeconds(seconds: number): KeepAlive {
  if (!Number.isFinite(seconds))
    throw new KeepAliveSyntaxError(`expected a finite number of seconds, found ${seconds}`);
  if (seconds < 0) return KEEP_ALIVE_FOREVER;
  if (seconds > MAX_DURATION_SECONDS) {
    throw new KeepAliveSyntaxError(
      `expected at most ${MAX_DURATION_SECONDS} seconds (10 years), or -1 for forever; found ${seconds}`,
    );
  }
  return { afterSeconds: Math.ceil(seconds) };
}

function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  if (!match) {
    throw new KeepAliveSyntaxError(
      `expected a duration like "5m", "90s" or "1h30m", a number of seconds, or -1 for forever, found ${JSON.stringify(text)}`,
    );
  }
  let seconds = 0;
  for (const [, amount, unit] of text.matchAll(PART)) seconds += Number(amount) * (UNIT_SECONDS[unit as string] ?? 0);
  return match[1] === "-" ? -seconds : seconds;
}

/** Parses a request's `keep_alive`. Throws KeepAliveSyntaxError for anything else. */
export function parseKeepAlive(value: string | number): KeepAlive {
  if (typeof value === "number") return fromSeconds(value);
  const text = value.trim();
  if (NUMBER.test(text)) return fromSeconds(Number(text));
  return fromSeconds(parseDuration(text));
}

/** Applies `keep_alive_min_seconds` / `keep_alive_max_seconds` (0 = no upper bound); forever becomes the maximum. */
export function clampKeepAlive(
  keepAlive: KeepAlive,
  bounds: Pick<ServerConfig, "keep_alive_min_seconds" | "keep_alive_max_seconds">,
): KeepAlive {
  const { keep_alive_min_seconds: min, keep_alive_max_seconds: max } = bounds;
  if (keepAlive === KEEP_ALIVE_FOREVER) return max > 0 ? { afterSeconds: max } : KEEP_ALIVE_FOREVER;
  const atLeast = Math.max(keepAlive.afterSeconds, min);
  return { afterSeconds: max > 0 ? Math.min(atLeast, max) : atLeast };
}

/** A request's optional `keep_alive` as the cache takes it: clamped, or undefined when the request gave none. */
export function requestKeepAlive(
  keepAlive: KeepAlive | undefined,
  bounds: Pick<ServerConfig, "keep_alive_min_seconds" | "keep_alive_max_seconds">,
): KeepAlive | undefined {
  return keepAlive === undefined ? undefined : clampKeepAlive(keepAlive, bounds);
}
