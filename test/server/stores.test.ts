/**
 * Store models over HTTP: with `model_stores = ["ollama"]`, a model pulled into the (test's) Ollama store is listed by
 * `/v1/models` under Ollama's name, answers a chat by its short name through the official client, and a broken manifest
 * is a typed 422 for that model only.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { APIError } from "openai";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { startTestServer } from "../../testkit/server.js";
import { ollamaModel } from "../../testkit/stores.js";

test("an Ollama model is listed, chats by its short name, and a broken manifest fails alone", async (t) => {
  const s = await startTestServer(t, { config: { model_stores: ["ollama"] } });
  const store = join(s.cwd, ".ollama", "models");
  await ollamaModel(store, "babbler", "latest", tinyLlamaGguf({ seed: 5 }));
  await ollamaModel(store, "broken", "latest", tinyLlamaGguf(), { manifestText: "{" });
  const client = s.openai();

  const listed = (await client.models.list()).data.map((m) => m.id).sort();
  // Ids are the shortest unambiguous names (an Ollama model's NAME stands for NAME:latest).
  assert.deepEqual(listed, ["babbler", "broken", "tiny"], "the store appeared after start and was found");

  const chat = await client.chat.completions.create({
    model: "babbler",
    messages: [{ role: "user", content: "Hello" }],
    max_tokens: 4,
    temperature: 0,
  });
  assert.equal(chat.model, "babbler", "the reply echoes the name the client asked for");
  assert.ok((chat.choices[0]?.message.content ?? "").length > 0, "the store model generated text");
  const { body } = await s.getJson<{ data: Array<{ name: string }> }>("/v1/cache/models");
  assert.deepEqual(
    body.data.map((m) => m.name),
    ["babbler:latest"],
  );

  await assert.rejects(
    client.chat.completions.create({ model: "broken", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
    (e: unknown) =>
      e instanceof APIError && e.status === 422 && e.code === "model_invalid" && /manifest is not JSON/.test(e.message),
  );
  const again = await client.chat.completions.create({
    model: "babbler:latest",
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
  });
  assert.equal(again.model, "babbler:latest", "the good model is unaffected");
});
