/**
 * `GET /v1/cache/advise` on a live server (the real cache on the fake backend, real HTTP on loopback) and
 * `inferno cache advise` through it: the server's own request log replayed, the same auth as the other /v1/cache
 * routes, a typed 409 while there is nothing to replay.
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import type { AdviceReport } from "../../src/cache/sim/advise.js";
import { cliSandbox } from "../../testkit/cli.js";
import { startFakeServer } from "../../testkit/fake-server.js";

it("GET /v1/cache/advise replays the server's requests; api_key applies; an empty log is a typed 409", async (t) => {
  const s = await startFakeServer(t, {
    behaviours: { "a.gguf": { loadMs: 40 }, "b.gguf": { loadMs: 40 } },
    config: { server: { api_key: "sekret" }, cache: { max_cached_models: 1, model_ttl_seconds: 0 } },
  });
  const auth = { Authorization: "Bearer sekret" };
  assert.equal((await fetch(`${s.url}/v1/cache/advise`)).status, 401);

  const empty = await fetch(`${s.url}/v1/cache/advise`, { headers: auth });
  assert.equal(empty.status, 409);
  const refusal = (await empty.json()) as { error: { code: string; message: string } };
  assert.equal(refusal.error.code, "request_log_empty");
  assert.match(refusal.error.message, /the request log is empty/);

  // One place, two models taking turns: every request loads. Two places would load each once.
  for (const model of ["a.gguf", "b.gguf", "a.gguf", "b.gguf", "a.gguf"]) {
    const response = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ model, prompt: "Hi", max_tokens: 2, temperature: 0 }),
    });
    assert.equal(response.status, 200, await response.text());
  }
  const response = await fetch(`${s.url}/v1/cache/advise`, { headers: auth });
  assert.equal(response.status, 200);
  const report = (await response.json()) as AdviceReport;
  assert.equal(report.log.requests, 5);
  assert.deepEqual([report.log.observed.hits, report.log.observed.misses], [0, 5]);
  const current = report.rows.find((r) => r.current);
  assert.deepEqual([current?.eviction_policy, current?.max_cached_models, current?.loads], ["reload-cost", 1, 5]);
  assert.equal(report.rows.find((r) => r.varies === "max_cached_models" && r.max_cached_models === 2)?.loads, 2);
  assert.equal(report.recommendation?.key, "cache.max_cached_models");
  assert.deepEqual([report.recommendation?.from, report.recommendation?.to], [1, 2]);
  assert.ok((report.recommendation?.seconds_saved_per_day ?? 0) > 0);
  assert.equal(report.optimum?.exact, true);

  // The CLI finds the server (port and key from the environment) and prints the same data, or a table.
  const sandbox = await cliSandbox(t);
  const env = { INFERNO_SERVER__PORT: String(s.server.port), INFERNO_SERVER__API_KEY: "sekret" };
  const json = await sandbox.run(["cache", "advise", "--json"], env);
  assert.equal(json.code, 0, json.stderr);
  assert.match(json.stderr, /using the running server/);
  assert.deepEqual(JSON.parse(json.stdout), report);
  // --target-hit-rate asks about a fleet: a single node says it has no fleet part.
  const single = await sandbox.run(["cache", "advise", "--json", "--target-hit-rate", "0.8"], env);
  assert.equal(single.code, 0, single.stderr);
  assert.equal((JSON.parse(single.stdout) as AdviceReport).fleet, undefined);
  assert.match(single.stderr, /--target-hit-rate applies to a fleet: this answer has no fleet part/);
  const table = await sandbox.run(["cache", "advise"], env);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^request log: 5 requests for 2 model\(s\)/);
  assert.match(table.stdout, /^\* current: reload-cost, max_cached_models = 1, no memory limit\s+0\.0%\s+5\s/m);
  assert.match(table.stdout, /^ {2}max_cached_models = 2\s+60\.0%\s+2\s/m);
  assert.match(table.stdout, /^ {2}eviction_policy = ollama \(another runner's rule\)/m);
  assert.match(table.stdout, /^ {2}optimum at the current limits \(exact\)/m);
  assert.match(table.stdout, /^recommended: set cache\.max_cached_models = 2 \(now 1\): /m);
});
