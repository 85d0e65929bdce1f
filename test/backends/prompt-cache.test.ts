/**
 * The prompt cache on real llama.cpp (a generated nano llama): a sequence keeps what it evaluated, a request reuses
 * the longest shared prefix, and the greedy answer is the same token for token as without reuse.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { HostedBackend } from "../../src/backends/hosted.js";
import { createBackends } from "../../src/backends/index.js";
import type { ChatMessage, GenerationResult, TextModel } from "../../src/backends/types.js";
import { writeTinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { ModelManager } from "../../src/models/manager.js";
import { TEST_BACKEND } from "../../testkit/models.js";

const config = { ...TEST_BACKEND, context_size: 512 };
const backends = createBackends(config);
let dir: string;
let manager: ModelManager;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "inferno-prompt-cache-"));
  await writeTinyLlamaGguf(join(dir, "nano.gguf"), { preset: "nano", type: "f32" });
  manager = new ModelManager(dir);
});
after(async () => {
  await backends[Symbol.asyncDispose]();
  await rm(dir, { recursive: true, force: true });
});

/** The nano model with `parallel` sequences, loaded before the tests of the block that calls this, disposed after them. */
function nanoWith(parallel: number): { model: TextModel } {
  const nano = {} as { model: TextModel };
  before(async () => {
    const gguf = backends.gguf as NonNullable<typeof backends.gguf>;
    nano.model = (await gguf.load(await manager.resolve("nano"), { backend: { ...config, parallel } })) as TextModel;
  });
  after(() => nano.model.dispose());
  return nano;
}

const greedy = { temperature: 0, maxTokens: 12 };
const evaluated = (r: GenerationResult) => r.usage.promptTokens - (r.usage.cachedPromptTokens ?? 0);

describe("prompt cache, one sequence", () => {
  const nano = nanoWith(1);

  test("a completion reuses the shared prefix and answers as it does without reuse", async () => {
    const short = "The old lighthouse keeper climbed the stairs";
    const long = `${short} every night, counting the steps and listening to the sea`;
    const fresh = await nano.model.complete(long, { ...greedy, cachePrompt: false });
    assert.equal(fresh.usage.cachedPromptTokens, 0);
    await nano.model.complete(short, greedy);
    const reused = await nano.model.complete(long, greedy);
    assert.equal(reused.usage.promptTokens, fresh.usage.promptTokens);
    const shortTokens = (await nano.model.tokenize(short)).length;
    assert.ok((reused.usage.cachedPromptTokens ?? 0) >= shortTokens - 1, JSON.stringify(reused.usage));
    assert.equal(reused.text, fresh.text);
    assert.equal(reused.usage.completionTokens, fresh.usage.completionTokens);
    // The same prompt again: all but its last token come from the cache.
    const again = await nano.model.complete(long, greedy);
    assert.equal(again.usage.cachedPromptTokens, again.usage.promptTokens - 1);
    assert.equal(again.text, fresh.text);
  });

  test("after a generation cut short, the next answer is the same as without reuse", async () => {
    const prompt = "A story cut short in the middle of the night";
    const fresh = await nano.model.complete(prompt, { ...greedy, cachePrompt: false });
    const controller = new AbortController();
    const cut = await nano.model.complete(prompt, {
      temperature: 0,
      maxTokens: 40,
      signal: controller.signal,
      onText: () => controller.abort(),
    });
    assert.equal(cut.finishReason, "abort");
    const after = await nano.model.complete(prompt, greedy);
    assert.ok((after.usage.cachedPromptTokens ?? 0) > 0, JSON.stringify(after.usage));
    assert.equal(after.text, fresh.text);
  });

  test("cachePrompt false evaluates the whole prompt", async () => {
    const prompt = "A prompt that is sent twice, the second time without the cache";
    await nano.model.complete(prompt, greedy);
    const result = await nano.model.complete(prompt, { ...greedy, cachePrompt: false });
    assert.equal(result.usage.cachedPromptTokens, 0);
    assert.equal(evaluated(result), result.usage.promptTokens);
  });

  test("a chat of 8 turns evaluates only each turn's new tokens, with the answers of a chat without reuse", async () => {
    const messages: ChatMessage[] = [{ role: "system", content: "You answer briefly and kindly." }];
    let previousPrompt = 0;
    for (let turn = 1; turn <= 8; turn++) {
      messages.push({ role: "user", content: `Question number ${turn}: what comes next?` });
      // Reused: the sequence holds the previous turn (its prompt and answer).
      const reused = await nano.model.chat(messages, { ...greedy, maxTokens: 6 });
      // Without reuse: evaluated whole; it leaves the sequence as the reused run did (the same prompt and answer).
      const fresh = await nano.model.chat(messages, { ...greedy, maxTokens: 6, cachePrompt: false });
      assert.equal(fresh.usage.cachedPromptTokens, 0);
      assert.equal(reused.text, fresh.text, `turn ${turn}`);
      messages.push({ role: "assistant", content: `Answer ${turn}.` });
      if (turn > 1) {
        const grown = reused.usage.promptTokens - previousPrompt;
        // Only the new tokens: the last reply, the new question and the template's markers around them.
        assert.ok(evaluated(reused) <= grown + 1, `turn ${turn}: ${JSON.stringify(reused.usage)}, grew ${grown}`);
      }
      previousPrompt = reused.usage.promptTokens;
    }
  });
});

describe("prompt cache, two sequences", () => {
  const nano = nanoWith(2);

  test("two conversations with different prefixes each keep theirs", async () => {
    const a = "Conversation A is about the mountains in winter and";
    const b = "Conversation B talks of ships, harbours and the tides";
    await nano.model.complete(a, greedy);
    await nano.model.complete(b, greedy);
    for (let round = 0; round < 3; round++) {
      for (const prompt of [a, b]) {
        const result = await nano.model.complete(`${prompt} more, round ${round}`, greedy);
        const held = (await nano.model.tokenize(prompt)).length;
        assert.ok((result.usage.cachedPromptTokens ?? 0) >= held - 1, `${prompt}: ${JSON.stringify(result.usage)}`);
      }
    }
  });

  test("concurrent requests each get a sequence, by prefix", async () => {
    const a = "Shared nothing: the first of two concurrent prompts here";
    const b = "Entirely different, this second concurrent prompt there";
    await Promise.all([nano.model.complete(a, greedy), nano.model.complete(b, greedy)]);
    const [ra, rb] = await Promise.all([nano.model.complete(`${a}!`, greedy), nano.model.complete(`${b}!`, greedy)]);
    assert.ok((ra.usage.cachedPromptTokens ?? 0) > 0 && (rb.usage.cachedPromptTokens ?? 0) > 0, "both reused");
  });
});

describe("prompt cache in a model host", () => {
  const hosted = new HostedBackend("gguf", { spare: false });
  let model: TextModel;
  before(async () => {
    const backend = { ...config, isolation: "process" as const };
    model = (await hosted.load(await manager.resolve("nano"), { backend })) as TextModel;
  });
  after(async () => {
    await model.dispose();
    await hosted.dispose();
  });

  test("the reused count and cachePrompt cross the host's protocol", async () => {
    const prompt = "Across the pipe, a prompt sent twice";
    const first = await model.complete(prompt, greedy);
    const second = await model.complete(prompt, greedy);
    assert.equal(second.usage.cachedPromptTokens, second.usage.promptTokens - 1);
    assert.equal(second.text, first.text);
    const off = await model.complete(prompt, { ...greedy, cachePrompt: false });
    assert.equal(off.usage.cachedPromptTokens, 0);
    assert.equal(off.text, first.text);
  });
});
