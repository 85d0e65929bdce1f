/** Real llama.cpp on generated GGUF models of two sizes and three weight types: each is loaded once for the file. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TextModel } from "../../src/backends/types.js";
import { Aborted } from "../../src/errors/index.js";
import { writeTinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { FileLlamas, TEST_BACKEND } from "../../testkit/models.js";
import type { GgufMetadata } from "../../src/models/types.js";

const config = TEST_BACKEND;
const llamas = new FileLlamas({
  "nano.gguf": { preset: "nano", type: "f32" },
  "small.gguf": { preset: "small", type: "q8_0" },
  "half.gguf": { preset: "nano", type: "f16" },
  "quarter.gguf": { preset: "nano", type: "q4_0" },
});
before(() => llamas.setUp());
after(() => llamas.cleanUp());

const loadText = (name: string, parallel = 1) => llamas.loadText(name, { parallel });

/** Loads the text model `name` before the enclosing suite's tests (handing it to `use`) and disposes it after them. */
function loadedForSuite(name: string, use: (model: TextModel) => void): void {
  let model: TextModel | undefined;
  before(async () => {
    model = await loadText(name);
    use(model);
  });
  after(() => model?.dispose());
}

for (const name of ["nano", "small"]) {
  describe(`GGUF ${name}`, () => {
    let model: TextModel;
    loadedForSuite(name, (loaded) => (model = loaded));

    test("completes a prompt up to maxTokens, counting tokens", async () => {
      const result = await model.complete("Once upon a time", { maxTokens: 6, seed: 1 });
      assert.equal(result.finishReason, "length");
      // node-llama-cpp may sample one more token to complete a character split across byte tokens.
      assert.ok([6, 7].includes(result.usage.completionTokens), String(result.usage.completionTokens));
      // <s> replaces the leading "▁" of the tokenized text, as llama.cpp's completion does.
      assert.equal(result.usage.promptTokens, (await model.tokenize("Once upon a time")).length);
      assert.ok(result.text.length > 0);
    });

    test("streams: the pieces given to onText make up the text", async () => {
      const pieces: string[] = [];
      const result = await model.complete("The king", { maxTokens: 6, seed: 2, onText: (t) => pieces.push(t) });
      assert.ok(pieces.length > 1);
      assert.equal(pieces.join(""), result.text);
    });

    test("the same seed gives the same text; sampling is not greedy by default", async () => {
      const a = await model.complete("Once upon a time", { maxTokens: 8, seed: 42 });
      const b = await model.complete("Once upon a time", { maxTokens: 8, seed: 42 });
      assert.equal(a.text, b.text);
      const texts = new Set<string>();
      for (const seed of [1, 2, 3]) texts.add((await model.complete("Once upon a time", { maxTokens: 8, seed })).text);
      assert.ok(texts.size > 1, "different seeds should give different samples");
    });

    test("chat uses the model's template and answers", async () => {
      const result = await model.chat(
        [
          { role: "system", content: "You are terse." },
          { role: "user", content: "Say hello" },
        ],
        { maxTokens: 5, seed: 1 },
      );
      assert.ok(result.usage.completionTokens >= 5);
      // ChatML wraps each message in <|im_start|>role … <|im_end|>: far more prompt tokens than the words alone.
      const words = (await model.tokenize("You are terse. Say hello")).length;
      assert.ok(result.usage.promptTokens > words + 8, `${result.usage.promptTokens} prompt tokens`);
    });

    test("embeds with the model itself: one vector per input, of the model's width", async () => {
      const info = (await llamas.manager.info(name)).metadata as GgufMetadata;
      const { embeddings, promptTokens } = await model.embed(["hello world", "the dragon"]);
      assert.equal(embeddings.length, 2);
      for (const vector of embeddings) assert.equal(vector.length, info.embeddingLength);
      assert.notDeepEqual(embeddings[0], embeddings[1]);
      assert.ok(promptTokens >= 4);
    });
  });
}

describe("GGUF f16 weights (nano)", () => {
  let model: TextModel;
  loadedForSuite("half", (loaded) => (model = loaded));

  test("the header says f16, and llama.cpp loads it and generates from it", async () => {
    const info = (await llamas.manager.info("half")).metadata as GgufMetadata;
    assert.match(info.quantization, /f16/i);
    const f32 = (await llamas.manager.info("nano")).metadata as GgufMetadata;
    assert.ok(info.tensorBytes < f32.tensorBytes, "half-precision weights take less room than f32");
    const pieces: string[] = [];
    const result = await model.complete("Once upon a time", { maxTokens: 6, seed: 1, onText: (t) => pieces.push(t) });
    assert.equal(result.finishReason, "length");
    assert.ok([6, 7].includes(result.usage.completionTokens), String(result.usage.completionTokens));
    assert.ok(result.text.length > 0);
    assert.equal(pieces.join(""), result.text);
    const again = await model.complete("Once upon a time", { maxTokens: 6, seed: 1 });
    assert.equal(again.text, result.text, "the same seed gives the same text");
  });
});

describe("GGUF q4_0 weights (nano): a type llama.cpp repacks on x86", () => {
  test("the header says Q4_0, the file is the smallest, and llama.cpp loads it and generates", async () => {
    const info = (await llamas.manager.info("quarter")).metadata as GgufMetadata;
    assert.match(info.quantization, /q4_0/i);
    assert.ok(info.tensorBytes < ((await llamas.manager.info("half")).metadata as GgufMetadata).tensorBytes / 2);
    const model = await loadText("quarter");
    try {
      const result = await model.complete("Once upon a time", { maxTokens: 6, temperature: 0 });
      assert.ok(result.usage.completionTokens > 0);
      assert.equal((await model.complete("Once upon a time", { maxTokens: 6, temperature: 0 })).text, result.text);
    } finally {
      await model.dispose();
    }
  });
});

