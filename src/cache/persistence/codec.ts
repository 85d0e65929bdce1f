/**
 * Encoding of the cache state: a JSON document (compressed by the file store) that starts with a self-describing
 * header — `format` and `schema_version` — so any tool can tell what it is and which version wrote it.
 *
 * Versions: 1 was the first layout (ISO times, a single eviction total, an average load time only); 2 (current) keeps
 * wall-clock milliseconds, evictions per reason, the decayed frequency and load-time samples. Older documents are
 * migrated on decode; newer ones are refused (`StateCorrupt` with `details.newer`), never guessed at.
 */
import { z } from "zod";
import { MAX_REQUEST_LOG_SIZE } from "../../config/schema.js";
import { StateCorrupt } from "../../errors/index.js";
import { EVICTION_REASONS, emptyEvictions } from "../types.js";
import type { CacheState, PersistedModel, PersistedRequestLog } from "./types.js";

export const STATE_FORMAT = "inferno-cache-state";
export const STATE_SCHEMA_VERSION = 2;

/**
 * Bounds every decoded value must be within. A value outside them is a decode error (the file is quarantined like an
 * undecodable one), never something that reaches the cache, the statistics or date formatting (`Date` throws beyond
 * ±8.64e15 ms, so one absurd time would otherwise stop every start).
 */
export const STATE_LIMITS = {
  /** Times (epoch ms) must lie within this distance of the decoding moment: ±100 years. */
  timeWindowMs: 100 * 365.25 * 24 * 3600_000,
  /** Counts, sizes, durations and scores stay below 2^53 (exact integers in a double). */
  maxNumber: Number.MAX_SAFE_INTEGER,
  /** Keys and names (paths): Linux's PATH_MAX is 4096 bytes. */
  maxPathLength: 4096,
  /** Short texts (architecture, quantization names). */
  maxShortText: 256,
  /** Load-time samples per model (the cache keeps `LOAD_SAMPLES`, 32; older files may hold more). */
  maxSamples: 1024,
  /** Models in one state file. */
  maxModels: 100_000,
  /** Requests in the request log (`cache.request_log_size` at most). */
  maxLoggedRequests: MAX_REQUEST_LOG_SIZE,
} as const;

/**
 * The header's and version 1's schemas for a document decoded at `now` (times are checked against it). Version 1 only
 * ever needs migrating; the current version is read by `readV2` below, which checks the same `STATE_LIMITS` without
 * zod's full parse (restoring 10,000 models must not block the event loop).
 */
function schemasAt(now: number) {
  const L = STATE_LIMITS;
  const count = z.number().int().nonnegative().max(L.maxNumber);
  const amount = z.number().nonnegative().max(L.maxNumber);
  const time = z
    .number()
    .min(now - L.timeWindowMs)
    .max(now + L.timeWindowMs);
  const path = z.string().min(1).max(L.maxPathLength);
  const text = z.string().max(L.maxShortText);

  const headerSchema = z.object({ format: text, schema_version: z.number().int().positive().max(L.maxNumber) });

  const isoTime = z
    .string()
    .max(L.maxShortText)
    .refine((s) => time.safeParse(Date.parse(s)).success, "an ISO date within 100 years of now");
  const stateV1 = z.object({
    format: z.literal(STATE_FORMAT),
    schema_version: z.literal(1),
    saved_at: isoTime,
    counters: z.object({ hits: count, misses: count, loads: count, evictions: count }),
    models: z
      .array(
        z.object({
          key: path,
          name: path,
          format: z.enum(["gguf", "onnx"]),
          size: count,
          mtime_ms: time,
          requests: count,
          last_used: isoTime.nullable(),
          avg_load_ms: amount.nullable(),
        }),
      )
      .max(L.maxModels),
  });
  return { headerSchema, stateV1 };
}

type StateV1 = z.infer<ReturnType<typeof schemasAt>["stateV1"]>;

/**
 * v1 → v2. v1 kept no per-reason evictions (the total is unattributable, so it is dropped rather than invented), no
 * hit/miss split per model and no frequency: the request count becomes a frequency as of the last use, so ranking
 * still favours what was used most.
 */
