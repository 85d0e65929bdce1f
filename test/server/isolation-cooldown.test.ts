/** A host killed under a non-streaming request, and the cooldown after a second crash soon after the first. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { HOSTED, loaded, stats } from "../../testkit/hosts.js";
import { startTestServer, waitFor } from "../../testkit/server.js";

/** Greedy, the tiny model generates all 4,000 tokens (~8 s here): still running when the test kills its host. */
const GREEDY = { temperature: 0 };

it("a non-streaming request in flight gets 503 model_crashed with Retry-After; a second crash soon after starts the cooldown", async (t) => {
  const s = await startTestServer(t, {
    config: {
      cache: { enable_warmup: false, load_failure_cooldown_seconds: 60 },
      backend: { ...HOSTED, context_size: 4096 },
    },
  });
  const post = () =>
    fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny.gguf", prompt: "Once", max_tokens: 4000, ...GREEDY }),
    });
  const inFlight = post();
  await waitFor(async () => (await loaded(s))[0]?.leases === 1);
  process.kill((await loaded(s))[0]?.pid as number, "SIGKILL");
  const crashed = await inFlight;
  assert.equal(crashed.status, 503);
  assert.equal(crashed.headers.get("retry-after"), "1");
  const body = (await crashed.json()) as { error: { code: string; type: string; message: string } };
  assert.equal(body.error.code, "model_crashed");
  assert.match(body.error.message, /ended by signal SIGKILL; it is unloaded and loads again on the next request/);
  await waitFor(async () => (await stats(s)).evictions.crashed === 1);

  await s.openai().completions.create({ model: "tiny.gguf", prompt: "Hi", max_tokens: 1 }); // loads again at once
  process.kill((await loaded(s))[0]?.pid as number, "SIGKILL");
  await waitFor(async () => (await stats(s)).evictions.crashed === 2);
  const refused = await post();
  assert.equal(refused.status, 503);
  assert.ok(Number(refused.headers.get("retry-after")) > 0);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "model_load_cooldown");
});
