/** `GET /ready`: 503 while the start-up warm-up runs, 200 once it ends; `/health` says `warming` with the plan meanwhile. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { startFakeServer } from "../helpers/fake-server.js";

interface Ready {
  ready: boolean;
  status: string;
  warmup_progress: { plan: string[]; settled: number; total: number } | null;
}

it("/ready is 503 during a slow warm-up and 200 after; /health reports warming with the plan's progress", async (t) => {
  const s = await startFakeServer(t, {
    models: ["a.gguf", "b.gguf"],
    behaviours: { "a.gguf": { loadMs: 100 }, "b.gguf": { loadMs: 1500 } },
    config: { cache: { always_warm: ["a.gguf", "b.gguf"] } },
  });

  const during = await fetch(`${s.url}/ready`);
  assert.equal(during.status, 503);
  const body = (await during.json()) as Ready;
  assert.equal(body.ready, false);
  assert.equal(body.status, "warming");

  // The plan, then part of it settled while the slow model still loads.
  let health: { status: string; warmup: string; warmup_progress: Ready["warmup_progress"] };
  const deadline = Date.now() + 5000;
  do {
    health = (await (await fetch(`${s.url}/health`)).json()) as typeof health;
    if (health.warmup_progress?.settled === 1) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  } while (Date.now() < deadline);
  assert.equal(health.status, "warming");
  assert.equal(health.warmup, "running");
  assert.deepEqual(health.warmup_progress?.plan, ["a.gguf", "b.gguf"]);
  assert.equal(health.warmup_progress?.total, 2);
  assert.equal(health.warmup_progress?.settled, 1);
  assert.equal((await fetch(`${s.url}/ready`)).status, 503);

  await s.cache.warmupDone;
  const after = await fetch(`${s.url}/ready`);
  assert.equal(after.status, 200);
  assert.deepEqual(await after.json(), { ready: true, status: "ok", warmup_progress: null });
  const done = (await (await fetch(`${s.url}/health`)).json()) as typeof health;
  assert.equal(done.status, "ok");
  assert.equal(done.warmup, "done");
});

it("/ready stays 503 until the backends have settled after the warm-up's loads and the models are warmed", async (t) => {
  const s = await startFakeServer(t, {
    models: ["a.gguf"],
    behaviours: { "a.gguf": { loadMs: 300 } },
    config: { cache: { always_warm: ["a.gguf"] } },
  });
  let settled!: () => void;
  s.backend.settling = new Promise((resolve) => (settled = resolve));
  const deadline = Date.now() + 5000;
  while (s.backend.settles === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(s.backend.settles, 1, "the warm-up's loads are done and it waits for the backends");
  const [model] = [...s.backend.live];
  assert.equal(model?.warmed, 0);
  assert.equal((await fetch(`${s.url}/ready`)).status, 503);
  settled();
  await s.cache.warmupDone;
  assert.equal(model?.warmed, 1);
  assert.equal((await fetch(`${s.url}/ready`)).status, 200);
});

it("/ready needs no API key, like /health", async (t) => {
  const s = await startFakeServer(t, { config: { server: { api_key: "k" } } });
  await s.cache.warmupDone;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal((await fetch(`${s.url}/ready`)).status, 200);
});
