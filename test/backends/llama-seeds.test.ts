/**
 * Seeds on real llama.cpp: a request that names no seed draws a fresh one (node-llama-cpp's own default, the time in
 * whole seconds, gave requests within a second the same answer); a named seed reproduces the answer exactly.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createBackends } from "../../src/backends/index.js";
import type { TextModel } from "../../src/backends/types.js";
import { ModelManager } from "../../src/models/manager.js";
import { fileContext } from "../../testkit/server.js";
import { assertDistinct, TEST_BACKEND, tinyModelsDir } from "../../testkit/models.js";

const backends = createBackends(TEST_BACKEND);
const files = fileContext();
let model: TextModel;

before(async () => {
  const { dir } = await tinyModelsDir(files.context);
  const gguf = backends.gguf as NonNullable<typeof backends.gguf>;
  model = (await gguf.load(await new ModelManager(dir).resolve("tiny"), { backend: TEST_BACKEND })) as TextModel;
});
after(async () => {
  await model.dispose();
  await backends[Symbol.asyncDispose]();
  await files.cleanUp();
});

const prompt = [{ role: "user" as const, content: "Tell me a story" }];

test("ten requests at temperature 1 without a seed: no two answers alike (but answers that ended at once)", async () => {
  const answers: string[] = [];
  for (let i = 0; i < 10; i++) answers.push((await model.chat(prompt, { temperature: 1, maxTokens: 12 })).text);
  assertDistinct(answers, 3);
});

test("eight parallel requests without a seed: no two answers alike (but answers that ended at once)", async () => {
  const answers = await Promise.all(
    Array.from({ length: 8 }, async () => (await model.chat(prompt, { temperature: 1, maxTokens: 12 })).text),
  );
  assertDistinct(answers, 2);
});

test("the same seed twice: identical answers, for chat and completion, at high temperature", async () => {
  for (const seed of [0, 1, -1, 123456789, 2 ** 32 - 1, 2 ** 40]) {
    const options = { temperature: 1.5, maxTokens: 16, seed };
    const [a, b] = [await model.chat(prompt, options), await model.chat(prompt, options)];
    assert.equal(a.text, b.text);
    const [c, d] = [await model.complete("Once upon", options), await model.complete("Once upon", options)];
    assert.equal(c.text, d.text);
  }
});
