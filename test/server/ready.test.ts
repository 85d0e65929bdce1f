/** `GET /ready`: 503 while the start-up warm-up runs, 200 once it ends; `/health` says `warming` with the plan meanwhile. */
import assert from "node:assert/strict";
import { it } from "node:test";
import { startFakeServer } from "../../testkit/fake-server.js";

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

  await s.server.app.warmedUp;
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
  await s.server.app.warmedUp;
  assert.equal(model?.warmed, 1);
  assert.equal((await fetch(`${s.url}/ready`)).status, 200);
});

it("/ready needs no API key, like /health; the warm-up requests carry the key", async (t) => {
  const s = await startFakeServer(t, {
    models: ["a.gguf"],
    config: { server: { api_key: "k" }, cache: { always_warm: ["a.gguf"] } },
  });
  await s.server.app.warmedUp;
  assert.equal((await fetch(`${s.url}/ready`)).status, 200);
  assert.ok(([...s.backend.live][0]?.generations ?? 0) >= 4);
});

it("the server's own warm-up requests run its request path before /ready answers 200, and count nowhere", async (t) => {
  const s = await startFakeServer(t, { models: ["a.gguf"], config: { cache: { always_warm: ["a.gguf"] } } });
  await s.server.app.warmedUp;
  assert.equal((await fetch(`${s.url}/ready`)).status, 200);
  const [model] = [...s.backend.live];
  // Completions and chat completions, plain and streamed: at least one round of the four.
  assert.ok((model?.generations ?? 0) >= 4, `generations: ${model?.generations}`);

  const stats = (await (await fetch(`${s.url}/v1/cache/stats`)).json()) as {
    models: Array<{ name: string; requests: number; hits: number }>;
  };
  const a = stats.models.find((m) => m.name === "a.gguf");
  assert.equal(a?.requests, 0, "no use counted");
  assert.equal(a?.hits, 0);
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.doesNotMatch(metrics, /route="\/v1\/(chat\/)?completions"/, "no request in the metrics");

  // The mark is a token only the server knows, and it is over: a client that sends the header is counted as usual.
  const client = await fetch(`${s.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-inferno-warm-up": "guess" },
    body: JSON.stringify({ model: "a.gguf", prompt: "hi", max_tokens: 2 }),
  });
  assert.equal(client.status, 200);
  const after = (await (await fetch(`${s.url}/v1/cache/stats`)).json()) as typeof stats;
  assert.equal(after.models.find((m) => m.name === "a.gguf")?.requests, 1);
  assert.match(await (await fetch(`${s.url}/metrics`)).text(), /route="\/v1\/completions"/);
});
