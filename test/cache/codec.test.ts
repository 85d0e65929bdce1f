import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeState, encodeState, STATE_SCHEMA_VERSION } from "../../src/cache/persistence/codec.js";
import { emptyEvictions } from "../../src/cache/types.js";
import { StateCorrupt } from "../../src/errors/index.js";
import { outOfRangeDocuments, validDocument } from "../../testkit/out-of-range.js";
import { sampleState } from "../../testkit/state-samples.js";

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

const current = sampleState({
  fingerprint: { size: 10, mtimeMs: 5, sha256: "a".repeat(64) },
  metadata: { memory_bytes: 1024 },
});

describe("state codec", () => {
  it("round-trips the current version with the header first", () => {
    const bytes = encodeState(current);
    assert.ok(
      new TextDecoder()
        .decode(bytes)
        .startsWith(`{"format":"inferno-cache-state","schema_version":${STATE_SCHEMA_VERSION},`),
    );
    assert.deepEqual(decodeState(bytes), current);
  });

  it("migrates schema version 1", () => {
    const v1 = {
      format: "inferno-cache-state",
      schema_version: 1,
      saved_at: "2025-06-01T00:00:00.000Z",
      counters: { hits: 7, misses: 3, loads: 3, evictions: 2 },
      models: [
        {
          key: "/m/a.gguf",
          name: "a.gguf",
          format: "gguf",
          size: 10,
          mtime_ms: 5,
          requests: 10,
          last_used: "2025-05-31T00:00:00.000Z",
          avg_load_ms: 250,
        },
        {
          key: "/m/b.onnx",
          name: "b.onnx",
          format: "onnx",
          size: 20,
          mtime_ms: 6,
          requests: 0,
          last_used: null,
          avg_load_ms: null,
        },
      ],
    };
    const state = decodeState(encode(v1));
    assert.equal(state.saved_at, Date.parse("2025-06-01T00:00:00.000Z"));
    assert.deepEqual(
      [state.counters.hits, state.counters.misses, state.counters.loads, state.counters.load_failures],
      [7, 3, 3, 0],
    );
    assert.equal(
      Object.values(state.counters.evictions).reduce((a, b) => a + b, 0),
      0,
    );
    const [a, b] = state.models;
    assert.deepEqual(a?.fingerprint, { size: 10, mtimeMs: 5 });
    assert.deepEqual(a?.usage.frequency, { value: 10, at: Date.parse("2025-05-31T00:00:00.000Z") });
    assert.deepEqual([a?.usage.loads, a?.usage.load_ms_total], [1, 250]);
    assert.deepEqual([b?.usage.last_used_at, b?.usage.frequency, b?.usage.loads], [null, null, 0]);
    assert.deepEqual(decodeState(encodeState(state)), state, "a migrated state re-encodes as the current version");
  });

  it("reads a version-2 file written before the `crashed` eviction reason as zero crashes", () => {
    const { crashed: _crashed, ...before } = current.counters.evictions;
    const document = {
      format: "inferno-cache-state",
      schema_version: 2,
      ...current,
      counters: { ...current.counters, evictions: before },
    };
    const state = decodeState(encode(document));
    assert.equal(state.counters.evictions.crashed, 0);
    assert.deepEqual(state.counters.evictions, current.counters.evictions);
  });

  const refused: Array<[string, unknown, RegExp]> = [
    [
      "a newer version",
      { format: "inferno-cache-state", schema_version: 3 },
      /written by a newer Inferno \(schema version 3; this one reads up to 2\)/,
    ],
    ["another format", { format: "other", schema_version: 1 }, /does not start with the "inferno-cache-state" header/],
    ["no header", [1, 2, 3], /header/],
    [
      "a bad field",
      { ...current, format: "inferno-cache-state", schema_version: 2, counters: { ...current.counters, hits: -1 } },
      /malformed at counters\.hits/,
    ],
    [
      "an eviction count that is not a count",
      {
        format: "inferno-cache-state",
        schema_version: 2,
        saved_at: 1,
        counters: { hits: 0, misses: 0, loads: 0, load_failures: 0, warmups: 0, evictions: { ttl: "x" } },
        models: [],
      },
      /malformed at counters\.evictions\.ttl/,
    ],
  ];
  it("reads counters added later (a new eviction reason, unknown_model_requests, coalesced) as 0 from older files", () => {
    const older = {
      format: "inferno-cache-state",
      schema_version: 2,
      saved_at: 1,
      counters: { hits: 1, misses: 0, loads: 0, load_failures: 0, warmups: 0, evictions: { ttl: 2 } },
      models: [],
    };
    const state = decodeState(encode(older));
    assert.equal(state.counters.evictions.ttl, 2);
    assert.equal(state.counters.evictions.manual, 0);
    assert.equal(state.counters.unknown_model_requests, 0);
    assert.equal(state.counters.coalesced, 0);
  });
  for (const [name, document, message] of refused) {
    it(`refuses ${name} with StateCorrupt`, () => {
      assert.throws(
        () => decodeState(encode(document)),
        (e: { code: string; message: string }) => {
          assert.equal(e.code, "state_corrupt");
          assert.match(e.message, message);
          return true;
        },
      );
    });
  }
  it("refuses bytes that are not UTF-8 JSON", () => {
    assert.throws(() => decodeState(new Uint8Array([0xff, 0xfe, 0x00])), { code: "state_corrupt" });
  });
});

