import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeBackend } from "../../src/backends/fake.js";
import { ManualClock } from "../../src/cache/clock.js";
import { backendSchema } from "../../src/config/schema.js";
import { FakeModelSource } from "../../testkit/fake-models.js";

const backendConfig = backendSchema.parse({});
const source = new FakeModelSource(["a.gguf", "b.gguf"]);

describe("FakeBackend", () => {
  it("loads on the injected clock, reports its memory and counts loads and disposals", async () => {
    const clock = new ManualClock();
    const backend = new FakeBackend({ timers: clock, models: { "a.gguf": { loadMs: 5000, memoryBytes: 42 } } });
    let done = false;
    const loading = backend.load(await source.resolve("a.gguf"), { backend: backendConfig }).then((m) => {
      done = true;
      return m;
    });
    await clock.advance(4999);
    assert.equal(done, false);
    await clock.advance(1);
    const model = await loading;
    assert.equal(model.memoryBytes, 42);
    assert.equal(backend.loadCount("a.gguf"), 1);
    await model.dispose();
    await model.dispose();
    assert.equal(backend.counts.disposed, 1);
    await assert.rejects(() => (model.kind === "text" ? model.complete("x") : Promise.resolve()), { code: "disposed" });
  });

  it("fails the next N loads, then succeeds; failAlways always fails", async () => {
    const backend = new FakeBackend({ models: { "a.gguf": { failNext: 2 }, "b.gguf": { failAlways: true } } });
    const a = await source.resolve("a.gguf");
    await assert.rejects(backend.load(a, { backend: backendConfig }), { code: "model_load_failed" });
    await assert.rejects(backend.load(a, { backend: backendConfig }), { code: "model_load_failed" });
    await backend.load(a, { backend: backendConfig });
    const b = await source.resolve("b.gguf");
    for (let i = 0; i < 3; i++)
      await assert.rejects(backend.load(b, { backend: backendConfig }), { code: "model_load_failed" });
    assert.deepEqual(backend.counts, { started: 6, loaded: 1, failed: 5, aborted: 0, disposed: 0 });
  });

  it("honours an abort signal during the load delay", async () => {
    const clock = new ManualClock();
    const backend = new FakeBackend({ timers: clock, defaults: { loadMs: 1000 } });
    const controller = new AbortController();
    const loading = backend.load(await source.resolve("a.gguf"), { backend: backendConfig, signal: controller.signal });
    await clock.advance(10);
    controller.abort();
    await assert.rejects(loading, { code: "aborted" });
    assert.equal(backend.counts.aborted, 1);
    assert.equal(clock.pendingTimers, 0);
  });

  it("echoes deterministically with maxTokens, stop, streaming, and embeds stably", async () => {
    const model = await new FakeBackend().load(await source.resolve("a.gguf"), { backend: backendConfig });
    assert.equal(model.kind, "text");
    if (model.kind !== "text") return;
    const pieces: string[] = [];
    const full = await model.complete("one two three four", { onText: (t) => pieces.push(t) });
    assert.deepEqual(full, {
      text: "one two three four",
      finishReason: "stop",
      usage: { promptTokens: 4, completionTokens: 4 },
    });
    assert.equal(pieces.join(""), full.text);
    assert.equal((await model.complete("one two three", { maxTokens: 2 })).finishReason, "length");
    assert.equal((await model.complete("one two three", { stop: [" thr"] })).text, "one two");
    const chat = await model.chat([
      { role: "system", content: "be brief" },
      { role: "user", content: "hello there" },
    ]);
    assert.equal(chat.text, "hello there");
    const { embeddings } = await model.embed(["x", "x", "y"]);
    assert.deepEqual(embeddings[0], embeddings[1]);
    assert.notDeepEqual(embeddings[0], embeddings[2]);
    assert.ok(Math.abs(Math.hypot(...(embeddings[0] ?? [])) - 1) < 1e-9);
    assert.deepEqual(await model.tokenize("a b"), await model.tokenize("a  b"));
  });
});
