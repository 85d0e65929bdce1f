/** `inferno serve` with an empty models directory generates the demo model, says so, and serves it. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { spawnInferno } from "../../testkit/process.js";
import { testSetup } from "../../testkit/server.js";

/** The test configuration without `models_dir`: the built-in `./models` (in the test's working directory) applies. */
async function withDefaultModelsDir(cwd: string): Promise<string> {
  const file = join(cwd, ".inferno.toml");
  const text = await readFile(file, "utf8");
  await writeFile(file, text.replace(/^models_dir = .*\n/m, ""));
  // The default models directory is per user: $XDG_DATA_HOME/inferno/models, here under the test's HOME (= cwd).
  return join(cwd, ".local", "share", "inferno", "models");
}

it("first run: no model → the demo model is generated in the default (per-user) models directory, announced and served", async (t) => {
  const setup = await testSetup(t, { models: { gguf: {} } });
  const modelsDir = await withDefaultModelsDir(setup.cwd);
  assert.ok(!existsSync(modelsDir));
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
  assert.ok(existsSync(modelsDir), "the default models directory was created");
});

it("a configured models directory is never created nor given the demo model; the statistics of its models stay", async (t) => {
  const setup = await testSetup(t, { models: { gguf: { "a.gguf": {} } } });
  // First start: a.gguf is used, so the state file holds its statistics.
  const first = spawnInferno(t, ["serve"], setup);
  const [, , url] = await first.waitForLine(/serving (\d+) model\(s\) on (http:\S+)/);
  const used = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "a.gguf", prompt: "Hi", max_tokens: 1 }),
  });
  assert.equal(used.status, 200);
  assert.equal(await first.stop("SIGTERM"), 0, first.stderr());

  // The disk goes away: the configured directory is gone.
  await rm(setup.modelsDir, { recursive: true });
  const second = spawnInferno(t, ["serve"], setup);
  const [, count, url2] = await second.waitForLine(/serving (\d+) model\(s\) on (http:\S+)/);
  assert.equal(count, "0");
  assert.match(second.stderr(), /does not exist .*leaving it uncreated/);
  assert.ok(!existsSync(setup.modelsDir), "the configured directory was not created");
  const stats = (await (await fetch(`${url2}/v1/cache/stats`)).json()) as {
    models: Array<{ name: string; requests: number; missing: boolean }>;
  };
  const a = stats.models.find((m) => m.name === "a.gguf");
  assert.equal(a?.requests, 1, "the statistics stayed");
  assert.equal(a?.missing, false, "the missing clock did not start");
  assert.equal(await second.stop("SIGTERM"), 0, second.stderr());
  assert.ok(!existsSync(setup.modelsDir));

  // An empty configured directory (a bare mount point) gets no demo model either.
  await mkdir(setup.modelsDir);
  const third = spawnInferno(t, ["serve"], setup);
  await third.waitForLine(/serving (\d+) model\(s\) on/);
  assert.match(third.stderr(), /inferno models demo/);
  assert.equal(await third.stop("SIGTERM"), 0);
  assert.deepEqual(await readdir(setup.modelsDir), []);
});