describe("state codec: value ranges (issue 14)", () => {
  const now = Date.UTC(2026, 10, 29);
  const json = (document: unknown) => new TextEncoder().encode(JSON.stringify(document));

  it("accepts the valid base document the out-of-range set is derived from", () => {
    assert.equal(decodeState(json(validDocument(now)), now).models.length, 1);
  });

  it("reads exactly the known fields of a current-version document: unknown ones dropped, later additions defaulted", () => {
    const document = validDocument(now) as Record<string, unknown> & {
      counters: Record<string, unknown>;
      models: Array<Record<string, unknown>>;
    };
    const model = document.models[0] as Record<string, unknown> & { usage: Record<string, unknown> };
    const withExtras = {
      ...document,
      extra: 1,
      counters: {
        ...document.counters,
        unknown_model_requests: undefined,
        coalesced: undefined,
        later_counter: 5,
        evictions: { ttl: 2, a_later_reason: 1 },
      },
      models: [{ ...model, missing_since: undefined, later_field: "x", usage: { ...model.usage, later: 1 } }],
    };
    const decoded = decodeState(json(withExtras), now);
    const {
      format: _format,
      schema_version: _version,
      ...expected
    } = structuredClone(document) as Record<string, unknown> & {
      counters: Record<string, unknown>;
      models: Array<Record<string, unknown>>;
    };
    expected.counters = {
      ...expected.counters,
      unknown_model_requests: 0,
      coalesced: 0,
      evictions: { ...emptyEvictions(), ttl: 2 },
    };
    const { missing_since: _missing, ...modelWithout } = expected.models[0] as Record<string, unknown>;
    expected.models = [modelWithout];
    assert.deepEqual(decoded, expected);
  });

  const bad = outOfRangeDocuments(now);
  it(`refuses every one of ${bad.length} generated out-of-range documents with StateCorrupt naming the field`, () => {
    assert.ok(bad.length >= 90, `${bad.length} cases`);
    for (const [what, document] of bad) {
      assert.throws(
        () => decodeState(json(document), now),
        (e: unknown) => e instanceof StateCorrupt && /malformed at /.test(e.message),
        what,
      );
    }
  });

  it("refuses a schema-version-1 file whose ISO times are outside ±100 years", () => {
    const v1 = (saved_at: string) => ({
      format: "inferno-cache-state",
      schema_version: 1,
      saved_at,
      counters: { hits: 0, misses: 0, loads: 0, evictions: 0 },
      models: [],
    });
    assert.equal(decodeState(json(v1("2025-06-01T00:00:00.000Z")), now).models.length, 0);
    for (const at of ["+275760-09-13T00:00:00.000Z", "1900-01-01T00:00:00.000Z", "2200-01-01T00:00:00.000Z"]) {
      assert.throws(() => decodeState(json(v1(at)), now), StateCorrupt, at);
    }
  });
});