describe("GGUF generation control (nano)", () => {
  let model: TextModel;
  loadedForSuite("nano", (loaded) => (model = loaded));

  test("a stop string ends generation before it, and is not part of the text", async () => {
    const free = await model.complete("Once upon a time", { maxTokens: 24, seed: 5 });
    const stop = /[a-z]{3}/.exec(free.text.slice(3))?.[0] ?? "";
    assert.equal(stop.length, 3, `no stop candidate in ${JSON.stringify(free.text)}`);
    const stopped = await model.complete("Once upon a time", { maxTokens: 24, seed: 5, stop: [stop] });
    assert.equal(stopped.finishReason, "stop");
    assert.ok(!stopped.text.includes(stop));
    assert.ok(free.text.startsWith(stopped.text));
  });

  test("an abort signal ends generation with what was generated so far", async () => {
    const controller = new AbortController();
    let pieces = 0;
    // Greedy, so the run is the same every time and does not happen to end before the abort (random sampling can
    // pick the end token early on these random-weight models).
    const result = await model.complete("Once", {
      maxTokens: 200,
      temperature: 0,
      signal: controller.signal,
      onText: () => {
        if (++pieces === 3) controller.abort();
      },
    });
    assert.equal(result.finishReason, "abort");
    assert.ok(result.usage.completionTokens < 200);
  });

  test("requests beyond `parallel` queue and all complete", async () => {
    const parallel = 2;
    const two = await loadText("nano", parallel);
    // A request counts as generating from its first piece of text until its promise settles: a window inside the
    // time it really holds a sequence, so seeing more than `parallel` at once would prove the queue leaks.
    let generating = 0;
    let most = 0;
    const started = new Set<number>();
    const request = async (seed: number) => {
      const onText = () => {
        if (started.has(seed)) return;
        started.add(seed);
        most = Math.max(most, ++generating);
      };
      try {
        return await two.complete("Once upon", { maxTokens: 4, seed, onText });
      } finally {
        if (started.has(seed)) generating--;
      }
    };
    try {
      const seeds = [1, 2, 3, 4, 5];
      const results = await Promise.all(seeds.map(request));
      for (const r of results) assert.equal(r.finishReason, "length");
      assert.deepEqual([...started].sort(), seeds, "every request generated text");
      assert.ok(most >= 1 && most <= parallel, `${most} requests generated at once with parallel = ${parallel}`);
      assert.equal(generating, 0);
    } finally {
      await two.dispose();
    }
  });

  test("disposing a model aborts a request in flight and refuses new ones", async () => {
    const other = await loadText("nano");
    // Greedy for the same reason as the abort test: the first piece must come before any end token.
    const pending = other.complete("Once", { maxTokens: 500, temperature: 0, onText: () => void other.dispose() });
    assert.equal((await pending).finishReason, "abort");
    await assert.rejects(() => other.complete("x"), { code: "disposed" });
  });

  test("aborting during a load rejects with Aborted", async () => {
    const controller = new AbortController();
    const gguf = llamas.backends.gguf as NonNullable<typeof llamas.backends.gguf>;
    await assert.rejects(
      gguf.load(await llamas.manager.resolve("small"), {
        backend: config,
        signal: controller.signal,
        onProgress: () => controller.abort(),
      }),
      Aborted,
    );
  });

  test("memoryBytes counts the weights and the context", async () => {
    const info = (await llamas.manager.info("nano")).metadata as GgufMetadata;
    assert.ok(model.memoryBytes > info.tensorBytes, `${model.memoryBytes} vs ${info.tensorBytes}`);
  });
});

test("the context's memory is simulated once per file version and context settings: a reload skips it", async (t) => {
  const { GgufInsights } = await import("node-llama-cpp");
  // node-llama-cpp simulates contexts itself too while it creates one: what matters is the one simulation more that a
  // first load of a version (or of new settings) makes, for the figure the cache accounts.
  const simulation = t.mock.method(GgufInsights.prototype, "estimateContextResourceRequirementsV2");
  const { LlamaBackend } = await import("../../src/backends/llama.js");
  const llama = new LlamaBackend();
  t.after(() => llama.dispose());
  const path = join(llamas.dir, "again.gguf");
  await writeTinyLlamaGguf(path, { preset: "nano", seed: 3 });
  // One sequence: with auto's 4 at these tiny sizes, llama.cpp's compute buffers (sized by the batch, not the context)
  // outweigh the nano model's KV cache, and its figure for 4 × 512 cells comes out below the one for 4 × 256.
  const single = { ...config, parallel: 1 };
  const load = async (backend = single) => {
    const before = simulation.mock.callCount();
    const model = await llama.load(await llamas.manager.resolve("again"), { backend });
    await model.dispose();
    return { bytes: model.memoryBytes, simulations: simulation.mock.callCount() - before };
  };
  const first = await load();
  const again = await load();
  assert.equal(again.bytes, first.bytes, "the same figure on a reload");
  assert.equal(again.simulations, first.simulations - 1, "one simulation fewer on a reload");
  const larger = await load({ ...single, context_size: single.context_size * 2 });
  assert.ok(larger.bytes > first.bytes, "a larger context");
  assert.equal(larger.simulations, first.simulations, "new settings: simulated again");
  // A new version of the file (another size): its own figure.
  await writeTinyLlamaGguf(path, { preset: "small", seed: 3 });
  const changed = await load();
  assert.ok(changed.bytes > first.bytes);
  assert.equal(changed.simulations, first.simulations);
});
