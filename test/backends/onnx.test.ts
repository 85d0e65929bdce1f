/** Real ONNX Runtime: the hand-written Add model and the real PP-OCR text-direction classifier. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { OnnxBackend } from "../../src/backends/index.js";
import type { TensorModel } from "../../src/backends/types.js";
import { BadRequest } from "../../src/errors/index.js";
import { ModelManager } from "../../src/models/manager.js";
import { TEST_BACKEND, tinyModelsDir } from "../../testkit/models.js";

const config = TEST_BACKEND;
const backend = new OnnxBackend();
after(() => backend.dispose());

let add: TensorModel;
let classifier: TensorModel;

// Loaded once for the file, in its first test (tinyModelsDir needs a test's context to clean up after itself).
test("load both models", async (t) => {
  const { dir } = await tinyModelsDir(t, { onnx: ["add.onnx"], classifier: true });
  const manager = new ModelManager(dir);
  add = (await backend.load(await manager.resolve("add"), { backend: config })) as TensorModel;
  classifier = (await backend.load(await manager.resolve("classifier"), { backend: config })) as TensorModel;
  assert.equal(add.kind, "tensor");
  assert.ok(classifier.memoryBytes > 0);
});

after(async () => {
  await add?.dispose();
  await classifier?.dispose();
});

test("runs the Add graph with named inputs", async () => {
  const a = { type: "float32" as const, data: [1, 2, 3, 4, 5, 6, 7, 8], dims: [2, 4] };
  const b = { type: "float32" as const, data: new Float32Array(8).fill(0.5), dims: [2, 4] };
  const { y } = await add.run({ a, b });
  assert.deepEqual(y?.dims, [2, 4]);
  assert.deepEqual(Array.from(y?.data as Float32Array), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5]);
  assert.equal(y?.type, "float32");
});

test("the real classifier gives a probability distribution over its 2 classes", async () => {
  const pixels = new Float32Array(3 * 48 * 192);
  for (let i = 0; i < pixels.length; i++) pixels[i] = ((i * 7919) % 255) / 255 - 0.5;
  const outputs = await classifier.run({ x: { type: "float32", data: pixels, dims: [1, 3, 48, 192] } });
  const [output] = Object.values(outputs);
  assert.deepEqual(output?.dims, [1, 2]);
  const probabilities = Array.from(output?.data as Float32Array);
  assert.ok(Math.abs(probabilities[0]! + probabilities[1]! - 1) < 1e-4, String(probabilities));
});

test("wrong or missing input names, and data that does not fill the shape, are BadRequest", async () => {
  const ok = { type: "float32" as const, data: new Float32Array(4), dims: [1, 4] };
  await assert.rejects(add.run({ a: ok }), (e: unknown) => e instanceof BadRequest && /missing: b/.test(e.message));
  await assert.rejects(
    add.run({ a: ok, b: ok, c: ok }),
    (e: unknown) => e instanceof BadRequest && /unknown: c/.test(e.message),
  );
  await assert.rejects(add.run({ a: ok, b: { ...ok, dims: [2, 4] } }), /do not fill shape \[2, 4\]/);
});