function migrateV1(v1: StateV1): CacheState {
  return {
    saved_at: Date.parse(v1.saved_at),
    counters: {
      hits: v1.counters.hits,
      misses: v1.counters.misses,
      loads: v1.counters.loads,
      load_failures: 0,
      evictions: emptyEvictions(),
      warmups: 0,
      unknown_model_requests: 0,
      coalesced: 0,
    },
    models: v1.models.map((m): PersistedModel => {
      const lastUsed = m.last_used === null ? null : Date.parse(m.last_used);
      return {
        key: m.key,
        name: m.name,
        format: m.format,
        fingerprint: { size: m.size, mtimeMs: m.mtime_ms },
        metadata: { memory_bytes: null },
        usage: {
          requests: m.requests,
          hits: 0,
          misses: 0,
          loads: m.avg_load_ms === null ? 0 : 1,
          last_used_at: lastUsed,
          frequency: lastUsed === null ? null : { value: m.requests, at: lastUsed },
          load_ms_total: m.avg_load_ms ?? 0,
          load_ms_samples: m.avg_load_ms === null ? [] : [m.avg_load_ms],
        },
        priority: 0,
        pinned: false,
      };
    }),
  };
}

/** The state as bytes (UTF-8 JSON, header fields first). */
export function encodeState(state: CacheState): Uint8Array {
  const document = { format: STATE_FORMAT, schema_version: STATE_SCHEMA_VERSION, ...state };
  return new TextEncoder().encode(`${JSON.stringify(document)}\n`);
}

