/**
 * `backend.parallel = 0` (auto, the default): the sequences per loaded model, from the machine's memory and cores (the
 * upper bound) and, per model load, the memory the cache's limit leaves it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ParallelMachine, parallelCount, type Sequences, sequencesFor } from "../../src/models/load-settings.js";
import { estimateGgufMemory, ggufSequenceCost } from "../../src/models/manager.js";
import type { GgufMetadata } from "../../src/models/types.js";
import { backendSchema } from "../../src/config/schema.js";
import { GIB, MIB } from "../../src/units.js";

test("auto: 4 with 8 GiB and 2 cores, 2 with 4 GiB, else 1; a configured count is kept", () => {
  const table: Array<[configured: number, gib: number, cores: number, expected: number]> = [
    [0, 64, 16, 4],
    [0, 8, 2, 4],
    [0, 8, 1, 2],
    [0, 7.9, 8, 2],
    [0, 4, 1, 2],
    [0, 3.9, 4, 1],
    [1, 64, 16, 1],
    [6, 2, 1, 6],
  ];
  for (const [configured, gib, cores, expected] of table)
    assert.equal(
      parallelCount(configured, { memoryBytes: gib * GIB, cores }),
      expected,
      `${configured}, ${gib} GiB, ${cores} cores`,
    );
});

test("the default is auto, and a negative count is refused", () => {
  assert.equal(backendSchema.parse({}).parallel, 0);
  assert.ok(parallelCount(backendSchema.parse({}).parallel) >= 1);
  assert.throws(() => backendSchema.parse({ parallel: -1 }));
});

/** Header shapes of real models (tensor bytes of their Q4_K_M files) and of the generated test llamas. */
const shape = (
  tensorBytes: number,
  [vocabularySize, embeddingLength, blockCount, headCount, headCountKv]: number[],
): GgufMetadata => ({
  format: "gguf",
  version: 3,
  architecture: "llama",
  parameterCount: 0,
  quantization: "MOSTLY_Q4_K_M",
  contextLength: 4096,
  embeddingLength: embeddingLength as number,
  blockCount: blockCount as number,
  headCount: headCount as number,
  headCountKv: headCountKv as number,
  vocabularySize: vocabularySize as number,
  tensorCount: 0,
  tensorBytes,
  hasChatTemplate: true,
});
// Llama-3.1-8B: grouped-query attention (8 KV heads of 32): 256 MiB of KV per sequence at 2048 tokens.
const LLAMA_8B = shape(4_920_000_000, [128256, 4096, 32, 32, 8]);
// Phi-3-mini: no grouped-query attention (32 KV heads × 96): 768 MiB of KV per sequence at 2048 tokens.
const PHI_3_MINI = shape(2_393_000_000, [32064, 3072, 32, 32, 32]);
// The generated nano llama (tinyLlamaGguf's default): 256 bytes of KV per token.
const NANO = shape(200_000, [300, 64, 2, 4, 2]);

test("auto per model load: the machine rule's number when that many sequences fit the room, else fewer down to 1", () => {
  const big = { memoryBytes: 16 * GIB, cores: 4 };
  const mid = { memoryBytes: 6 * GIB, cores: 2 };
  const process = backendSchema.parse({ context_size: 2048 });
  // Phi-3-mini at 2048 tokens in a model host: 2.42 GiB + 0.75 GiB per sequence (3.17, 3.92, 4.67, 5.42 GiB).
  // Llama-3.1-8B: 4.96 GiB + 0.25 GiB per sequence (5.21, 5.46, 5.71, 5.96 GiB).
  const table: Array<[what: string, GgufMetadata, configured: number, roomGib: number, ParallelMachine, Sequences]> = [
    ["phi-3 in half of 8 GiB", PHI_3_MINI, 0, 4, big, { count: 2, auto: true, most: 4 }],
    ["phi-3 in 3.5 GiB", PHI_3_MINI, 0, 3.5, big, { count: 1, auto: true, most: 4 }],
    ["phi-3 that fits nowhere", PHI_3_MINI, 0, 3, big, { count: 1, auto: true, most: 4 }],
    ["phi-3 in 5.5 GiB", PHI_3_MINI, 0, 5.5, big, { count: 4, auto: true, most: 4 }],
    ["phi-3 in 4.7 GiB", PHI_3_MINI, 0, 4.7, big, { count: 3, auto: true, most: 4 }],
    ["phi-3 without a limit", PHI_3_MINI, 0, Infinity, big, { count: 4, auto: true, most: 4 }],
    ["phi-3 on a 6 GiB machine", PHI_3_MINI, 0, Infinity, mid, { count: 2, auto: true, most: 2 }],
    ["phi-3 with parallel = 4", PHI_3_MINI, 4, 4, big, { count: 4, auto: false, most: 4 }],
    ["llama-8b in half of 16 GiB", LLAMA_8B, 0, 8, big, { count: 4, auto: true, most: 4 }],
    ["llama-8b in 5.5 GiB", LLAMA_8B, 0, 5.5, big, { count: 2, auto: true, most: 4 }],
    ["llama-8b in 5 GiB", LLAMA_8B, 0, 5, big, { count: 1, auto: true, most: 4 }],
    ["nano in 200 MiB", NANO, 0, 200 / 1024, big, { count: 4, auto: true, most: 4 }],
    ["nano with parallel = 1", NANO, 1, Infinity, big, { count: 1, auto: false, most: 1 }],
  ];
  for (const [what, metadata, configured, roomGib, machine, expected] of table) {
    const cost = ggufSequenceCost(metadata, process);
    assert.deepEqual(sequencesFor(configured, cost, roomGib * GIB, machine), expected, what);
  }
  const phi = ggufSequenceCost(PHI_3_MINI, process);
  assert.equal(phi.perSequenceBytes, 768 * MIB);
  assert.equal(ggufSequenceCost(LLAMA_8B, process).perSequenceBytes, 256 * MIB);
});

test("the estimate counts the sequences auto resolves to in the room it is given", () => {
  const backend = backendSchema.parse({ context_size: 2048 });
  const { fixedBytes, perSequenceBytes } = ggufSequenceCost(PHI_3_MINI, backend);
  const most = parallelCount(0);
  assert.equal(estimateGgufMemory(PHI_3_MINI, backend), Math.ceil(fixedBytes + most * perSequenceBytes));
  assert.equal(estimateGgufMemory(PHI_3_MINI, backend, 3.5 * GIB), Math.ceil(fixedBytes + perSequenceBytes));
  assert.equal(
    estimateGgufMemory(PHI_3_MINI, { ...backend, parallel: 3 }, 3.5 * GIB),
    Math.ceil(fixedBytes + 3 * perSequenceBytes),
  );
});
