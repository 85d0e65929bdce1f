/**
 * A llama whose SentencePiece vocabulary has no byte tokens: llama.cpp aborts its process on the first character outside
 * the vocabulary (the chat template's `<`), which in a model host read as a 503 and then "failed to load recently".
 * The header check refuses it before any load: every request gets the typed 422 saying why, and the other model answers.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { APIError } from "openai";
import { startTestServer } from "../../testkit/server.js";

test("a model without byte tokens is a 422 naming the cause, each time, and never starts a host", async (t) => {
  const s = await startTestServer(t, {
    models: { gguf: { "tiny.gguf": {}, "no-bytes.gguf": { vocabulary: { byteFallback: false } } } },
    config: { backend: { isolation: "process" } },
  });
  const client = s.openai();
  const ask = (model: string) =>
    client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "<b>Hi</b>" }],
      max_tokens: 2,
      temperature: 0,
    });
  for (let attempt = 1; attempt <= 2; attempt++) {
    await assert.rejects(ask("no-bytes"), (e: unknown) => {
      assert.ok(e instanceof APIError, String(e));
      assert.equal(e.status, 422, `attempt ${attempt}: ${e.message}`);
      assert.equal(e.code, "model_invalid");
      assert.match(e.message, /no-bytes\.gguf .*no byte tokens .*llama\.cpp aborts/);
      return true;
    });
  }
  const chat = await ask("tiny");
  assert.equal(chat.model, "tiny");
  assert.ok((chat.choices[0]?.message.content ?? "").length > 0, "the sound model answered");
  const { body } = await s.getJson<{ data: Array<{ name: string }> }>("/v1/cache/models");
  assert.deepEqual(
    body.data.map((m) => m.name),
    ["tiny.gguf"],
    "only the sound model was loaded",
  );
});