function issues(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join(".") || "(document)"}: ${first.message}` : "invalid";
}

/**
 * The shape a state document can have, checked on its bytes before `JSON.parse` builds anything: the parser's memory
 * grows with the objects and arrays it builds, not with the bytes — 60 MiB of `[` (under the decompression cap, from a
 * 2 KB file) made 60 million nested arrays and 2.9 GB. A real document nests 5 deep and holds one object or array per
 * ~100 bytes (a model's entry is ~700 bytes and six of them; the request log is a few long columns of numbers).
 */
export const STATE_STRUCTURE = {
  maxDepth: 16,
  /** Objects and arrays per byte of the document, at most (plus `minContainers`). */
  bytesPerContainer: 24,
  minContainers: 1024,
} as const;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Throws `StateCorrupt` when the document nests deeper or holds more objects and arrays than a state can. */
export function checkStructure(bytes: Uint8Array): void {
  const { maxDepth, bytesPerContainer, minContainers } = STATE_STRUCTURE;
  const maxContainers = minContainers + Math.floor(bytes.length / bytesPerContainer);
  let depth = 0;
  let containers = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        throw new StateCorrupt(`the state nests deeper than any state does (more than ${maxDepth} levels)`);
      }
      if (++containers > maxContainers) {
        throw new StateCorrupt(
          `the state holds more objects and arrays than any state of its size does (more than ${maxContainers} in ${bytes.length} bytes)`,
        );
      }
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) depth--;
  }
}

/**
 * Decodes (and migrates) saved state; throws `StateCorrupt` naming what is wrong, including any value outside
 * `STATE_LIMITS` (times are checked against `now`, default the wall clock).
 */
export function decodeState(bytes: Uint8Array, now: number = Date.now()): CacheState {
  const { headerSchema, stateV1 } = schemasAt(now);
  checkStructure(bytes);
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new StateCorrupt(`the state is not a JSON document (${(error as Error).message})`, { cause: error });
  }
  const header = headerSchema.safeParse(document);
  if (!header.success || header.data.format !== STATE_FORMAT) {
    throw new StateCorrupt(`the state does not start with the "${STATE_FORMAT}" header`);
  }
  const version = header.data.schema_version;
  if (version > STATE_SCHEMA_VERSION) {
    throw new StateCorrupt(
      `the state was written by a newer Inferno (schema version ${version}; this one reads up to ${STATE_SCHEMA_VERSION})`,
      { details: { newer: true, schema_version: version } },
    );
  }
  if (version === 2) return readV2(document as Record<string, unknown>, now);
  const parsed = stateV1.safeParse(document);
  if (!parsed.success)
    throw new StateCorrupt(`the state (schema version ${version}) is malformed at ${issues(parsed.error)}`);
  return migrateV1(parsed.data);
}

// ---------------------------------------------------------------------------------------------------------------------
// Version 2, read by hand: every value type- and range-checked against `STATE_LIMITS` (a value out of range is a
// decode error, as with zod), known fields copied into fresh objects (unknown ones dropped), defaults filled in for
// fields added within the version. About ten times cheaper than the equivalent zod parse.

/** A value that is not what the layout says, at `path` (dotted, as zod names paths). */
function malformed(at: string, field: string, expected: string, value: unknown): never {
  const path = field === "" ? at : at === "" ? field : `${at}.${field}`;
  const found =
    value === undefined ? "nothing" : typeof value === "string" ? "a string" : JSON.stringify(value)?.slice(0, 40);
  throw new StateCorrupt(`the state (schema version 2) is malformed at ${path}: expected ${expected}, found ${found}`);
}

type Fields = Record<string, unknown>;

/** The checks of one document, with times judged against `now`. */
function v2Checks(now: number) {
  const L = STATE_LIMITS;
  const earliest = now - L.timeWindowMs;
  const latest = now + L.timeWindowMs;
  // Each check takes where the value is as a prefix and a field, joined only when it fails (no string per value read).
  const object = (value: unknown, at: string, field = ""): Fields =>
    typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Fields)
      : malformed(at, field, "an object", value);
  const count = (value: unknown, at: string, field: string): number =>
    typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= L.maxNumber
      ? value
      : malformed(at, field, `a whole number from 0 to ${L.maxNumber}`, value);
  const amount = (value: unknown, at: string, field: string): number =>
    typeof value === "number" && value >= 0 && value <= L.maxNumber
      ? value
      : malformed(at, field, `a number from 0 to ${L.maxNumber}`, value);
  const time = (value: unknown, at: string, field: string): number =>
    typeof value === "number" && value >= earliest && value <= latest
      ? value
      : malformed(at, field, "a time (epoch ms) within 100 years of now", value);
  const string = (value: unknown, at: string, field: string, min: number, max: number): string =>
    typeof value === "string" && value.length >= min && value.length <= max
      ? value
      : malformed(at, field, `a string of ${min} to ${max} characters`, value);
  const countOrNull = (value: unknown, at: string, field: string): number | null =>
    value === null ? null : count(value, at, field);
  const timeOrNull = (value: unknown, at: string, field: string): number | null =>
    value === null ? null : time(value, at, field);
  return { object, count, amount, time, string, countOrNull, timeOrNull };
}

const SHA256 = /^[0-9a-f]{64}$/;

function readV2(document: Fields, now: number): CacheState {
  const c = v2Checks(now);
  const L = STATE_LIMITS;
  const path = (value: unknown, at: string, field: string) => c.string(value, at, field, 1, L.maxPathLength);
  const text = (value: unknown, at: string, field: string) => c.string(value, at, field, 0, L.maxShortText);

  const counters = c.object(document.counters, "", "counters");
  const evictionsIn = c.object(counters.evictions, "counters", "evictions");
  const evictions = emptyEvictions();
  // A reason added later (a new member of EvictionReason) reads as 0 from files written before it existed.
  for (const reason of EVICTION_REASONS) {
    const value = evictionsIn[reason];
    if (value !== undefined) evictions[reason] = c.count(value, "counters.evictions", reason);
  }
  const optionalCount = (value: unknown, field: string) =>
    value === undefined ? 0 : c.count(value, "counters", field);

  const modelsIn = document.models;
  if (!Array.isArray(modelsIn)) malformed("", "models", "a list", modelsIn);
  if (modelsIn.length > L.maxModels) malformed("", "models", `at most ${L.maxModels} models`, modelsIn.length);
  const models = modelsIn.map((value, i): PersistedModel => {
    const at = `models.${i}`;
    const m = c.object(value, at);
    const format =
      m.format === "gguf" || m.format === "onnx" ? m.format : malformed(at, "format", '"gguf" or "onnx"', m.format);
    const fp = c.object(m.fingerprint, at, "fingerprint");
    const fingerprint: PersistedModel["fingerprint"] = {
      size: c.count(fp.size, at, "fingerprint.size"),
      mtimeMs: c.time(fp.mtimeMs, at, "fingerprint.mtimeMs"),
    };
    if (fp.sha256 !== undefined) {
      fingerprint.sha256 =
        typeof fp.sha256 === "string" && SHA256.test(fp.sha256)
          ? fp.sha256
          : malformed(at, "fingerprint.sha256", "a sha256 in hex", fp.sha256);
    }
    const meta = c.object(m.metadata, at, "metadata");
    const metadata: PersistedModel["metadata"] = {
      memory_bytes: c.countOrNull(meta.memory_bytes, at, "metadata.memory_bytes"),
    };
    // `gguf` came after version 2's first release; optional, so files without it stay valid.
    if (meta.gguf !== undefined) {
      const g = c.object(meta.gguf, at, "metadata.gguf");
      metadata.gguf = {
        architecture: text(g.architecture, at, "metadata.gguf.architecture"),
        quantization: text(g.quantization, at, "metadata.gguf.quantization"),
        parameter_count: c.count(g.parameter_count, at, "metadata.gguf.parameter_count"),
        context_length: c.count(g.context_length, at, "metadata.gguf.context_length"),
      };
    }
    const u = c.object(m.usage, at, "usage");
    const frequencyIn = u.frequency === null ? null : c.object(u.frequency, at, "usage.frequency");
    const samples = u.load_ms_samples;
    if (!Array.isArray(samples) || samples.length > L.maxSamples)
      malformed(at, "usage.load_ms_samples", `a list of at most ${L.maxSamples} numbers`, samples);
    const model: PersistedModel = {
      key: path(m.key, at, "key"),
      name: path(m.name, at, "name"),
      format,
      fingerprint,
      metadata,
      usage: {
        requests: c.count(u.requests, at, "usage.requests"),
        hits: c.count(u.hits, at, "usage.hits"),
        misses: c.count(u.misses, at, "usage.misses"),
        loads: c.count(u.loads, at, "usage.loads"),
        last_used_at: c.timeOrNull(u.last_used_at, at, "usage.last_used_at"),
        frequency:
          frequencyIn === null
            ? null
            : {
                value: c.amount(frequencyIn.value, at, "usage.frequency.value"),
                at: c.time(frequencyIn.at, at, "usage.frequency.at"),
              },
        load_ms_total: c.amount(u.load_ms_total, at, "usage.load_ms_total"),
        // The path of a bad sample is only built for it (one string per sample read would cost as much as the check).
        load_ms_samples: samples.map((sample, k) =>
          typeof sample === "number" && sample >= 0 && sample <= L.maxNumber
            ? sample
            : c.amount(sample, at, `usage.load_ms_samples.${k}`),
        ),
      },
      priority: c.amount(m.priority, at, "priority"),
      pinned: typeof m.pinned === "boolean" ? m.pinned : malformed(at, "pinned", "true or false", m.pinned),
    };
    // Added within version 2 (missing models kept): absent in older files means "present".
    if (m.missing_since !== undefined) model.missing_since = c.timeOrNull(m.missing_since, at, "missing_since");
    return model;
  });

  const state: CacheState = {
    saved_at: c.time(document.saved_at, "", "saved_at"),
    counters: {
      hits: c.count(counters.hits, "counters", "hits"),
      misses: c.count(counters.misses, "counters", "misses"),
      loads: c.count(counters.loads, "counters", "loads"),
      load_failures: c.count(counters.load_failures, "counters", "load_failures"),
      evictions,
      warmups: c.count(counters.warmups, "counters", "warmups"),
      // Added within version 2: older files read as 0.
      unknown_model_requests: optionalCount(counters.unknown_model_requests, "unknown_model_requests"),
      coalesced: optionalCount(counters.coalesced, "coalesced"),
    },
    models,
  };
  // Added within version 2 (`inferno cache advise`): absent in older files.
  if (document.request_log !== undefined) state.request_log = readRequestLog(document.request_log, c);
  return state;
}

/** The request log's columns: of equal length, each at most `maxLoggedRequests`, model indices into `keys`. */
function readRequestLog(value: unknown, c: ReturnType<typeof v2Checks>): PersistedRequestLog {
  const L = STATE_LIMITS;
  const at = "request_log";
  const log = c.object(value, at);
  const list = (field: string): unknown[] => {
    const column = log[field];
    if (!Array.isArray(column) || column.length > L.maxLoggedRequests) {
      malformed(at, field, `a list of at most ${L.maxLoggedRequests} values`, column);
    }
    return column;
  };
  const keys = list("keys").map((key, i) => c.string(key, at, `keys.${i}`, 1, L.maxPathLength));
  const times = list("at").map((time, i) => c.time(time, at, `at.${i}`));
  const n = times.length;
  const model = list("model").map((index, i) =>
    typeof index === "number" && Number.isInteger(index) && index >= 0 && index < keys.length
      ? index
      : malformed(at, `model.${i}`, `an index into keys (a model beyond keys: there are ${keys.length})`, index),
  );
  const loadMs = list("load_ms").map((ms, i) => (ms === null ? null : c.amount(ms, at, `load_ms.${i}`)));
  const outcome = log.outcome;
  if (typeof outcome !== "string" || outcome.length > L.maxLoggedRequests || !/^[hmc]*$/.test(outcome)) {
    malformed(at, "outcome", 'a string of "h", "m" and "c" (one per request)', outcome);
  }
  if (model.length !== n || outcome.length !== n || loadMs.length !== n) {
    malformed(at, "", `columns of one length (the columns differ in length; at: ${n} requests)`, {
      model: model.length,
      outcome: outcome.length,
      load_ms: loadMs.length,
    });
  }
  return { keys, at: times, model, outcome, load_ms: loadMs };
}
