/** `inferno serve` with an empty models directory generates the demo model, says so, and serves it. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

it("first run: no model → the demo model is generated, announced and served", async (t) => {
  const setup = await testSetup(t, { models: { gguf: {} } });
  const serve = spawnInferno(t, ["serve"], setup);
  const [, count, url] = await serve.waitForLine(/serving (\d+) model\(s\) on (http:\S+)/);
  assert.equal(count, "1");
  assert.match(serve.stderr(), /no model found in .*: generated the demo model inferno-demo \(/);

  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "inferno-demo", messages: [{ role: "user", content: "Hello" }], max_tokens: 4 }),
  });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { choices: Array<{ message: { content: string } }> };
  assert.equal(typeof body.choices[0]?.message.content, "string");
  assert.equal(await serve.stop("SIGINT"), 0, serve.stderr());
});
