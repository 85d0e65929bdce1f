/**
 * A model file overwritten in place while its model runs in a host (mmap on, the case that killed the whole server
 * with SIGBUS when models ran inside it).
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { APIError } from "openai";
import { tinyLlamaGguf } from "../../src/models/gguf-writer.js";
import { HOSTED, stats } from "../../testkit/hosts.js";
import { startTestServer } from "../../testkit/server.js";

const GREEDY = { temperature: 0 };

it("a model file overwritten in place while loaded (mmap on): the server survives and serves the new file", async (t) => {
  const s = await startTestServer(t, {
    config: { cache: { enable_warmup: false }, backend: { ...HOSTED, mmap: true } },
  });
  const client = s.openai();
  await client.completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 });
  // A re-download over the old file: same inode, shorter content (q8_0 weights are a quarter of f32's).
  await writeFile(join(s.modelsDir, "tiny.gguf"), tinyLlamaGguf({ type: "q8_0", seed: 9 }));
  const outcomes: string[] = [];
  let served = false;
  for (let i = 0; i < 20 && !served; i++) {
    try {
      await client.completions.create({ model: "tiny.gguf", prompt: "Once upon a time", max_tokens: 8, ...GREEDY });
      outcomes.push("ok");
      served = (await stats(s)).loads >= 2; // answered by the reloaded model
    } catch (error) {
      assert.ok(error instanceof APIError && error.status === 503, `only a retryable 503 may happen: ${String(error)}`);
      outcomes.push(String((error.error as { code?: string } | undefined)?.code));
    }
    if (!served) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  assert.ok(served, `outcomes: ${outcomes.join(", ")}`);
  assert.equal((await fetch(`${s.url}/health`)).status, 200);
});
