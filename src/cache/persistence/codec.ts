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
import { EVICTION_REASONS, type EvictionReason, emptyEvictions } from "../types.js";
import type { CacheState, PersistedModel } from "./types.js";

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

/** The schemas for a document decoded at `now` (times are checked against it). */
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

  const modelV2 = z.object({
    key: path,
    name: path,
    format: z.enum(["gguf", "onnx"]),
    fingerprint: z.object({ size: count, mtimeMs: time, sha256: z.string().regex(/^[0-9a-f]{64}$/).optional() }),
    // `gguf` came after version 2's first release; optional, so files without it stay valid and older v2 readers drop it.
    metadata: z.object({
      memory_bytes: count.nullable(),
      gguf: z
        .object({ architecture: text, quantization: text, parameter_count: count, context_length: count })
        .optional(),
    }),
    usage: z.object({
      requests: count,
      hits: count,
      misses: count,
      loads: count,
      last_used_at: time.nullable(),
      frequency: z.object({ value: amount, at: time }).nullable(),
      load_ms_total: amount,
      load_ms_samples: z.array(amount).max(L.maxSamples),
    }),
    priority: amount,
    pinned: z.boolean(),
    // Added within version 2 (missing models kept): absent in older files means "present".
    missing_since: time.nullable().optional(),
  });

  // A reason added later (a new member of EvictionReason) reads as 0 from files written before it existed.
  const reasonCount = count.default(0);
  const evictionsSchema = z.object(
    Object.fromEntries(EVICTION_REASONS.map((r) => [r, reasonCount])) as Record<EvictionReason, typeof reasonCount>,
  );

  // Added within version 2 (`inferno cache advise`): columns of equal length, model indices into `keys`.
  const requestLog = z
    .object({
      keys: z.array(path).max(L.maxLoggedRequests),
      at: z.array(time).max(L.maxLoggedRequests),
      model: z.array(count).max(L.maxLoggedRequests),
      outcome: z.string().max(L.maxLoggedRequests).regex(/^[hmc]*$/),
      load_ms: z.array(amount.nullable()).max(L.maxLoggedRequests),
    })
    .superRefine((log, ctx) => {
      const n = log.at.length;
      if (log.model.length !== n || log.outcome.length !== n || log.load_ms.length !== n) {
        ctx.addIssue({ code: "custom", message: `the request log's columns differ in length (at: ${n} requests)` });
      } else if (log.model.some((i) => i >= log.keys.length)) {
        ctx.addIssue({ code: "custom", path: ["model"], message: `a request names a model beyond keys (${log.keys.length})` });
      }
    });

  const stateV2 = z.object({
    format: z.literal(STATE_FORMAT),
    schema_version: z.literal(2),
    saved_at: time,
    counters: z.object({
      hits: count,
      misses: count,
      loads: count,
      load_failures: count,
      evictions: evictionsSchema,
      warmups: count,
      // Added within version 2: older files read as 0.
      unknown_model_requests: count.default(0),
      coalesced: count.default(0),
    }),
    models: z.array(modelV2).max(L.maxModels),
    request_log: requestLog.optional(),
  });

  const isoTime = z
    .string()
    .max(L.maxShortText)
    .refine((s) => time.safeParse(Date.parse(s)).success, "an ISO date within 100 years of now");
  const stateV1 = z.object({
    format: z.literal(STATE_FORMAT),
    schema_version: z.literal(1),
    saved_at: isoTime,
    counters: z.object({ hits: count, misses: count, loads: count, evictions: count }),
    models: z.array(
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
    ).max(L.maxModels),
  });
  return { headerSchema, stateV1, stateV2 };
}

type Schemas = ReturnType<typeof schemasAt>;
type StateV1 = z.infer<Schemas["stateV1"]>;

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
 * Decodes (and migrates) saved state; throws `StateCorrupt` naming what is wrong, including any value outside
 * `STATE_LIMITS` (times are checked against `now`, default the wall clock).
 */
export function decodeState(bytes: Uint8Array, now: number = Date.now()): CacheState {
  const { headerSchema, stateV1, stateV2 } = schemasAt(now);
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
  const schema = version === 1 ? stateV1 : stateV2;
  const parsed = schema.safeParse(document);
  if (!parsed.success) throw new StateCorrupt(`the state (schema version ${version}) is malformed at ${issues(parsed.error)}`);
  if (version === 1) return migrateV1(parsed.data as StateV1);
  const { format: _format, schema_version: _version, ...state } = parsed.data as z.infer<Schemas["stateV2"]>;
  return state;
}
