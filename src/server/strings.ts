/**
 * Bounds on every string a client names (issue 23, item 3): a model name, a stop string, a tool's name, an id, a
 * metadata entry. Without them a 2 MiB model name was kept in the event backlog and the log once per request, and 200
 * such requests took the server from 167 to 543 MB. Prompts and message contents are text for the model: the body
 * limit and the loaded context bound them. A longer string is a 400 naming the field, its length and the limit.
 */
import { z } from "zod";
import { MAX_MODEL_NAME_CHARS } from "../models/types.js";

export const STRING_LIMITS = {
  /** A model's name: no path on Linux is longer (PATH_MAX). */
  model: MAX_MODEL_NAME_CHARS,
  /** Names and ids: tool and function names, tool call ids, `user`, tags, `keep_alive`, `service_tier`… */
  name: 1024,
  /** One stop string (a stop string longer than any context could never match). */
  stop: 4096,
  /** Stop strings in one request (OpenAI takes 4). */
  stops: 16,
  /** OpenAI's own bounds on `metadata`: 16 entries, keys of 64 and values of 512 characters. */
  metadataEntries: 16,
  metadataKey: 64,
  metadataValue: 512,
} as const;

/** A string of at most `limit` characters; a longer one is refused naming its length and the limit. */
export function boundedString(limit: number): z.ZodString {
  return z.string().max(limit, {
    error: (issue) =>
      `${typeof issue.input === "string" ? issue.input.length : "too many"} characters, more than this server takes here (at most ${limit})`,
  });
}

/** A model name as a body names it. */
export const modelName = () => boundedString(STRING_LIMITS.model).min(1);
/** A name or id (tools, functions, calls, users). */
export const shortName = () => boundedString(STRING_LIMITS.name);
/** `stop`: one string or a list, each bounded. */
export const stopStrings = () =>
  z
    .union([boundedString(STRING_LIMITS.stop), z.array(boundedString(STRING_LIMITS.stop)).max(STRING_LIMITS.stops)])
    .nullish();
/** `metadata`: OpenAI's bounds. */
export const metadata = () =>
  z
    .record(boundedString(STRING_LIMITS.metadataKey), boundedString(STRING_LIMITS.metadataValue))
    .refine((entries) => Object.keys(entries).length <= STRING_LIMITS.metadataEntries, {
      message: `more than ${STRING_LIMITS.metadataEntries} entries, the most this server takes`,
    });
